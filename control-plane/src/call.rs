//! The call being served — who makes it, which RPC, since when — carried with the task
//! that serves it. The store reads it to write the audit record of a change in the same
//! transaction as the change, wherever in the use cases that change happens; the
//! control plane's own loops run in a call of their own (`system:autopilot`).

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
};

use chrono::{DateTime, Utc};

use crate::domain::principal::Principal;

#[derive(Clone, Debug)]
pub struct Call {
    pub principal: Principal,
    /// The RPC (`ferry.v1.SiteService/CreateSite`) or the loop's action.
    pub method: String,
    pub at: DateTime<Utc>,
    /// A change of this call was recorded in the audit log.
    recorded: Arc<AtomicBool>,
    /// What the call acts on, once its handler knows (`job:<id>`): named in the record
    /// of a refusal or a failure.
    target: Arc<Mutex<Option<String>>>,
}

tokio::task_local! {
    static CURRENT: Call;
}

impl Call {
    pub fn new(principal: Principal, method: impl Into<String>, at: DateTime<Utc>) -> Self {
        Call {
            principal,
            method: method.into(),
            at,
            recorded: Arc::new(AtomicBool::new(false)),
            target: Arc::default(),
        }
    }

    /// What the call acts on, if its handler said.
    pub fn target(&self) -> Option<String> {
        self.target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `f` as this call: the store records the changes it makes.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// Whether a change of this call has been recorded.
    pub fn recorded(&self) -> bool {
        self.recorded.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_recorded(&self) {
        self.recorded.store(true, Ordering::SeqCst);
    }
}

/// Notes what the current call acts on (`job:<id>`), for the audit record of its
/// refusal or failure. The first use case to say wins: approving a recommendation
/// plans a job, and the call acts on the recommendation.
pub fn set_target(resource: impl Into<String>) {
    if let Some(call) = current() {
        let mut target = call.target.lock().unwrap_or_else(PoisonError::into_inner);
        if target.is_none() {
            *target = Some(resource.into());
        }
    }
}

/// The call the current task serves, if any: none for the lifecycle the agents' reports
/// drive, which no caller asked for.
pub fn current() -> Option<Call> {
    CURRENT.try_with(Clone::clone).ok()
}
