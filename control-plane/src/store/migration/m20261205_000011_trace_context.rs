//! The W3C trace context rides with work that waits in the catalogue: a job keeps the
//! `traceparent` of the call that started it, and each outbox message the one of the
//! span that wrote it, so the agents' tasks and every later step join one trace.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MigrationJobs {
    Table,
    TraceParent,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    TraceParent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .add_column(ColumnDef::new(MigrationJobs::TraceParent).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(ColumnDef::new(Outbox::TraceParent).string().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::TraceParent)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MigrationJobs::Table)
                    .drop_column(MigrationJobs::TraceParent)
                    .to_owned(),
            )
            .await
    }
}
