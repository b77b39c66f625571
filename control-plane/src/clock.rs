//! Time, as the catalogue sees it, behind a port: production reads the system clock;
//! tests inject a [`ManualClock`] and replay days of access history in seconds.
//!
//! Every business timestamp (created, updated, last access, heartbeats, deadlines) comes
//! from the injected clock through [`SharedClock::now`]. Only transport bookkeeping that
//! no rule reads (when an outbox row was published) uses [`system_now`].

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Where the current time comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved: for tests and replays.
#[derive(Debug)]
pub struct ManualClock {
    at: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        ManualClock { at: Mutex::new(at) }
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.at.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    pub fn advance(&self, by: TimeDelta) {
        *self.at.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.at.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The clock the control plane's services share.
#[derive(Clone)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        SharedClock(clock)
    }

    pub fn system() -> Self {
        SharedClock(Arc::new(SystemClock))
    }

    /// Now, truncated to microseconds: PostgreSQL keeps no finer, and a timestamp that
    /// round-trips exactly can serve as an optimistic-concurrency token.
    pub fn now(&self) -> DateTime<Utc> {
        truncate(self.0.now())
    }

    /// A new `updated_at` strictly after the one read, so every write changes the token
    /// even when the clock stands still or steps back.
    pub fn next_update(&self, read_at: DateTime<Utc>) -> DateTime<Utc> {
        self.now().max(read_at + TimeDelta::microseconds(1))
    }
}

impl std::fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedClock").field(&self.now()).finish()
    }
}

/// The system time, for bookkeeping no rule depends on.
pub fn system_now() -> DateTime<Utc> {
    truncate(Utc::now())
}

fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let manual = Arc::new(ManualClock::starting_at(start));
        let clock = SharedClock::new(manual.clone());
        assert_eq!(clock.now(), start);
        manual.advance(TimeDelta::days(3));
        assert_eq!(clock.now(), start + TimeDelta::days(3));
    }

    #[test]
    fn updates_move_forward_even_when_the_clock_stands_still() {
        let start = Utc::now();
        let clock = SharedClock::new(Arc::new(ManualClock::starting_at(start)));
        let read = clock.now();
        assert!(clock.next_update(read) > read);
    }
}
