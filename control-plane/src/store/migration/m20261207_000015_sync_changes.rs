//! Continuous syncs: a schedule that also syncs as files change, the keys its watchers
//! reported and no run has taken yet (the empty key: a watcher may have missed some),
//! and the keys a run of those changes checks instead of listing the whole source.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum SyncSchedules {
    Table,
    Id,
    Continuous,
}

#[derive(DeriveIden)]
enum SyncChanges {
    Table,
    Id,
    ScheduleId,
    Key,
}

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    SyncKeys,
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
        manager
            .alter_table(
                Table::alter()
                    .table(SyncSchedules::Table)
                    .add_column(flag(SyncSchedules::Continuous))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .add_column(ColumnDef::new(MigrationJobs::SyncKeys).text().null())
                    .to_owned(),
            )
            .await?;
        // One row per report of a key: a run takes the rows up to an id and deletes
        // those, so a key reported again meanwhile stays for the next run.
        manager
            .create_table(
                Table::create()
                    .table(SyncChanges::Table)
                    .col(
                        ColumnDef::new(SyncChanges::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SyncChanges::ScheduleId).string().not_null())
                    .col(ColumnDef::new(SyncChanges::Key).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sync_changes_schedule")
                            .from(SyncChanges::Table, SyncChanges::ScheduleId)
                            .to(SyncSchedules::Table, SyncSchedules::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sync_changes_schedule")
                    .table(SyncChanges::Table)
                    .col(SyncChanges::ScheduleId)
                    .col(SyncChanges::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncChanges::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .drop_column(MigrationJobs::SyncKeys)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SyncSchedules::Table)
                    .drop_column(SyncSchedules::Continuous)
                    .to_owned(),
            )
            .await
    }
}
