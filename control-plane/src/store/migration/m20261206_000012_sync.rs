//! Sync jobs and replica manifests. A job has a kind (`migration` or `sync`), and a
//! sync its deletion rule, cap and figures; a job's objects keep the source's
//! modification time and etag as listed; a replica keeps the instant its last verified
//! sync listed the source, and its manifest, one row per object, is what the next sync
//! compares a listing with to copy only what changed.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    Kind,
    Deletion,
    MaxDelete,
    ObjectsUnchanged,
    ExtrasFound,
    ExtrasDeleted,
}

#[derive(DeriveIden)]
enum JobObjects {
    Table,
    SourceModified,
    SourceEtag,
}

#[derive(DeriveIden)]
enum Replicas {
    Table,
    DatasetId,
    SiteId,
    Path,
    SyncedAt,
}

#[derive(DeriveIden)]
enum ReplicaObjects {
    Table,
    DatasetId,
    SiteId,
    Path,
    Key,
    Size,
    Modified,
    Etag,
    Xxh3,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

fn counter(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let job_columns = [
            ColumnDef::new(MigrationJobs::Kind)
                .string()
                .not_null()
                .default("migration")
                .to_owned(),
            ColumnDef::new(MigrationJobs::Deletion)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(MigrationJobs::MaxDelete)
                .big_integer()
                .null()
                .to_owned(),
            counter(MigrationJobs::ObjectsUnchanged),
            counter(MigrationJobs::ExtrasFound),
            counter(MigrationJobs::ExtrasDeleted),
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
        let object_columns = [
            ColumnDef::new(JobObjects::SourceModified)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(JobObjects::SourceEtag)
                .string()
                .null()
                .to_owned(),
        ];
        for mut column in object_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(JobObjects::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Replicas::Table)
                    .add_column(
                        ColumnDef::new(Replicas::SyncedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReplicaObjects::Table)
                    .col(
                        ColumnDef::new(ReplicaObjects::DatasetId)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ReplicaObjects::SiteId).string().not_null())
                    .col(
                        ColumnDef::new(ReplicaObjects::Path)
                            .string_len(1024)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReplicaObjects::Key)
                            .string_len(1024)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReplicaObjects::Size)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReplicaObjects::Modified)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(ReplicaObjects::Etag).string().null())
                    .col(ColumnDef::new(ReplicaObjects::Xxh3).string().null())
                    .primary_key(
                        Index::create()
                            .col(ReplicaObjects::DatasetId)
                            .col(ReplicaObjects::SiteId)
                            .col(ReplicaObjects::Path)
                            .col(ReplicaObjects::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_replica_objects_replica")
                            .from_col(ReplicaObjects::DatasetId)
                            .from_col(ReplicaObjects::SiteId)
                            .from_col(ReplicaObjects::Path)
                            .to_tbl(Replicas::Table)
                            .to_col(Replicas::DatasetId)
                            .to_col(Replicas::SiteId)
                            .to_col(Replicas::Path)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReplicaObjects::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Replicas::Table)
                    .drop_column(Replicas::SyncedAt)
                    .to_owned(),
            )
            .await?;
        for column in [JobObjects::SourceModified, JobObjects::SourceEtag] {
            manager
                .alter_table(
                    Table::alter()
                        .table(JobObjects::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            MigrationJobs::Kind,
            MigrationJobs::Deletion,
            MigrationJobs::MaxDelete,
            MigrationJobs::ObjectsUnchanged,
            MigrationJobs::ExtrasFound,
            MigrationJobs::ExtrasDeleted,
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
