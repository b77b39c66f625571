//! Access control: bearer tokens (stored as hashes) and the audit log of every change.
//! Agents now present a token bound to their site on every call, so the per-agent token
//! each registration used to hand out is gone.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    Name,
    Role,
    SiteId,
    SecretHash,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Principal,
    Role,
    Method,
    Resource,
    Summary,
    Outcome,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    TokenHash,
}

fn time(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).timestamp_with_time_zone().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tokens::Table)
                    .col(ColumnDef::new(Tokens::Id).string().not_null().primary_key())
                    .col(
                        ColumnDef::new(Tokens::Name)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Tokens::Role).string().not_null())
                    .col(ColumnDef::new(Tokens::SiteId).string().null())
                    // SHA-256 of the secret, hex: the secret itself is never stored.
                    .col(
                        ColumnDef::new(Tokens::SecretHash)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(time(Tokens::CreatedAt).not_null())
                    .col(time(Tokens::ExpiresAt).null())
                    .col(time(Tokens::RevokedAt).null())
                    .col(ColumnDef::new(Tokens::CreatedBy).string().not_null())
                    .to_owned(),
            )
            .await?;
        let s = |c: AuditEvents| ColumnDef::new(c).string().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    // A UUIDv7: time-ordered, so the newest-first listing reads an index.
                    .col(s(AuditEvents::Id).primary_key())
                    .col(time(AuditEvents::At).not_null())
                    .col(s(AuditEvents::Principal))
                    .col(s(AuditEvents::Role))
                    .col(s(AuditEvents::Method))
                    .col(s(AuditEvents::Resource))
                    .col(ColumnDef::new(AuditEvents::Summary).text().not_null())
                    .col(ColumnDef::new(AuditEvents::Outcome).text().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_audit_events_principal", AuditEvents::Principal),
            ("ix_audit_events_resource", AuditEvents::Resource),
            ("ix_audit_events_at", AuditEvents::At),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditEvents::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .drop_column(Agents::TokenHash)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .add_column(
                        ColumnDef::new(Agents::TokenHash)
                            .string()
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Tokens::Table).to_owned())
            .await
    }
}
