//! Cron schedules for a policy's automatic migrations: the expression and its time
//! zone, the next due time and the counts of runs and skipped due times; and, on each
//! job, the policy whose autopilot started it (a policy's history of runs).

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Policies {
    Table,
    Cron,
    TimeZone,
    NextRunAt,
    Runs,
    Skipped,
    LastError,
}

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    PolicyId,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

fn count(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in [
            ColumnDef::new(Policies::Cron).string().null().to_owned(),
            ColumnDef::new(Policies::TimeZone)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Policies::NextRunAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            count(Policies::Runs),
            count(Policies::Skipped),
            ColumnDef::new(Policies::LastError).text().null().to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Policies::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .add_column(ColumnDef::new(MigrationJobs::PolicyId).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_migration_jobs_policy")
                    .table(MigrationJobs::Table)
                    .col(MigrationJobs::PolicyId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_migration_jobs_policy")
                    .table(MigrationJobs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .drop_column(MigrationJobs::PolicyId)
                    .to_owned(),
            )
            .await?;
        for column in [
            Policies::LastError,
            Policies::Skipped,
            Policies::Runs,
            Policies::NextRunAt,
            Policies::TimeZone,
            Policies::Cron,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Policies::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
