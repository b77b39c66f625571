use ferry_proto::v1::{self as pb, admin_service_server::AdminService};
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};

use crate::{
    convert::{audit_event_to_pb, role, role_to_pb, time, token_to_pb},
    domain::{
        audit::AuditFilter,
        name::{Name, Ref},
        page::PageRequest,
        principal::Who,
    },
    error::Error,
    service::{TokenRequest, Tokens},
};

pub struct AdminApi {
    tokens: Tokens,
}

impl AdminApi {
    pub fn new(tokens: Tokens) -> Self {
        AdminApi { tokens }
    }
}

/// An optional exact-match filter: empty means any.
fn filter(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let req = request.into_inner();
        let create = TokenRequest {
            name: Name::parse("name", &req.name)?,
            role: role("role", req.role)?,
            site: (!req.site.is_empty())
                .then(|| Ref::parse("site", &req.site))
                .transpose()?,
            expires_at: time("expire_time", req.expire_time.as_ref())?,
        };
        let (token, secret) = self.tokens.create(create).await?;
        Ok(Response::new(pb::CreateTokenResponse {
            token: Some(token_to_pb(token)),
            secret: secret.expose_secret().to_owned(),
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let tokens = self.tokens.list(req.include_inactive, &page).await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.items.into_iter().map(token_to_pb).collect(),
            next_page_token: tokens.next_token,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::Token>, Status> {
        let r = Ref::parse("token", &request.into_inner().token)?;
        Ok(Response::new(token_to_pb(self.tokens.revoke(&r).await?)))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let audit = AuditFilter {
            principal: filter(req.principal),
            resource: filter(req.resource),
            method: filter(req.method),
            since: time("since", req.since.as_ref())?,
            until: time("until", req.until.as_ref())?,
        };
        if let (Some(since), Some(until)) = (audit.since, audit.until) {
            if until <= since {
                return Err(Error::invalid("until", "must lie after since").into());
            }
        }
        let events = self.tokens.audit_events(&audit, &page).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.items.into_iter().map(audit_event_to_pb).collect(),
            next_page_token: events.next_token,
        }))
    }

    async fn who_am_i(
        &self,
        _request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let call =
            crate::call::current().ok_or_else(|| Status::internal("a call without its caller"))?;
        let p = call.principal;
        let name = match &p.who {
            Who::Token(name) => name.clone(),
            Who::System(name) => (*name).to_owned(),
            Who::Anonymous => "anonymous".to_owned(),
            Who::Unknown => "unknown".to_owned(),
        };
        Ok(Response::new(pb::WhoAmIResponse {
            name,
            role: role_to_pb(p.role),
            site: p.site.map(|s| s.to_string()).unwrap_or_default(),
            expire_time: p.expires_at.map(ferry_proto::time::to_timestamp),
            principal: p.to_string(),
        }))
    }
}
