//! Use cases of the catalogue. Each method is one operation a client asks for: it
//! resolves references, applies domain rules and persists through the store.

mod access;
mod agents;
pub mod autopilot;
mod datasets;
pub mod dry_run;
pub mod migrations;
mod policies;
mod recommendations;
pub mod schedules;
mod sessions;
mod sites;
pub(crate) mod tokens;
pub mod training;
pub mod whatif;

use std::sync::Arc;

pub use access::AccessEvents;
pub use agents::{Agents, RegisterRequest, SiteAccess};
pub use datasets::DatasetDetails;
pub use dry_run::DryRuns;
pub use migrations::{Migrations, PlanRequest};
pub use recommendations::Recommendations;
pub use schedules::Schedules;
pub use sessions::{Session, Sessions};
pub use tokens::{TokenRequest, Tokens};
pub use training::Training;
pub use whatif::WhatIf;

use crate::{
    call::Call,
    clock::SharedClock,
    domain::principal::Principal,
    error::{Error, Result},
    store::Store,
    vault::Vault,
};

/// How often a read-modify-write is tried before it gives up with `Conflict`. Every
/// lost race means another writer's update landed in between, so this many attempts
/// always succeed against up to `UPDATE_ATTEMPTS - 1` concurrent writers of one row.
const UPDATE_ATTEMPTS: usize = 16;

/// The catalogue of sites, datasets and policies.
#[derive(Clone)]
pub struct Catalogue {
    store: Store,
    vault: Arc<Vault>,
    clock: SharedClock,
}

impl Catalogue {
    pub fn new(store: Store, vault: Arc<Vault>, clock: SharedClock) -> Self {
        Catalogue {
            store,
            vault,
            clock,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The time every use case reads: injected, so tests can replay history.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}

fn conflict(kind: &str, name: impl std::fmt::Display) -> Error {
    Error::Conflict(format!(
        "{kind} {name} is being changed concurrently; retry"
    ))
}

/// Runs `check` every `interval`, for ever, each time as one call of the system
/// principal `actor` at `clock`'s time (what it changes is audited as the actor's). A
/// failure is logged, as `what` failing, and the next tick tries again; ticks missed
/// while a check ran are not made up.
pub(crate) async fn every<T, F, Fut>(
    interval: std::time::Duration,
    actor: &'static str,
    clock: SharedClock,
    what: &'static str,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let call = Call::new(Principal::system(actor), actor, clock.now());
        if let Err(e) = call.scope(check()).await {
            tracing::warn!(error = %e, "{what} failed");
        }
    }
}
