//! Jobs are split into copy tasks that every agent of a site shares: each object
//! records its task and, for a multipart upload to S3, the upload to resume; a job
//! records whether its listing finished.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobObjects {
    Table,
    JobId,
    Task,
    Upload,
}

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    Listed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(JobObjects::Table)
                    .add_column(ColumnDef::new(JobObjects::Task).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(JobObjects::Table)
                    // JSON of the unfinished multipart upload; NULL when there is none.
                    .add_column(ColumnDef::new(JobObjects::Upload).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    // The current attempt's listing ran to its end.
                    .add_column(
                        ColumnDef::new(MigrationJobs::Listed)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_job_objects_task")
                    .table(JobObjects::Table)
                    .col(JobObjects::JobId)
                    .col(JobObjects::Task)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_job_objects_task")
                    .table(JobObjects::Table)
                    .to_owned(),
            )
            .await?;
        for column in [JobObjects::Upload, JobObjects::Task] {
            manager
                .alter_table(
                    Table::alter()
                        .table(JobObjects::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .drop_column(MigrationJobs::Listed)
                    .to_owned(),
            )
            .await
    }
}
