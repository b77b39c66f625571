//! Labels on datasets and label selectors on policies.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

const MAX_KEY: usize = 63;
const MAX_VALUE: usize = 255;
const MAX_LABELS: usize = 64;

/// Validated labels: keys of letters, digits, `-`, `_`, `.` and `/` starting with a
/// letter or digit; values of printable characters, at most 255 bytes (they are indexed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    pub fn parse<'a>(
        field: &str,
        entries: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self> {
        let mut labels = BTreeMap::new();
        for (key, value) in entries {
            validate_key(key).map_err(|reason| Error::invalid(field, reason))?;
            if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
                return Err(Error::invalid(
                    format!("{field}[{key}]"),
                    format!("value must be at most {MAX_VALUE} bytes of printable characters"),
                ));
            }
            labels.insert(key.clone(), value.clone());
        }
        if labels.len() > MAX_LABELS {
            return Err(Error::invalid(
                field,
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        Ok(Labels(labels))
    }

    /// Builds labels already validated on the way in (from the database).
    pub fn from_trusted(map: BTreeMap<String, String>) -> Self {
        Labels(map)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// True when every entry of `selector` is present in these labels with the same value.
    pub fn matches(&self, selector: &Labels) -> bool {
        selector.0.iter().all(|(k, v)| self.0.get(k) == Some(v))
    }
}

fn validate_key(key: &str) -> std::result::Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(format!(
            "label key '{key}' must be 1 to {MAX_KEY} characters"
        ));
    }
    let ok = key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !ok {
        return Err(format!(
            "label key '{key}' must be letters, digits, '-', '_', '.' or '/', \
             starting with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Labels::parse("labels", &map).unwrap()
    }

    #[test]
    fn selectors_match_subsets() {
        let l = labels(&[("team", "genomics"), ("env", "prod")]);
        assert!(l.matches(&labels(&[("team", "genomics")])));
        assert!(!l.matches(&labels(&[("team", "physics")])));
        assert!(!l.matches(&labels(&[("owner", "x")])));
    }

    #[test]
    fn bad_keys_are_named() {
        let map = BTreeMap::from([("bad key".to_string(), "v".to_string())]);
        let err = Labels::parse("dataset.labels", &map).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("dataset.labels: label key 'bad key'"),
            "{err}"
        );
    }
}

/// Labels and selectors come from users: any map is labels or an error naming the field
/// (or the entry), never a panic; accepted labels parse back to themselves.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-zA-Z0-9][a-zA-Z0-9._/-]{0,62}",
            1 => "[a-z /:=]{0,70}",
            1 => any::<String>(),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "\\PC{0,64}",
            1 => "[a-z]{250,260}",
            1 => any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn any_map_is_labels_or_an_error_naming_the_entry(
            map in prop_oneof![
                4 => prop::collection::btree_map(key(), value(), 0..8),
                1 => prop::collection::btree_map(key(), value(), 60..70),
            ],
        ) {
            match Labels::parse("dataset.labels", &map) {
                Ok(labels) => {
                    prop_assert!(map.len() <= MAX_LABELS);
                    prop_assert!(map.iter().all(|(k, v)| validate_key(k).is_ok() && v.len() <= MAX_VALUE));
                    prop_assert_eq!(Labels::parse("dataset.labels", labels.as_map())?, labels);
                }
                Err(Error::InvalidArgument { field, .. }) => prop_assert!(
                    field == "dataset.labels"
                        || map.keys().any(|k| field == format!("dataset.labels[{k}]")),
                    "{field}"
                ),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn well_formed_labels_are_accepted(
            map in prop::collection::btree_map(
                "[a-z0-9][a-z0-9._/-]{0,62}",
                "[^\\p{Cc}]{0,63}",
                0..=MAX_LABELS,
            ),
        ) {
            let labels = Labels::parse("labels", &map)?;
            prop_assert_eq!(labels.as_map(), &map);
        }
    }
}
