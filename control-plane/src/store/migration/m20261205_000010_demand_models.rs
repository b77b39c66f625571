//! Demand models: per dataset, each trained forecast with its back-test errors, whether it
//! is in use, and (for the latest only) the forecast itself. Recommendations name the
//! version they used, so versions are kept rather than overwritten.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Datasets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum DemandModels {
    Table,
    DatasetId,
    Version,
    Kind,
    Periods,
    BacktestError,
    SeasonalNaiveError,
    HeuristicError,
    InUse,
    Latest,
    Note,
    HistoryHours,
    TrainedAt,
    Forecast,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let s = |c: DemandModels| ColumnDef::new(c).string().not_null().to_owned();
        let error = |c: DemandModels| ColumnDef::new(c).double().null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(DemandModels::Table)
                    .col(s(DemandModels::DatasetId))
                    .col(s(DemandModels::Version))
                    .col(s(DemandModels::Kind))
                    .col(s(DemandModels::Periods))
                    .col(error(DemandModels::BacktestError))
                    .col(error(DemandModels::SeasonalNaiveError))
                    .col(error(DemandModels::HeuristicError))
                    .col(ColumnDef::new(DemandModels::InUse).boolean().not_null())
                    .col(ColumnDef::new(DemandModels::Latest).boolean().not_null())
                    .col(ColumnDef::new(DemandModels::Note).text().not_null())
                    .col(
                        ColumnDef::new(DemandModels::HistoryHours)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DemandModels::TrainedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // JSON {start, reads, bytes_per_read}; kept for the latest model only.
                    .col(ColumnDef::new(DemandModels::Forecast).text().null())
                    .primary_key(
                        Index::create()
                            .col(DemandModels::DatasetId)
                            .col(DemandModels::Version),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_demand_models_dataset")
                            .from(DemandModels::Table, DemandModels::DatasetId)
                            .to(Datasets::Table, Datasets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_demand_models_dataset_trained")
                    .table(DemandModels::Table)
                    .col(DemandModels::DatasetId)
                    .col(DemandModels::TrainedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_demand_models_latest")
                    .table(DemandModels::Table)
                    .col(DemandModels::Latest)
                    .col(DemandModels::DatasetId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DemandModels::Table).to_owned())
            .await
    }
}
