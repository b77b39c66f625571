//! A migration's final pass: whether it began, how many objects it (or a retry's
//! listing) found changed at the source after they were copied, and which.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    FinalPass,
    SourceChanges,
}

#[derive(DeriveIden)]
enum JobObjects {
    Table,
    SourceChanged,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

fn flag(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .boolean()
        .not_null()
        .default(false)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let job_columns = [
            flag(MigrationJobs::FinalPass),
            ColumnDef::new(MigrationJobs::SourceChanges)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
        ];
        for mut column in job_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(MigrationJobs::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(JobObjects::Table)
                    .add_column(flag(JobObjects::SourceChanged))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(JobObjects::Table)
                    .drop_column(JobObjects::SourceChanged)
                    .to_owned(),
            )
            .await?;
        for column in [MigrationJobs::FinalPass, MigrationJobs::SourceChanges] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MigrationJobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
