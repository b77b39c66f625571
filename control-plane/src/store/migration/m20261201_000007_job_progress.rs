//! A job records when an agent last reported progress on it (objects, uploaded parts,
//! listed tasks): the reconciler leaves a job alone while any of its agents moves it,
//! not only while the last agent to take one of its tasks is alive.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    ProgressedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .add_column(
                        ColumnDef::new(MigrationJobs::ProgressedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .drop_column(MigrationJobs::ProgressedAt)
                    .to_owned(),
            )
            .await
    }
}
