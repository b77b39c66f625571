//! Newtype ids. Ids are UUIDv7: unique without coordination and roughly time-ordered,
//! which keeps database indexes append-mostly.

use std::{fmt, str::FromStr};

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a storage site.
    SiteId
);
id_type!(
    /// Identifies a dataset.
    DatasetId
);
id_type!(
    /// Identifies a placement policy.
    PolicyId
);
id_type!(
    /// Identifies a migration job.
    JobId
);
id_type!(
    /// Identifies a sync schedule.
    ScheduleId
);
id_type!(
    /// Identifies a registered agent.
    AgentId
);
id_type!(
    /// Identifies a recorded recommendation.
    RecommendationId
);
id_type!(
    /// Identifies a bearer token.
    TokenId
);
id_type!(
    /// Identifies a record of the audit log.
    AuditEventId
);
