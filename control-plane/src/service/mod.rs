//! Use cases of the catalogue. Each method is one operation a client asks for: it
//! resolves references, applies domain rules and persists through the store.

mod datasets;
mod policies;
mod sites;

use std::sync::Arc;

pub use datasets::DatasetDetails;

use crate::{error::Error, store::Store, vault::Vault};

/// How often a read-modify-write is retried after losing a race to a concurrent update.
const UPDATE_ATTEMPTS: usize = 5;

/// The catalogue of sites, datasets and policies.
#[derive(Clone)]
pub struct Catalogue {
    store: Store,
    vault: Arc<Vault>,
}

impl Catalogue {
    pub fn new(store: Store, vault: Arc<Vault>) -> Self {
        Catalogue { store, vault }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn conflict(kind: &str, name: impl std::fmt::Display) -> Error {
    Error::Conflict(format!(
        "{kind} {name} is being changed concurrently; retry"
    ))
}
