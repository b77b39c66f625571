//! Recommendations: every piece of placement advice computed, kept as the audit trail.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Datasets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Recommendations {
    Table,
    Id,
    DatasetId,
    CurrentTier,
    CurrentSiteId,
    RecommendedTier,
    RecommendedSiteId,
    Reasons,
    MonthlyCostNow,
    MonthlyCostAfter,
    MoveCost,
    PaybackDays,
    ModelVersion,
    State,
    JobId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let s = |c: Recommendations| ColumnDef::new(c).string().not_null().to_owned();
        let d = |c: Recommendations| ColumnDef::new(c).double().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(Recommendations::Table)
                    .col(s(Recommendations::Id).primary_key())
                    .col(s(Recommendations::DatasetId))
                    .col(s(Recommendations::CurrentTier))
                    .col(s(Recommendations::CurrentSiteId))
                    .col(s(Recommendations::RecommendedTier))
                    .col(s(Recommendations::RecommendedSiteId))
                    .col(ColumnDef::new(Recommendations::Reasons).text().not_null())
                    .col(d(Recommendations::MonthlyCostNow))
                    .col(d(Recommendations::MonthlyCostAfter))
                    .col(d(Recommendations::MoveCost))
                    .col(ColumnDef::new(Recommendations::PaybackDays).double().null())
                    .col(s(Recommendations::ModelVersion))
                    .col(s(Recommendations::State))
                    .col(ColumnDef::new(Recommendations::JobId).string().null())
                    .col(
                        ColumnDef::new(Recommendations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_recommendations_dataset")
                            .from(Recommendations::Table, Recommendations::DatasetId)
                            .to(Datasets::Table, Datasets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recommendations_dataset")
                    .table(Recommendations::Table)
                    .col(Recommendations::DatasetId)
                    .col(Recommendations::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Recommendations::Table).to_owned())
            .await
    }
}
