//! A copy task's objects are read in key order (an agent starting or resuming the task
//! asks for them a page at a time): the task index carries the key, so the read walks
//! the task's own entries in order. With the index on job and task alone, SQLite read
//! them through the primary key instead, every object of the job in key order, and the
//! tasks of a 100,000-object job cost a scan of half the job each.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum JobObjects {
    Table,
    JobId,
    Task,
    Key,
}

/// The index this migration replaces, and its successor.
const OLD: &str = "idx_job_objects_task";
const NEW: &str = "idx_job_objects_task_key";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NEW)
                    .table(JobObjects::Table)
                    .col(JobObjects::JobId)
                    .col(JobObjects::Task)
                    .col(JobObjects::Key)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(OLD).table(JobObjects::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(JobObjects::Table)
                    .col(JobObjects::JobId)
                    .col(JobObjects::Task)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(NEW).table(JobObjects::Table).to_owned())
            .await
    }
}
