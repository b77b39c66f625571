//! The catalogue: sites, datasets with their labels and replicas, and policies with
//! their tier placements.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sites {
    Table,
    Id,
    Name,
    Uri,
    Options,
    Tier,
    DefaultStorageClass,
    LatencyMs,
    PriceStorageGbMonth,
    PriceRetrievalGb,
    PriceEgressGb,
    #[sea_orm(iden = "price_per_1000_requests")]
    PricePer1000Requests,
    MinStorageDays,
    Credentials,
    CredentialKeys,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Datasets {
    Table,
    Id,
    Name,
    SiteId,
    Path,
    CurrentTier,
    LatencySloMs,
    SizeBytes,
    ObjectCount,
    Owner,
    LastAccessAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DatasetLabels {
    Table,
    DatasetId,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum Replicas {
    Table,
    DatasetId,
    SiteId,
    Path,
    Role,
    State,
    VerifiedAt,
    Manifest,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Policies {
    Table,
    Id,
    Name,
    Description,
    Selector,
    Priority,
    HotAfterMs,
    WarmAfterMs,
    LatencySloMs,
    MonthlyCostTarget,
    MinResidencyMs,
    AutoMigrate,
    RetireSource,
    VerifyMode,
    WindowStart,
    WindowEnd,
    BandwidthLimit,
    MaxConcurrentMigrations,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PolicyPlacements {
    Table,
    PolicyId,
    Tier,
    SiteId,
}

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().not_null().to_owned()
}

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().not_null().to_owned()
}

fn instant(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sites::Table)
                    .col(id(Sites::Id).primary_key())
                    .col(id(Sites::Name).unique_key())
                    .col(text(Sites::Uri))
                    .col(text(Sites::Options))
                    .col(id(Sites::Tier))
                    .col(id(Sites::DefaultStorageClass))
                    .col(ColumnDef::new(Sites::LatencyMs).big_integer().not_null())
                    .col(
                        ColumnDef::new(Sites::PriceStorageGbMonth)
                            .double()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Sites::PriceRetrievalGb).double().not_null())
                    .col(ColumnDef::new(Sites::PriceEgressGb).double().not_null())
                    .col(
                        ColumnDef::new(Sites::PricePer1000Requests)
                            .double()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sites::MinStorageDays)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Sites::Credentials).binary().null())
                    .col(text(Sites::CredentialKeys))
                    .col(instant(Sites::CreatedAt))
                    .col(instant(Sites::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Datasets::Table)
                    .col(id(Datasets::Id).primary_key())
                    .col(id(Datasets::Name).unique_key())
                    .col(id(Datasets::SiteId))
                    .col(text(Datasets::Path))
                    .col(id(Datasets::CurrentTier))
                    .col(ColumnDef::new(Datasets::LatencySloMs).big_integer().null())
                    .col(ColumnDef::new(Datasets::SizeBytes).big_integer().not_null())
                    .col(
                        ColumnDef::new(Datasets::ObjectCount)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text(Datasets::Owner))
                    .col(
                        ColumnDef::new(Datasets::LastAccessAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(instant(Datasets::CreatedAt))
                    .col(instant(Datasets::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_datasets_site")
                            .from(Datasets::Table, Datasets::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_datasets_site_path")
                    .table(Datasets::Table)
                    .col(Datasets::SiteId)
                    .col(Datasets::Path)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_datasets_tier", Datasets::CurrentTier),
            ("ix_datasets_owner", Datasets::Owner),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Datasets::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(DatasetLabels::Table)
                    .col(id(DatasetLabels::DatasetId))
                    .col(id(DatasetLabels::Key))
                    .col(text(DatasetLabels::Value))
                    .primary_key(
                        Index::create()
                            .col(DatasetLabels::DatasetId)
                            .col(DatasetLabels::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_dataset_labels_dataset")
                            .from(DatasetLabels::Table, DatasetLabels::DatasetId)
                            .to(Datasets::Table, Datasets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_dataset_labels_key_value")
                    .table(DatasetLabels::Table)
                    .col(DatasetLabels::Key)
                    .col(DatasetLabels::Value)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Replicas::Table)
                    .col(id(Replicas::DatasetId))
                    .col(id(Replicas::SiteId))
                    .col(ColumnDef::new(Replicas::Path).string_len(1024).not_null())
                    .col(id(Replicas::Role))
                    .col(id(Replicas::State))
                    .col(
                        ColumnDef::new(Replicas::VerifiedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Replicas::Manifest).text().null())
                    .col(instant(Replicas::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Replicas::DatasetId)
                            .col(Replicas::SiteId)
                            .col(Replicas::Path),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_replicas_dataset")
                            .from(Replicas::Table, Replicas::DatasetId)
                            .to(Datasets::Table, Datasets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_replicas_site")
                            .from(Replicas::Table, Replicas::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_replicas_site")
                    .table(Replicas::Table)
                    .col(Replicas::SiteId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Policies::Table)
                    .col(id(Policies::Id).primary_key())
                    .col(id(Policies::Name).unique_key())
                    .col(text(Policies::Description))
                    .col(text(Policies::Selector))
                    .col(ColumnDef::new(Policies::Priority).integer().not_null())
                    .col(
                        ColumnDef::new(Policies::HotAfterMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Policies::WarmAfterMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Policies::LatencySloMs).big_integer().null())
                    .col(ColumnDef::new(Policies::MonthlyCostTarget).double().null())
                    .col(
                        ColumnDef::new(Policies::MinResidencyMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Policies::AutoMigrate).boolean().not_null())
                    .col(ColumnDef::new(Policies::RetireSource).boolean().not_null())
                    .col(id(Policies::VerifyMode))
                    .col(ColumnDef::new(Policies::WindowStart).integer().null())
                    .col(ColumnDef::new(Policies::WindowEnd).integer().null())
                    .col(
                        ColumnDef::new(Policies::BandwidthLimit)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Policies::MaxConcurrentMigrations)
                            .big_integer()
                            .null(),
                    )
                    .col(instant(Policies::CreatedAt))
                    .col(instant(Policies::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PolicyPlacements::Table)
                    .col(id(PolicyPlacements::PolicyId))
                    .col(id(PolicyPlacements::Tier))
                    .col(id(PolicyPlacements::SiteId))
                    .primary_key(
                        Index::create()
                            .col(PolicyPlacements::PolicyId)
                            .col(PolicyPlacements::Tier),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_policy_placements_policy")
                            .from(PolicyPlacements::Table, PolicyPlacements::PolicyId)
                            .to(Policies::Table, Policies::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_policy_placements_site")
                            .from(PolicyPlacements::Table, PolicyPlacements::SiteId)
                            .to(Sites::Table, Sites::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_policy_placements_site")
                    .table(PolicyPlacements::Table)
                    .col(PolicyPlacements::SiteId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PolicyPlacements::Table.into_iden(),
            Policies::Table.into_iden(),
            Replicas::Table.into_iden(),
            DatasetLabels::Table.into_iden(),
            Datasets::Table.into_iden(),
            Sites::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
