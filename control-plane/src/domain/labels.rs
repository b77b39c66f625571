//! Labels on datasets and label selectors on policies.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

const MAX_KEY: usize = 63;
const MAX_VALUE: usize = 255;
const MAX_LABELS: usize = 64;

/// Validated labels: keys of letters, digits, `-`, `_`, `.` and `/` starting with a
/// letter or digit; values of printable characters.
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
                    format!("value must be at most {MAX_VALUE} printable characters"),
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
