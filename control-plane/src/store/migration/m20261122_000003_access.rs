//! Hourly access aggregates and the cursors that make event folding exactly-once.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Datasets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AccessHourly {
    Table,
    DatasetId,
    Hour,
    Reads,
    Writes,
    BytesRead,
    BytesWritten,
    LatencyMsSum,
}

#[derive(DeriveIden)]
enum EventCursors {
    Table,
    Consumer,
    LastSequence,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let counter = |c: AccessHourly| {
            ColumnDef::new(c)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(AccessHourly::Table)
                    .col(ColumnDef::new(AccessHourly::DatasetId).string().not_null())
                    .col(
                        ColumnDef::new(AccessHourly::Hour)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(counter(AccessHourly::Reads))
                    .col(counter(AccessHourly::Writes))
                    .col(counter(AccessHourly::BytesRead))
                    .col(counter(AccessHourly::BytesWritten))
                    .col(
                        ColumnDef::new(AccessHourly::LatencyMsSum)
                            .double()
                            .not_null()
                            .default(0.0),
                    )
                    .primary_key(
                        Index::create()
                            .col(AccessHourly::DatasetId)
                            .col(AccessHourly::Hour),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_access_hourly_dataset")
                            .from(AccessHourly::Table, AccessHourly::DatasetId)
                            .to(Datasets::Table, Datasets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EventCursors::Table)
                    .col(
                        ColumnDef::new(EventCursors::Consumer)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(EventCursors::LastSequence)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventCursors::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AccessHourly::Table).to_owned())
            .await
    }
}
