//! Sync schedules: the sync each due time plans (an encoded `PlanSyncRequest`), its
//! cron expression and time zone, when it is next due, and what its runs did. A job
//! remembers the schedule that planned it, so a schedule's runs list as its history.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum SyncSchedules {
    Table,
    Id,
    Name,
    DatasetId,
    Sync,
    Cron,
    TimeZone,
    NextRunAt,
    LastJobId,
    Runs,
    Skipped,
    LastError,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Datasets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    ScheduleId,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncSchedules::Table)
                    .col(
                        ColumnDef::new(SyncSchedules::Id)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncSchedules::Name)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(SyncSchedules::DatasetId).string().not_null())
                    .col(ColumnDef::new(SyncSchedules::Sync).binary().not_null())
                    .col(ColumnDef::new(SyncSchedules::Cron).string().not_null())
                    .col(ColumnDef::new(SyncSchedules::TimeZone).string().not_null())
                    .col(
                        ColumnDef::new(SyncSchedules::NextRunAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncSchedules::LastJobId).string().null())
                    .col(
                        ColumnDef::new(SyncSchedules::Runs)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(SyncSchedules::Skipped)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(SyncSchedules::LastError).text().null())
                    .col(
                        ColumnDef::new(SyncSchedules::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sync_schedules_dataset")
                            .from(SyncSchedules::Table, SyncSchedules::DatasetId)
                            .to(Datasets::Table, Datasets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sync_schedules_next_run_at")
                    .table(SyncSchedules::Table)
                    .col(SyncSchedules::NextRunAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .add_column(ColumnDef::new(MigrationJobs::ScheduleId).string().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .drop_column(MigrationJobs::ScheduleId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(SyncSchedules::Table).to_owned())
            .await
    }
}
