//! Which listed objects a job takes: the plan's prefix, globs, sizes and ages.
//!
//! [`FilterSpec`] is the filter as a plan states it (plain values, stored with the job);
//! [`ObjectFilter`] is the same, checked and compiled, ready to test objects. The
//! control plane compiles a plan's filter to refuse a bad glob when the plan is made,
//! and agents compile it again to apply it.

use chrono::{DateTime, Utc};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::{error::InvalidField, list::ObjectInfo};

/// A plan's object filter as stated. Empty fields take everything. Serialised as the
/// control plane stores it with the job.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilterSpec {
    /// Keys must start with it (relative to the dataset root).
    pub prefix: String,
    /// Keys must match one of these globs (`**/*.fastq`), when any is given.
    pub include: Vec<String>,
    /// Keys must match none of these globs.
    pub exclude: Vec<String>,
    pub min_size: u64,
    pub max_size: Option<u64>,
    pub modified_before: Option<DateTime<Utc>>,
    pub modified_after: Option<DateTime<Utc>>,
}

/// A [`FilterSpec`] checked and compiled.
#[derive(Clone, Debug)]
pub struct ObjectFilter {
    prefix: String,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    min_size: u64,
    max_size: Option<u64>,
    modified_before: Option<DateTime<Utc>>,
    modified_after: Option<DateTime<Utc>>,
}

impl ObjectFilter {
    /// Compiles `spec`; an error names the field under `filter.` (`filter.include`).
    pub fn new(spec: &FilterSpec) -> Result<Self, InvalidField> {
        if spec.max_size.is_some_and(|max| max < spec.min_size) {
            return Err(InvalidField::new(
                "filter.max_size",
                "must not be below filter.min_size",
            ));
        }
        Ok(ObjectFilter {
            prefix: spec.prefix.trim_start_matches('/').to_owned(),
            include: globs("include", &spec.include)?,
            exclude: globs("exclude", &spec.exclude)?,
            min_size: spec.min_size,
            max_size: spec.max_size,
            modified_before: spec.modified_before,
            modified_after: spec.modified_after,
        })
    }

    /// Whether the filter could take an object at `key`, judged by the prefix and the
    /// globs alone: its size and times are not known yet (a file being written).
    pub fn may_take_key(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
            && self.include.as_ref().is_none_or(|g| g.is_match(key))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(key))
    }

    /// Whether the filter takes `o`. An object without a modification time cannot be
    /// shown to qualify for a filter on modification times, so it is left out.
    pub fn accepts(&self, o: &ObjectInfo) -> bool {
        let modified = |check: fn(&DateTime<Utc>, &DateTime<Utc>) -> bool,
                        bound: &Option<DateTime<Utc>>| {
            match (bound, &o.last_modified) {
                (None, _) => true,
                (Some(bound), Some(m)) => check(m, bound),
                (Some(_), None) => false,
            }
        };
        self.may_take_key(&o.key)
            && o.size >= self.min_size
            && self.max_size.is_none_or(|max| o.size <= max)
            && modified(|m, b| m < b, &self.modified_before)
            && modified(|m, b| m > b, &self.modified_after)
    }
}

fn globs(field: &str, patterns: &[String]) -> Result<Option<GlobSet>, InvalidField> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let field = format!("filter.{field}");
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(Glob::new(p).map_err(|e| InvalidField::new(&field, format!("'{p}': {e}")))?);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| InvalidField::new(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, size: u64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            content_type: None,
            user_metadata: Default::default(),
            last_modified: Some(Utc::now()),
            etag: None,
        }
    }

    #[test]
    fn prefix_globs_and_sizes_narrow_the_set() {
        let f = ObjectFilter::new(&FilterSpec {
            prefix: "reads/".into(),
            include: vec!["**/*.fastq".into()],
            exclude: vec!["**/tmp/**".into()],
            min_size: 10,
            max_size: Some(100),
            ..Default::default()
        })
        .unwrap();
        assert!(f.accepts(&object("reads/a/x.fastq", 50)));
        assert!(!f.accepts(&object("other/x.fastq", 50)));
        assert!(!f.accepts(&object("reads/x.txt", 50)));
        assert!(!f.accepts(&object("reads/tmp/x.fastq", 50)));
        assert!(!f.accepts(&object("reads/x.fastq", 5)));
        assert!(!f.accepts(&object("reads/x.fastq", 500)));
        assert!(ObjectFilter::new(&FilterSpec::default())
            .unwrap()
            .accepts(&object("anything", 0)));
        // By key alone, sizes aside.
        assert!(f.may_take_key("reads/x.fastq"));
        assert!(!f.may_take_key("reads/x.txt"));
        assert!(!f.may_take_key("reads/tmp/x.fastq"));
        assert!(!f.may_take_key("other/x.fastq"));
    }

    #[test]
    fn modification_times_bound_the_set() {
        let now = Utc::now();
        let f = ObjectFilter::new(&FilterSpec {
            modified_after: Some(now - chrono::Duration::hours(1)),
            modified_before: Some(now + chrono::Duration::hours(1)),
            ..Default::default()
        })
        .unwrap();
        assert!(f.accepts(&object("k", 1)));
        let old = ObjectInfo {
            last_modified: Some(now - chrono::Duration::days(1)),
            ..object("k", 1)
        };
        assert!(!f.accepts(&old));
        let unknown = ObjectInfo {
            last_modified: None,
            ..object("k", 1)
        };
        assert!(!f.accepts(&unknown));
    }

    #[test]
    fn bad_filters_name_their_field() {
        let e = ObjectFilter::new(&FilterSpec {
            include: vec!["a/{b".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "filter.include");
        let e = ObjectFilter::new(&FilterSpec {
            min_size: 10,
            max_size: Some(5),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "filter.max_size");
    }
}

/// Globs and sizes come from users: any filter compiles or fails naming its field, never
/// a panic; well-formed globs compile; a glob of a literal key takes that key.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Globs as people write them: literals, `*`, `**`, `?`, classes and alternatives.
    fn glob() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            "[a-z0-9_.-]{1,8}",
            Just("*".to_owned()),
            Just("?".to_owned()),
            Just("[a-z]".to_owned()),
            Just("[!0-9]".to_owned()),
            "\\{[a-z]{1,4},[a-z]{1,4}\\}",
        ];
        let segment = prop::collection::vec(part, 1..4).prop_map(|p| p.concat());
        let segment = prop_oneof![4 => segment, 1 => Just("**".to_owned())];
        prop::collection::vec(segment, 1..5).prop_map(|s| s.join("/"))
    }

    /// Text with the glob metacharacters over-represented.
    fn glob_like() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-z*?/\\[\\]{},!\\\\-]{0,16}"]
    }

    /// An object as a listing without modification times shows it.
    fn object(key: String, size: u64) -> ObjectInfo {
        ObjectInfo {
            key,
            size,
            content_type: None,
            user_metadata: Default::default(),
            last_modified: None,
            etag: None,
        }
    }

    fn spec() -> impl Strategy<Value = FilterSpec> {
        (
            "\\PC{0,8}",
            prop::collection::vec(prop_oneof![glob(), glob_like()], 0..3),
            prop::collection::vec(prop_oneof![glob(), glob_like()], 0..3),
            any::<u64>(),
            prop::option::of(any::<u64>()),
        )
            .prop_map(
                |(prefix, include, exclude, min_size, max_size)| FilterSpec {
                    prefix,
                    include,
                    exclude,
                    min_size,
                    max_size,
                    ..Default::default()
                },
            )
    }

    proptest! {
        #[test]
        fn any_filter_compiles_or_names_its_field(spec in spec(), key in "\\PC{0,16}", size in any::<u64>()) {
            match ObjectFilter::new(&spec) {
                Ok(filter) => {
                    prop_assert!(spec.max_size.is_none_or(|max| max >= spec.min_size));
                    let taken = filter.accepts(&object(key, size));
                    prop_assert!(!taken || (size >= spec.min_size && spec.max_size.is_none_or(|m| size <= m)));
                }
                Err(e) => prop_assert!(
                    matches!(e.field.as_str(), "filter.include" | "filter.exclude" | "filter.max_size"),
                    "{e}"
                ),
            }
        }

        #[test]
        fn well_formed_globs_and_ordered_sizes_compile(
            include in prop::collection::vec(glob(), 0..4),
            exclude in prop::collection::vec(glob(), 0..4),
            min_size in any::<u64>(),
            extra in prop::option::of(any::<u64>()),
        ) {
            let spec = FilterSpec {
                include,
                exclude,
                min_size,
                max_size: extra.map(|e| min_size.saturating_add(e)),
                ..Default::default()
            };
            prop_assert!(ObjectFilter::new(&spec).is_ok(), "{spec:?}");
        }

        #[test]
        fn a_literal_glob_takes_its_own_key(key in "\\PC{1,24}") {
            // Every metacharacter escaped (`globset::escape` leaves `\` as it is).
            let literal = key
                .chars()
                .flat_map(|c| ("\\*?[]{}".contains(c).then_some('\\')).into_iter().chain([c]))
                .collect();
            let filter = ObjectFilter::new(&FilterSpec {
                include: vec![literal],
                ..Default::default()
            })?;
            prop_assert!(filter.accepts(&object(key, 0)));
        }
    }
}
