//! The calls open under each token, so that a token that stops being valid ends them:
//! a `WatchJob` left running would otherwise outlive a revocation by hours.
//!
//! A revocation made here ends them at once; one made by another control plane of the
//! same catalogue, or an expiry, within [`CHECK_INTERVAL`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::{clock::SharedClock, domain::ids::TokenId, store::Store};

/// How often open calls' tokens are checked against the catalogue.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Open {
    /// Cancelled when the token stops being valid.
    ended: CancellationToken,
    calls: usize,
    expires_at: Option<DateTime<Utc>>,
}

/// The registry of open calls by token. Cheap to clone.
#[derive(Clone, Default)]
pub struct Sessions {
    open: Arc<Mutex<HashMap<TokenId, Open>>>,
}

/// One open call; dropping it (when the answer's last frame is sent or the client goes
/// away) takes it off the registry.
pub struct Session {
    sessions: Sessions,
    token: TokenId,
    /// Cancelled when the token stops being valid.
    pub ended: CancellationToken,
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut open = self.sessions.lock();
        if let Some(entry) = open.get_mut(&self.token) {
            entry.calls -= 1;
            if entry.calls == 0 {
                open.remove(&self.token);
            }
        }
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenId, Open>> {
        // The map stays consistent whatever panicked while holding it.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a call made with `token`.
    pub fn open(&self, token: TokenId, expires_at: Option<DateTime<Utc>>) -> Session {
        let mut open = self.lock();
        let entry = open.entry(token).or_default();
        entry.calls += 1;
        entry.expires_at = expires_at;
        Session {
            sessions: self.clone(),
            token,
            ended: entry.ended.clone(),
        }
    }

    /// Ends every call open under `token`.
    pub fn end(&self, token: TokenId) {
        if let Some(entry) = self.lock().get(&token) {
            entry.ended.cancel();
        }
    }

    /// How many calls are open under `token`.
    pub fn count(&self, token: TokenId) -> usize {
        self.lock().get(&token).map_or(0, |e| e.calls)
    }

    /// Ends the calls of tokens that expired by `now` or that the catalogue says were
    /// revoked.
    async fn check(&self, store: &Store, now: DateTime<Utc>) {
        let ids: Vec<TokenId> = {
            let open = self.lock();
            for entry in open.values() {
                if entry.expires_at.is_some_and(|at| at <= now) {
                    entry.ended.cancel();
                }
            }
            open.iter()
                .filter(|(_, e)| !e.ended.is_cancelled())
                .map(|(id, _)| *id)
                .collect()
        };
        match store.inactive_tokens(&ids, now).await {
            Ok(inactive) => inactive.into_iter().for_each(|id| self.end(id)),
            Err(e) => warn!(error = %e, "checking the tokens of open calls"),
        }
    }

    /// Checks the open calls' tokens every [`CHECK_INTERVAL`], for ever.
    pub async fn run(self, store: Store, clock: SharedClock) {
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check(&store, clock.now()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_a_token_ends_its_calls_and_closed_calls_leave() {
        let sessions = Sessions::default();
        let (a, b) = (TokenId::new(), TokenId::new());
        let first = sessions.open(a, None);
        let second = sessions.open(a, None);
        let other = sessions.open(b, None);
        assert_eq!(sessions.count(a), 2);
        sessions.end(a);
        assert!(first.ended.is_cancelled() && second.ended.is_cancelled());
        assert!(!other.ended.is_cancelled());
        drop(first);
        drop(second);
        assert_eq!(sessions.count(a), 0);
        // A later call under the same (revoked) token starts afresh: authentication
        // refuses it before it gets here.
        assert!(!sessions.open(a, None).ended.is_cancelled());
    }
}
