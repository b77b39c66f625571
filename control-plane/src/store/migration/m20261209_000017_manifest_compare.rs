//! Syncs compared on the agent: the source objects an agent found unchanged against the
//! replica's manifest are counted on the job (objects and bytes, as last reported),
//! not recorded one by one.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    ManifestUnchanged,
    ManifestUnchangedBytes,
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
            count(MigrationJobs::ManifestUnchanged),
            count(MigrationJobs::ManifestUnchangedBytes),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MigrationJobs::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            MigrationJobs::ManifestUnchangedBytes,
            MigrationJobs::ManifestUnchanged,
        ] {
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
