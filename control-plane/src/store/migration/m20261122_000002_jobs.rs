//! Agents, migration jobs with their per-object records, and the transactional outbox.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sites {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Datasets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    SiteId,
    Version,
    Hostname,
    Concurrency,
    TokenHash,
    Stopped,
    LastHeartbeatAt,
    RegisteredAt,
}

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    Id,
    IdempotencyKey,
    DatasetId,
    SourceSiteId,
    SourcePath,
    DestinationSiteId,
    DestinationPath,
    ExecutingSiteId,
    StorageClass,
    VerifyMode,
    RetireSource,
    Filter,
    State,
    Attempt,
    Error,
    HolderAgentId,
    ObjectsTotal,
    ObjectsDone,
    ObjectsFailed,
    BytesTotal,
    BytesDone,
    BandwidthLimit,
    SourceRetired,
    CreatedAt,
    StartedAt,
    UpdatedAt,
    EndedAt,
}

#[derive(DeriveIden)]
enum JobObjects {
    Table,
    JobId,
    Key,
    Size,
    Status,
    SourceXxh3,
    DestinationXxh3,
    Attempts,
    Error,
    Operation,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Subject,
    MessageId,
    Payload,
    CreatedAt,
    PublishedAt,
}

fn string(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().not_null().to_owned()
}

fn counter(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

fn instant(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn maybe_instant(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(string(Agents::Id).primary_key())
                    .col(string(Agents::SiteId))
                    .col(string(Agents::Version))
                    .col(string(Agents::Hostname))
                    .col(ColumnDef::new(Agents::Concurrency).big_integer().not_null())
                    .col(string(Agents::TokenHash))
                    .col(ColumnDef::new(Agents::Stopped).boolean().not_null())
                    .col(instant(Agents::LastHeartbeatAt))
                    .col(instant(Agents::RegisteredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agents_site")
                            .from(Agents::Table, Agents::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_agents_site")
                    .table(Agents::Table)
                    .col(Agents::SiteId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MigrationJobs::Table)
                    .col(string(MigrationJobs::Id).primary_key())
                    .col(string(MigrationJobs::IdempotencyKey).unique_key())
                    .col(string(MigrationJobs::DatasetId))
                    .col(string(MigrationJobs::SourceSiteId))
                    .col(ColumnDef::new(MigrationJobs::SourcePath).text().not_null())
                    .col(string(MigrationJobs::DestinationSiteId))
                    .col(
                        ColumnDef::new(MigrationJobs::DestinationPath)
                            .text()
                            .not_null(),
                    )
                    .col(string(MigrationJobs::ExecutingSiteId))
                    .col(string(MigrationJobs::StorageClass))
                    .col(string(MigrationJobs::VerifyMode))
                    .col(
                        ColumnDef::new(MigrationJobs::RetireSource)
                            .boolean()
                            .not_null(),
                    )
                    .col(ColumnDef::new(MigrationJobs::Filter).text().not_null())
                    .col(string(MigrationJobs::State))
                    .col(
                        ColumnDef::new(MigrationJobs::Attempt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(MigrationJobs::Error).text().null())
                    .col(ColumnDef::new(MigrationJobs::HolderAgentId).string().null())
                    .col(counter(MigrationJobs::ObjectsTotal))
                    .col(counter(MigrationJobs::ObjectsDone))
                    .col(counter(MigrationJobs::ObjectsFailed))
                    .col(counter(MigrationJobs::BytesTotal))
                    .col(counter(MigrationJobs::BytesDone))
                    .col(
                        ColumnDef::new(MigrationJobs::BandwidthLimit)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(MigrationJobs::SourceRetired)
                            .boolean()
                            .not_null(),
                    )
                    .col(instant(MigrationJobs::CreatedAt))
                    .col(maybe_instant(MigrationJobs::StartedAt))
                    .col(instant(MigrationJobs::UpdatedAt))
                    .col(maybe_instant(MigrationJobs::EndedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_migration_jobs_dataset")
                            .from(MigrationJobs::Table, MigrationJobs::DatasetId)
                            .to(Datasets::Table, Datasets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_migration_jobs_dataset", vec![MigrationJobs::DatasetId]),
            (
                "ix_migration_jobs_state",
                vec![MigrationJobs::State, MigrationJobs::UpdatedAt],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(MigrationJobs::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }

        // At most one unfinished job per dataset, whatever the idempotency keys. The same
        // partial-index syntax works on SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_migration_jobs_active_dataset ON migration_jobs \
                 (dataset_id) WHERE state NOT IN ('completed', 'failed', 'cancelled')",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(JobObjects::Table)
                    .col(string(JobObjects::JobId))
                    .col(ColumnDef::new(JobObjects::Key).string_len(1024).not_null())
                    .col(counter(JobObjects::Size))
                    .col(string(JobObjects::Status))
                    .col(ColumnDef::new(JobObjects::SourceXxh3).string().null())
                    .col(ColumnDef::new(JobObjects::DestinationXxh3).string().null())
                    .col(counter(JobObjects::Attempts))
                    .col(ColumnDef::new(JobObjects::Error).text().null())
                    .col(ColumnDef::new(JobObjects::Operation).string().null())
                    .col(instant(JobObjects::UpdatedAt))
                    .primary_key(Index::create().col(JobObjects::JobId).col(JobObjects::Key))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_job_objects_job")
                            .from(JobObjects::Table, JobObjects::JobId)
                            .to(MigrationJobs::Table, MigrationJobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_job_objects_status")
                    .table(JobObjects::Table)
                    .col(JobObjects::JobId)
                    .col(JobObjects::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(
                        ColumnDef::new(Outbox::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Outbox::Subject).text().not_null())
                    .col(ColumnDef::new(Outbox::MessageId).text().not_null())
                    .col(ColumnDef::new(Outbox::Payload).binary().not_null())
                    .col(instant(Outbox::CreatedAt))
                    .col(maybe_instant(Outbox::PublishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_unpublished")
                    .table(Outbox::Table)
                    .col(Outbox::PublishedAt)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Outbox::Table.into_iden(),
            JobObjects::Table.into_iden(),
            MigrationJobs::Table.into_iden(),
            Agents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
