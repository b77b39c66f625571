//! Which listed objects a job takes: the plan's prefix, globs, sizes and ages.

use chrono::{DateTime, Utc};
use ferry_proto::{time::from_timestamp, v1 as pb};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::transfer::ObjectInfo;

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
    pub fn from_pb(f: Option<&pb::ObjectFilter>) -> Result<Self, String> {
        let default = pb::ObjectFilter::default();
        let f = f.unwrap_or(&default);
        Ok(ObjectFilter {
            prefix: f.prefix.trim_start_matches('/').to_owned(),
            include: globs("include", &f.include)?,
            exclude: globs("exclude", &f.exclude)?,
            min_size: f.min_size,
            max_size: (f.max_size != 0).then_some(f.max_size),
            modified_before: f.modified_before.as_ref().and_then(from_timestamp),
            modified_after: f.modified_after.as_ref().and_then(from_timestamp),
        })
    }

    pub fn accepts(&self, o: &ObjectInfo) -> bool {
        let modified = |check: fn(&DateTime<Utc>, &DateTime<Utc>) -> bool,
                        bound: &Option<DateTime<Utc>>| {
            match (bound, &o.last_modified) {
                (None, _) => true,
                (Some(bound), Some(m)) => check(m, bound),
                // Without a modification time the object cannot be shown to qualify.
                (Some(_), None) => false,
            }
        };
        o.key.starts_with(&self.prefix)
            && self.include.as_ref().is_none_or(|g| g.is_match(&o.key))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(&o.key))
            && o.size >= self.min_size
            && self.max_size.is_none_or(|max| o.size <= max)
            && modified(|m, b| m < b, &self.modified_before)
            && modified(|m, b| m > b, &self.modified_after)
    }
}

fn globs(field: &str, patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(Glob::new(p).map_err(|e| format!("filter.{field}: '{p}': {e}"))?);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| format!("filter.{field}: {e}"))
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
        let f = ObjectFilter::from_pb(Some(&pb::ObjectFilter {
            prefix: "reads/".into(),
            include: vec!["**/*.fastq".into()],
            exclude: vec!["**/tmp/**".into()],
            min_size: 10,
            max_size: 100,
            ..Default::default()
        }))
        .unwrap();
        assert!(f.accepts(&object("reads/a/x.fastq", 50)));
        assert!(!f.accepts(&object("other/x.fastq", 50)));
        assert!(!f.accepts(&object("reads/x.txt", 50)));
        assert!(!f.accepts(&object("reads/tmp/x.fastq", 50)));
        assert!(!f.accepts(&object("reads/x.fastq", 5)));
        assert!(!f.accepts(&object("reads/x.fastq", 500)));
        assert!(ObjectFilter::from_pb(None)
            .unwrap()
            .accepts(&object("anything", 0)));
    }
}
