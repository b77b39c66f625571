//! The short lowercase names of the `ferry.v1` enums ("hot", "quick", "primary"), both
//! ways: parsed from command-line values and printed in tables and JSON.

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
}
