//! Conversions between `google.protobuf.Timestamp`/`Duration` and chrono/std types.

use chrono::{DateTime, Utc};

/// Converts a UTC instant to a protobuf timestamp.
pub fn to_timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        // Always below 2e9, so the cast is lossless.
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Converts a protobuf timestamp to a UTC instant; `None` when it is outside the range
/// chrono represents or its nanos are out of range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    DateTime::from_timestamp(t.seconds, nanos)
}

/// Converts a non-negative protobuf duration to a std duration; `None` when negative or
/// malformed.
pub fn from_duration(d: &prost_types::Duration) -> Option<std::time::Duration> {
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(std::time::Duration::new(secs, nanos))
}

/// Converts a std duration to a protobuf duration, saturating at `i64::MAX` seconds.
pub fn to_duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let now = Utc::now();
        assert_eq!(from_timestamp(&to_timestamp(now)), Some(now));
    }

    #[test]
    fn malformed_values_are_rejected() {
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(from_timestamp(&bad), None);
        let negative = prost_types::Duration {
            seconds: -5,
            nanos: 0,
        };
        assert_eq!(from_duration(&negative), None);
        let d = std::time::Duration::from_millis(1500);
        assert_eq!(from_duration(&to_duration(d)), Some(d));
    }
}
