//! Human names of sites, datasets and policies, and references that accept either an id
//! or a name.

use std::{fmt, str::FromStr};

use crate::error::{Error, Result};

const MAX_LEN: usize = 63;

/// A validated resource name: 1 to 63 characters, lowercase ASCII letters, digits, `-`,
/// `_` and `.`, starting with a letter, and never shaped like a UUID so that a reference
/// is never ambiguous between a name and an id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        if s.len() > MAX_LEN {
            return Err(Error::invalid(
                field,
                format!("must be at most {MAX_LEN} characters"),
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(Error::invalid(
                field,
                format!("'{s}' must start with a lowercase letter"),
            ));
        }
        if let Some(bad) = s.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        }) {
            return Err(Error::invalid(
                field,
                format!("'{s}' contains '{bad}'; use lowercase letters, digits, '-', '_' and '.'"),
            ));
        }
        if uuid::Uuid::parse_str(s).is_ok() {
            return Err(Error::invalid(
                field,
                format!("'{s}' looks like an id; pick another name"),
            ));
        }
        Ok(Name(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference to a resource by id or by name, as requests carry them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref<Id> {
    Id(Id),
    Name(Name),
}

impl<Id: FromStr> Ref<Id> {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::invalid(field, "must name an id or a name"));
        }
        if let Ok(id) = s.parse::<Id>() {
            return Ok(Ref::Id(id));
        }
        Name::parse(field, s).map(Ref::Name)
    }
}

impl<Id: fmt::Display> fmt::Display for Ref<Id> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Id(id) => id.fmt(f),
            Ref::Name(name) => name.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::SiteId;

    #[test]
    fn names_follow_the_rules() {
        assert!(Name::parse("name", "archive-eu.1_b").is_ok());
        for bad in ["", "Upper", "1abc", "has space", "a/b", &"a".repeat(64)] {
            let err = Name::parse("site.name", bad).unwrap_err();
            assert!(err.to_string().starts_with("site.name: "), "{err}");
        }
        let uuid_shaped = "abcdefab-cdef-abcd-efab-cdefabcdefab";
        assert!(Name::parse("name", uuid_shaped).is_err());
    }

    #[test]
    fn references_take_ids_or_names() {
        let id = SiteId::new();
        assert_eq!(
            Ref::<SiteId>::parse("site", &id.to_string()).unwrap(),
            Ref::Id(id)
        );
        assert!(matches!(
            Ref::<SiteId>::parse("site", "local").unwrap(),
            Ref::Name(_)
        ));
        assert!(Ref::<SiteId>::parse("site", "").is_err());
    }
}

/// Names and references come from users: any text is a name (or an id) or an error
/// naming the field, never a panic; what is accepted prints back to itself.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::ids::SiteId;

    /// Text shaped like a name often enough to reach every rule.
    fn name_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9._ /-]{0,70}",
            "[a-f0-9-]{32,36}",
            Just(uuid::Uuid::now_v7().simple().to_string()),
        ]
    }

    fn follows_the_rules(s: &str) -> bool {
        (1..=MAX_LEN).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
            && uuid::Uuid::parse_str(s).is_err()
    }

    proptest! {
        #[test]
        fn names_are_accepted_exactly_when_they_follow_the_rules(s in name_like()) {
            match Name::parse("site.name", &s) {
                Ok(name) => {
                    prop_assert!(follows_the_rules(&s));
                    prop_assert_eq!(Name::parse("site.name", &name.to_string())?, name);
                }
                Err(Error::InvalidArgument { field, .. }) => {
                    prop_assert!(!follows_the_rules(&s));
                    prop_assert_eq!(field, "site.name");
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn well_formed_names_are_accepted(s in "[a-z][a-z0-9._-]{0,62}") {
            let name = Name::parse("name", &s)?;
            prop_assert_eq!(name.as_str(), s.as_str());
        }

        #[test]
        fn references_round_trip_ids_and_names(s in name_like(), id in any::<u128>()) {
            let id = SiteId::from_str(&uuid::Uuid::from_u128(id).to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(Ref::<SiteId>::parse("site", &id.to_string())?, Ref::Id(id));
            match Ref::<SiteId>::parse("site", &s) {
                Ok(r) => prop_assert_eq!(Ref::<SiteId>::parse("site", &r.to_string())?, r),
                Err(Error::InvalidArgument { field, .. }) => prop_assert_eq!(field, "site"),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
