//! Every conversion between the `ferry.v1` wire messages and the control plane's domain
//! types, in one place, one module per resource: a field added to a message is
//! converted in its module and nowhere else, for the gRPC API and the bus alike. Every
//! inbound value is validated here or in the domain constructor it calls, failing as
//! `InvalidArgument` with the field's path.

mod admin;
mod agent;
mod bus;
mod dataset;
mod job;
mod policy;
mod recommendation;
mod schedule;
mod site;
mod whatif;

use std::{collections::BTreeMap, time::Duration};

use ferry_proto::{time::from_duration, v1 as pb};

pub use self::{
    admin::*, agent::*, bus::*, dataset::*, job::*, policy::*, recommendation::*, schedule::*,
    site::*, whatif::*,
};
use crate::{
    domain::{
        name::Ref,
        tier::{Tier, VerifyMode},
    },
    error::{Error, Result},
};

/// A tier field; `TIER_UNSPECIFIED` is `None`.
pub fn tier(field: &str, value: i32) -> Result<Option<Tier>> {
    match pb::Tier::try_from(value) {
        Ok(pb::Tier::Unspecified) => Ok(None),
        Ok(pb::Tier::Hot) => Ok(Some(Tier::Hot)),
        Ok(pb::Tier::Warm) => Ok(Some(Tier::Warm)),
        Ok(pb::Tier::Cold) => Ok(Some(Tier::Cold)),
        Err(_) => Err(Error::invalid(field, format!("unknown tier {value}"))),
    }
}

pub fn required_tier(field: &str, value: i32) -> Result<Tier> {
    tier(field, value)?.ok_or_else(|| Error::invalid(field, "must be hot, warm or cold"))
}

pub fn tier_to_pb(t: Tier) -> i32 {
    match t {
        Tier::Hot => pb::Tier::Hot,
        Tier::Warm => pb::Tier::Warm,
        Tier::Cold => pb::Tier::Cold,
    }
    .into()
}

pub fn verify_mode(field: &str, value: i32) -> Result<Option<VerifyMode>> {
    match pb::VerifyMode::try_from(value) {
        Ok(pb::VerifyMode::Unspecified) => Ok(None),
        Ok(pb::VerifyMode::Quick) => Ok(Some(VerifyMode::Quick)),
        Ok(pb::VerifyMode::Full) => Ok(Some(VerifyMode::Full)),
        Err(_) => Err(Error::invalid(
            field,
            format!("unknown verify mode {value}"),
        )),
    }
}

pub fn verify_mode_to_pb(m: VerifyMode) -> i32 {
    match m {
        VerifyMode::Quick => pb::VerifyMode::Quick,
        VerifyMode::Full => pb::VerifyMode::Full,
    }
    .into()
}

pub fn duration(field: &str, d: &prost_types::Duration) -> Result<Duration> {
    from_duration(d).ok_or_else(|| Error::invalid(field, "must be a non-negative duration"))
}

/// Zero means "none" for optional limits on the wire.
pub fn nonzero<T: Default + PartialEq>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

pub fn to_btree(map: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

/// Checks an update mask: not empty, every path known, none immutable.
pub fn check_mask(
    mask: Option<prost_types::FieldMask>,
    mutable: &[&str],
    immutable: &[&str],
) -> Result<Vec<String>> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            "must list the fields to change",
        ));
    }
    for path in &paths {
        if immutable.contains(&path.as_str()) {
            return Err(Error::invalid(
                "update_mask",
                format!("field '{path}' cannot be changed"),
            ));
        }
        if !mutable.contains(&path.as_str()) {
            return Err(Error::invalid(
                "update_mask",
                format!(
                    "unknown field '{path}'; expected one of {}",
                    mutable.join(", ")
                ),
            ));
        }
    }
    Ok(paths)
}

/// Picks the resource an update names: by id when given, else by name.
pub fn target<Id: std::str::FromStr>(field: &str, id: &str, name: &str) -> Result<Ref<Id>> {
    if id.is_empty() {
        Ref::parse(&format!("{field}.name"), name)
    } else {
        Ref::parse(&format!("{field}.id"), id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_must_be_known_mutable_and_non_empty() {
        let mask = |paths: &[&str]| {
            Some(prost_types::FieldMask {
                paths: paths.iter().map(|s| s.to_string()).collect(),
            })
        };
        assert!(check_mask(mask(&["tier"]), &["tier"], &["uri"]).is_ok());
        let err = check_mask(mask(&["uri"]), &["tier"], &["uri"])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "update_mask: field 'uri' cannot be changed");
        let err = check_mask(mask(&["colour"]), &["tier"], &["uri"])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("update_mask: unknown field 'colour'"),
            "{err}"
        );
        assert!(check_mask(None, &["tier"], &[]).is_err());
    }

    #[test]
    fn unknown_enum_numbers_are_invalid_arguments() {
        let err = tier("site.tier", 42).unwrap_err().to_string();
        assert_eq!(err, "site.tier: unknown tier 42");
        let err = required_tier("site.tier", 0).unwrap_err().to_string();
        assert_eq!(err, "site.tier: must be hot, warm or cold");
    }
}

/// Durations come from clients as any pair of integers: each is a duration or an error
/// naming the field, never a panic, and an accepted one goes back to the same pair.
#[cfg(test)]
mod properties {
    use ferry_proto::time::to_duration;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_wire_duration_is_a_duration_or_an_error_naming_the_field(
            seconds in prop_oneof![any::<i64>(), 0..1_000_000i64],
            nanos in prop_oneof![any::<i32>(), 0..1_000_000_000i32],
        ) {
            let wire = prost_types::Duration { seconds, nanos };
            match duration("policy.hot_after", &wire) {
                Ok(d) => {
                    prop_assert!(seconds >= 0 && (0..1_000_000_000).contains(&nanos));
                    prop_assert_eq!(to_duration(d), wire);
                }
                Err(Error::InvalidArgument { field, .. }) => {
                    prop_assert!(seconds < 0 || !(0..1_000_000_000).contains(&nanos));
                    prop_assert_eq!(field, "policy.hot_after");
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
