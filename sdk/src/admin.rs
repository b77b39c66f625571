//! Tokens and the audit log, built on the `AdminService` stub (admin tokens only).

use chrono::{DateTime, Utc};
use ferry_proto::{time::to_timestamp, v1 as pb};
use pb::admin_service_client::AdminServiceClient;

use crate::auth::Transport;
use crate::client::{collect_pages, required, Client, PAGE_SIZE};
use crate::error::Error;

/// Filters of [`Client::list_audit_events`]; each one set narrows the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exactly, e.g. `token:ci` or `token:admin cert:CN=ops`.
    pub principal: Option<String>,
    /// Exactly, e.g. `site:fast` or `job:<id>`.
    pub resource: Option<String>,
    /// Exactly, e.g. `ferry.v1.SiteService/CreateSite`.
    pub method: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Client {
    /// An `AdminService` stub on this client's connection.
    pub fn admin(&self) -> AdminServiceClient<Transport> {
        AdminServiceClient::new(self.transport())
    }

    /// Makes a token; the answer holds its secret, which is never shown again. `site`
    /// (an id or name) is for agent tokens, and only for them.
    pub async fn create_token(
        &self,
        name: &str,
        role: pb::Role,
        site: Option<&str>,
        expires: Option<DateTime<Utc>>,
    ) -> Result<pb::CreateTokenResponse, Error> {
        let request = pb::CreateTokenRequest {
            name: required("token name", name)?,
            role: role.into(),
            site: site.unwrap_or_default().to_owned(),
            expire_time: expires.map(to_timestamp),
        };
        let answer = self.admin().create_token(request).await?.into_inner();
        if answer.token.is_none() || answer.secret.is_empty() {
            return Err(Error::Protocol(
                "CreateToken answered without the token or its secret".into(),
            ));
        }
        Ok(answer)
    }

    /// Who this client's token is: name, role, site and expiry. Any valid token may ask.
    pub async fn who_am_i(&self) -> Result<pb::WhoAmIResponse, Error> {
        Ok(self
            .admin()
            .who_am_i(pb::WhoAmIRequest {})
            .await?
            .into_inner())
    }

    /// Every token, by name; revoked and expired ones too with `include_inactive`.
    pub async fn list_tokens(&self, include_inactive: bool) -> Result<Vec<pb::Token>, Error> {
        collect_pages(|page_token| {
            let mut stub = self.admin();
            let request = pb::ListTokensRequest {
                include_inactive,
                page_size: PAGE_SIZE,
                page_token,
            };
            async move {
                let page = stub.list_tokens(request).await?.into_inner();
                Ok((page.tokens, page.next_page_token))
            }
        })
        .await
    }

    /// Revokes the token with this id or name.
    pub async fn revoke_token(&self, token: &str) -> Result<pb::Token, Error> {
        let token = required("token id or name", token)?;
        Ok(self
            .admin()
            .revoke_token(pb::RevokeTokenRequest { token })
            .await?
            .into_inner())
    }

    /// Up to `limit` records of the audit log matching `filter`, newest first.
    pub async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<pb::AuditEvent>, Error> {
        let mut events = Vec::new();
        let mut page_token = String::new();
        let mut stub = self.admin();
        while events.len() < limit {
            let request = pb::ListAuditEventsRequest {
                principal: filter.principal.clone().unwrap_or_default(),
                resource: filter.resource.clone().unwrap_or_default(),
                method: filter.method.clone().unwrap_or_default(),
                since: filter.since.map(to_timestamp),
                until: filter.until.map(to_timestamp),
                page_size: i32::try_from(limit - events.len())
                    .unwrap_or(PAGE_SIZE)
                    .min(PAGE_SIZE),
                page_token,
            };
            let page = stub.list_audit_events(request).await?.into_inner();
            events.extend(page.events);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        events.truncate(limit);
        Ok(events)
    }
}
