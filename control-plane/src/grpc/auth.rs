//! Authentication and authorization as a `tower` layer around every service.
//!
//! For each `ferry.v1` call it finds the caller from `authorization: Bearer <secret>`,
//! checks the caller's role against [`roles::TABLE`], and runs the handler as a
//! [`Call`], so that the store records each change in the audit log in the change's own
//! transaction. The layer records what the store cannot: refusals (`denied: …`),
//! mutating calls that failed (`failed: …`) and those that changed nothing. Health,
//! reflection and `/metrics` pass untouched.

use std::{
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use tonic::{Code, Status};
use tower::{Layer, Service};
use tracing::{error, warn};

use super::{
    revocable::Revocable,
    roles::{self, Rule},
};
use crate::{
    call::Call,
    clock::SharedClock,
    domain::{audit::AuditEvent, ids::AuditEventId, principal::Principal},
    error::Error,
    metrics,
    service::{Sessions, Tokens},
    store::Store,
};

/// What the layer needs, shared by every connection.
pub struct Authenticator {
    tokens: Tokens,
    sessions: Sessions,
    store: Store,
    clock: SharedClock,
    /// Off: every caller is an anonymous admin (development only).
    enabled: bool,
    /// Rows for unauthenticated calls, which anyone can make, are rate-limited.
    unknown_callers: Limiter,
}

impl Authenticator {
    pub fn new(tokens: Tokens, sessions: Sessions, store: Store, clock: SharedClock) -> Self {
        Authenticator {
            tokens,
            sessions,
            store,
            clock,
            enabled: true,
            unknown_callers: Limiter::new(10.0, 100.0),
        }
    }

    /// Serves without authentication: every caller is an admin.
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }

    async fn identify(&self, headers: &http::HeaderMap) -> Result<Principal, Error> {
        if !self.enabled {
            return Ok(Principal::anonymous());
        }
        let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
            Error::Unauthenticated(
                "this call needs `authorization: Bearer <token>` metadata".into(),
            )
        })?;
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "the authorization metadata must read `Bearer <token>`".into(),
                )
            })?;
        self.tokens.authenticate(secret).await
    }

    /// Writes one record the store did not: a refusal, a failure, or no change.
    async fn record(&self, call: &Call, outcome: String, summary: &str) {
        let event = AuditEvent {
            id: AuditEventId::new(),
            at: call.at,
            principal: call.principal.to_string(),
            role: call.principal.role,
            method: call.method.clone(),
            resource: call.target().unwrap_or_default(),
            summary: summary.to_owned(),
            outcome,
        };
        if let Err(e) = self.store.append_audit(&event).await {
            error!(error = %e, method = %event.method, outcome = %event.outcome, "writing an audit record");
        }
    }

    async fn refuse(&self, call: &Call, status: Status) -> http::Response<tonic::body::Body> {
        match status.code() {
            Code::Unauthenticated => {
                metrics::CALLS_UNAUTHENTICATED.inc();
                if self.unknown_callers.admit() {
                    self.record(call, format!("denied: {}", status.message()), "")
                        .await;
                } else {
                    metrics::AUDIT_REFUSALS_UNRECORDED.inc();
                }
            }
            Code::PermissionDenied => {
                metrics::CALLS_PERMISSION_DENIED.inc();
                self.record(call, format!("denied: {}", status.message()), "")
                    .await;
            }
            _ => {}
        }
        status.into_http()
    }

    /// Records what the handler's answer says, where the store has not.
    async fn settle(&self, call: &Call, rule: Rule, answer: Option<Status>) {
        match answer {
            Some(s) if s.code() == Code::PermissionDenied => {
                metrics::CALLS_PERMISSION_DENIED.inc();
                self.record(call, format!("denied: {}", s.message()), "")
                    .await;
            }
            Some(s) if s.code() != Code::Ok && rule.audited => {
                let message: String = s.message().chars().take(500).collect();
                let outcome = format!("failed: {}: {message}", code_name(s.code()));
                self.record(call, outcome, "").await;
            }
            Some(s) if s.code() != Code::Ok => {}
            _ if rule.audited && !call.recorded() => {
                self.record(call, "ok".into(), "no change").await;
            }
            _ => {}
        }
    }
}

/// The lower-case gRPC name of a code (`permission_denied`).
fn code_name(code: Code) -> String {
    format!("{code:?}")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let lower = c.to_ascii_lowercase();
            let sep = (c.is_ascii_uppercase() && i > 0).then_some('_');
            sep.into_iter().chain(std::iter::once(lower))
        })
        .collect()
}

/// The layer; see the module's documentation.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Authenticator) -> Self {
        AuthLayer {
            auth: Arc::new(auth),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B> Service<http::Request<B>> for Auth<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let Some(rule) = roles::rule_of(request.uri().path()) else {
            return Box::pin(self.inner.call(request));
        };
        // The clone is not ready; the service `poll_ready` readied is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let method = request.uri().path().trim_start_matches('/').to_owned();
        Box::pin(async move {
            let at = auth.clock.now();
            let mut principal = match auth.identify(request.headers()).await {
                Ok(p) => p,
                Err(e) => {
                    let call = Call::new(Principal::unknown(), method, at);
                    return Ok(auth.refuse(&call, Status::from(e)).await);
                }
            };
            principal.certificate = super::peer::client_cert_subject(request.extensions());
            let call = Call::new(principal.clone(), method.clone(), at);
            if !rule.allows(principal.role) {
                let needed = match rule.role {
                    crate::domain::principal::Role::Agent => "an agent token".to_owned(),
                    role if rule.agents => format!("the {role} role or an agent token"),
                    role => format!("the {role} role"),
                };
                let status = Status::permission_denied(format!(
                    "{method} needs {needed}; {principal} has the {} role",
                    principal.role
                ));
                return Ok(auth.refuse(&call, status).await);
            }
            let session = principal
                .token
                .map(|id| auth.sessions.open(id, principal.expires_at));
            request.extensions_mut().insert(principal);
            let response = call.clone().scope(inner.call(request)).await?;
            // A refusal or failure comes "trailers-only", in the headers; an answer
            // with a message has its status (OK) in the trailers.
            auth.settle(&call, rule, Status::from_header_map(response.headers()))
                .await;
            Ok(match session {
                Some(session) => {
                    response.map(|body| tonic::body::Body::new(Revocable::new(body, session)))
                }
                None => response,
            })
        })
    }
}

/// A token bucket: `rate` admissions a second, up to `burst` at once.
struct Limiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    fn new(rate: f64, burst: f64) -> Self {
        Limiter {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    fn admit(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Logs, at every start, that authentication is off.
pub fn warn_if_disabled(enabled: bool) {
    if !enabled {
        warn!("authentication is OFF (auth.enabled = false): every caller is an admin; never expose this control plane beyond a development machine");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_print_in_snake_case() {
        assert_eq!(code_name(Code::PermissionDenied), "permission_denied");
        assert_eq!(code_name(Code::NotFound), "not_found");
        assert_eq!(code_name(Code::Internal), "internal");
    }

    #[test]
    fn the_limiter_admits_a_burst_then_its_rate() {
        let limiter = Limiter::new(1.0, 3.0);
        assert!((0..3).all(|_| limiter.admit()));
        assert!(!limiter.admit());
    }
}
