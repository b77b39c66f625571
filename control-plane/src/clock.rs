//! Wall-clock time as the catalogue records it.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Now, truncated to microseconds: PostgreSQL keeps no finer, and a timestamp that
/// round-trips exactly can serve as an optimistic-concurrency token.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

/// A new `updated_at` strictly after the one read, so every write changes the token.
pub fn next_update(read_at: DateTime<Utc>) -> DateTime<Utc> {
    now().max(read_at + TimeDelta::microseconds(1))
}
