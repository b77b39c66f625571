//! The short lowercase names of the `ferry.v1` enums ("hot", "quick", "primary",
//! "copying"), both ways: parsed from command-line values and printed in tables and JSON.

use ferry_sdk::pb;

/// A generated protobuf enum whose wire names share a prefix, like `TIER_HOT`.
pub trait ProtoEnum: Copy + TryFrom<i32> + Into<i32> {
    /// The prefix shared by the wire names, underscore included.
    const PREFIX: &'static str;
    /// What a user may type, in the order the help lists them.
    const CHOICES: &'static [&'static str];
    fn wire_name(self) -> &'static str;
    fn from_wire_name(name: &str) -> Option<Self>;
}

macro_rules! proto_enum {
    ($ty:ty, $prefix:literal, [$($choice:literal),+]) => {
        impl ProtoEnum for $ty {
            const PREFIX: &'static str = $prefix;
            const CHOICES: &'static [&'static str] = &[$($choice),+];
            fn wire_name(self) -> &'static str {
                self.as_str_name()
            }
            fn from_wire_name(name: &str) -> Option<Self> {
                Self::from_str_name(name)
            }
        }
    };
}

proto_enum!(pb::Tier, "TIER_", ["hot", "warm", "cold"]);
proto_enum!(pb::VerifyMode, "VERIFY_MODE_", ["quick", "full"]);
proto_enum!(pb::ReplicaRole, "REPLICA_ROLE_", ["primary", "secondary"]);
proto_enum!(
    pb::ReplicaState,
    "REPLICA_STATE_",
    ["copying", "ready", "retiring"]
);
proto_enum!(
    pb::JobState,
    "JOB_STATE_",
    [
        "queued",
        "copying",
        "verifying",
        "switching",
        "completed",
        "failed",
        "cancelled"
    ]
);
proto_enum!(
    pb::ObjectStatus,
    "OBJECT_STATUS_",
    [
        "pending",
        "copying",
        "copied",
        "verified",
        "skipped",
        "failed",
        "unchanged",
        "extra",
        "deleted"
    ]
);
proto_enum!(pb::JobKind, "JOB_KIND_", ["migration", "sync"]);
proto_enum!(pb::DeletionRule, "DELETION_RULE_", ["keep", "delete"]);
proto_enum!(
    pb::AgentState,
    "AGENT_STATE_",
    ["alive", "stale", "stopped"]
);
proto_enum!(pb::Role, "ROLE_", ["viewer", "operator", "admin", "agent"]);
proto_enum!(
    pb::RecommendationState,
    "RECOMMENDATION_STATE_",
    ["pending", "approved", "rejected", "superseded", "no_action"]
);

/// The short name of a wire value ("hot" for `TIER_HOT`, "unspecified" for 0), or `None`
/// for a value this build does not know (a newer server).
pub fn short_name<E: ProtoEnum>(value: i32) -> Option<String> {
    let known = E::try_from(value).ok()?;
    let wire = known.wire_name();
    Some(
        wire.strip_prefix(E::PREFIX)
            .unwrap_or(wire)
            .to_ascii_lowercase(),
    )
}

/// The short name for display; an unknown value shows as its number.
pub fn display<E: ProtoEnum>(value: i32) -> String {
    short_name::<E>(value).unwrap_or_else(|| value.to_string())
}

/// Parses one of `E::CHOICES`, in any case; the full wire name (`TIER_HOT`) is accepted
/// too. "unspecified" is refused: a flag that is given must mean something.
pub fn parse<E: ProtoEnum>(input: &str) -> Result<E, String> {
    let upper = input.trim().to_ascii_uppercase();
    let wire = if upper.starts_with(E::PREFIX) {
        upper
    } else {
        format!("{}{upper}", E::PREFIX)
    };
    E::from_wire_name(&wire)
        .filter(|value| (*value).into() != 0)
        .ok_or_else(|| format!("expected one of {}, got {input:?}", E::CHOICES.join(", ")))
}

/// Parses a tier flag: hot, warm or cold.
pub fn parse_tier(input: &str) -> Result<pb::Tier, String> {
    parse(input)
}

/// Parses a verification mode flag: quick or full.
pub fn parse_verify_mode(input: &str) -> Result<pb::VerifyMode, String> {
    parse(input)
}

/// Parses a job state flag: queued, copying, verifying, switching, completed, failed or
/// cancelled.
pub fn parse_job_state(input: &str) -> Result<pb::JobState, String> {
    parse(input)
}

/// Parses an object status flag: pending, copying, copied, verified, skipped, failed,
/// unchanged, extra or deleted.
pub fn parse_object_status(input: &str) -> Result<pb::ObjectStatus, String> {
    parse(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_from_short_names_in_any_case() {
        assert_eq!(parse_tier("hot"), Ok(pb::Tier::Hot));
        assert_eq!(parse_tier("Warm"), Ok(pb::Tier::Warm));
        assert_eq!(parse_tier(" COLD "), Ok(pb::Tier::Cold));
        assert_eq!(parse_tier("TIER_HOT"), Ok(pb::Tier::Hot));
    }

    #[test]
    fn unknown_and_unspecified_tiers_are_refused_with_the_choices() {
        let err = parse_tier("lukewarm").err();
        assert_eq!(
            err.as_deref(),
            Some("expected one of hot, warm, cold, got \"lukewarm\"")
        );
        assert!(parse_tier("unspecified").is_err());
        assert!(parse_tier("").is_err());
    }

    #[test]
    fn verify_modes_parse() {
        assert_eq!(parse_verify_mode("full"), Ok(pb::VerifyMode::Full));
        assert!(parse_verify_mode("slow").is_err());
    }

    #[test]
    fn wire_values_print_as_short_names() {
        assert_eq!(display::<pb::Tier>(pb::Tier::Cold as i32), "cold");
        assert_eq!(display::<pb::Tier>(0), "unspecified");
        assert_eq!(display::<pb::ReplicaState>(2), "ready");
        assert_eq!(short_name::<pb::VerifyMode>(42), None);
        assert_eq!(display::<pb::VerifyMode>(42), "42");
    }

    #[test]
    fn job_states_parse_and_print() {
        assert_eq!(parse_job_state("copying"), Ok(pb::JobState::Copying));
        assert_eq!(parse_job_state("Cancelled"), Ok(pb::JobState::Cancelled));
        assert_eq!(
            parse_job_state("JOB_STATE_FAILED"),
            Ok(pb::JobState::Failed)
        );
        let err = parse_job_state("done").err();
        assert_eq!(
            err.as_deref(),
            Some(
                "expected one of queued, copying, verifying, switching, completed, failed, \
                 cancelled, got \"done\""
            )
        );
        assert!(parse_job_state("unspecified").is_err());
        assert_eq!(
            display::<pb::JobState>(pb::JobState::Switching.into()),
            "switching"
        );
        assert_eq!(display::<pb::JobState>(99), "99");
    }

    #[test]
    fn object_statuses_parse_and_print() {
        assert_eq!(parse_object_status("failed"), Ok(pb::ObjectStatus::Failed));
        assert_eq!(
            parse_object_status("VERIFIED"),
            Ok(pb::ObjectStatus::Verified)
        );
        assert!(parse_object_status("lost").is_err());
        assert_eq!(
            display::<pb::ObjectStatus>(pb::ObjectStatus::Skipped.into()),
            "skipped"
        );
    }

    #[test]
    fn agent_states_print() {
        assert_eq!(
            display::<pb::AgentState>(pb::AgentState::Stale.into()),
            "stale"
        );
        assert_eq!(display::<pb::AgentState>(0), "unspecified");
        assert_eq!(parse::<pb::AgentState>("alive"), Ok(pb::AgentState::Alive));
    }

    #[test]
    fn recommendation_states_print_with_underscores() {
        assert_eq!(
            display::<pb::RecommendationState>(pb::RecommendationState::NoAction.into()),
            "no_action"
        );
        assert_eq!(
            parse::<pb::RecommendationState>("superseded"),
            Ok(pb::RecommendationState::Superseded)
        );
    }
}
