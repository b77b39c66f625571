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

use crate::{clock::SharedClock, error::Error, store::Store, vault::Vault};

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
