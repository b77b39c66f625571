//! Token rows: names, roles, sites and expiry, with the hash of each secret.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{
    audit::{record, when},
    corrupt, db_error,
    entity::token,
    is_unique_violation, Store,
};
use crate::{
    domain::{
        ids::TokenId,
        name::{Name, Ref},
        page::{Page, PageRequest},
        principal::Role,
        token::Token,
    },
    error::{Error, Result},
};

impl Store {
    /// Stores a new token with the hash of its secret, and records it in the audit log.
    pub async fn insert_token(&self, t: &Token, secret_hash: &str) -> Result<()> {
        let txn = self.begin_write().await?;
        let row = token::ActiveModel {
            id: Set(t.id.to_string()),
            name: Set(t.name.to_string()),
            role: Set(t.role.as_str().to_owned()),
            site_id: Set(t.site.map(|s| s.to_string())),
            secret_hash: Set(secret_hash.to_owned()),
            created_at: Set(t.created_at),
            expires_at: Set(t.expires_at),
            revoked_at: Set(None),
            created_by: Set(t.created_by.clone()),
        };
        token::Entity::insert(row).exec(&txn).await.map_err(|e| {
            if is_unique_violation(&e) {
                Error::already_exists("token", &t.name)
            } else {
                db_error(e)
            }
        })?;
        let expiry = t.expires_at.map_or("never".to_owned(), when);
        let site = t.site.map(|s| format!(", site {s}")).unwrap_or_default();
        record(
            &txn,
            format!("token:{}", t.name),
            format!("created: role {}{site}, expires {expiry}", t.role),
        )
        .await?;
        txn.commit().await.map_err(db_error)
    }

    /// The token whose secret has this hash.
    pub async fn find_token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>> {
        token::Entity::find()
            .filter(token::Column::SecretHash.eq(secret_hash))
            .one(&self.db)
            .await
            .map_err(db_error)?
            .map(to_domain)
            .transpose()
    }

    pub async fn find_token(&self, r: &Ref<TokenId>) -> Result<Option<Token>> {
        let query = match r {
            Ref::Id(id) => token::Entity::find_by_id(id.to_string()),
            Ref::Name(name) => token::Entity::find().filter(token::Column::Name.eq(name.as_str())),
        };
        query
            .one(&self.db)
            .await
            .map_err(db_error)?
            .map(to_domain)
            .transpose()
    }

    /// Tokens by name; with `inactive`, also the revoked and expired ones.
    pub async fn list_tokens(
        &self,
        inactive: bool,
        now: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page<Token>> {
        let mut query = token::Entity::find().order_by_asc(token::Column::Name);
        if !inactive {
            query = query.filter(token::Column::RevokedAt.is_null()).filter(
                Condition::any()
                    .add(token::Column::ExpiresAt.is_null())
                    .add(token::Column::ExpiresAt.gt(now)),
            );
        }
        if let Some(after) = &page.after {
            query = query.filter(token::Column::Name.gt(after.as_str()));
        }
        let rows = query
            .limit(page.size + 1)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let tokens = rows
            .into_iter()
            .map(to_domain)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(tokens, page.size, |t| t.name.to_string()))
    }

    /// Revokes a token (once: revoking again changes nothing), and records it.
    pub async fn revoke_token(&self, id: TokenId, name: &Name, at: DateTime<Utc>) -> Result<()> {
        let txn = self.begin_write().await?;
        token::Entity::update_many()
            .col_expr(token::Column::RevokedAt, Expr::value(at))
            .filter(token::Column::Id.eq(id.to_string()))
            .filter(token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(db_error)?;
        record(&txn, format!("token:{name}"), "revoked").await?;
        txn.commit().await.map_err(db_error)
    }

    /// How many tokens of `role` are valid at `now`.
    pub async fn count_active_tokens(&self, role: Role, now: DateTime<Utc>) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        token::Entity::find()
            .filter(token::Column::Role.eq(role.as_str()))
            .filter(token::Column::RevokedAt.is_null())
            .filter(
                Condition::any()
                    .add(token::Column::ExpiresAt.is_null())
                    .add(token::Column::ExpiresAt.gt(now)),
            )
            .count(&self.db)
            .await
            .map_err(db_error)
    }

    /// Whether any token was ever made.
    pub async fn has_tokens(&self) -> Result<bool> {
        let any = token::Entity::find()
            .select_only()
            .column(token::Column::Id)
            .limit(1)
            .into_tuple::<String>()
            .one(&self.db)
            .await
            .map_err(db_error)?;
        Ok(any.is_some())
    }

    /// Those of `ids` no longer valid at `now`: revoked, or expired.
    pub async fn inactive_tokens(
        &self,
        ids: &[TokenId],
        now: DateTime<Utc>,
    ) -> Result<Vec<TokenId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = token::Entity::find()
            .select_only()
            .column(token::Column::Id)
            .filter(token::Column::Id.is_in(ids.iter().map(ToString::to_string)))
            .filter(
                Condition::any()
                    .add(token::Column::RevokedAt.is_not_null())
                    .add(token::Column::ExpiresAt.lte(now)),
            )
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        ids.iter()
            .map(|id| id.parse().map_err(|e| corrupt("tokens", id, e)))
            .collect()
    }
}

fn to_domain(row: token::Model) -> Result<Token> {
    let bad = |what: String| corrupt("tokens", &row.id, what);
    Ok(Token {
        id: row.id.parse().map_err(|e| bad(format!("id: {e}")))?,
        name: Name::parse("name", &row.name).map_err(|e| bad(e.to_string()))?,
        role: Role::parse(&row.role).ok_or_else(|| bad(format!("role {}", row.role)))?,
        site: row
            .site_id
            .as_deref()
            .map(|s| s.parse().map_err(|e| bad(format!("site_id: {e}"))))
            .transpose()?,
        created_at: row.created_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        created_by: row.created_by,
    })
}
