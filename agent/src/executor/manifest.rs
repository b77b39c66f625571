//! A sync's listing compared with the manifest of the replica it keeps in step, on the
//! agent: the source objects the manifest records as they are now, and the destination
//! still holds at that size, need no copy and are only counted; the control plane
//! hears of what changed alone. The rule is the control plane's (`ComparedObject::
//! unchanged_since`), which still judges every object the agent sends.

use std::collections::HashMap;

use ferry_proto::v1 as pb;
use ferry_storage::ObjectInfo;

/// Keys to values, hashed with foldhash: a sync's listing fills and empties maps of
/// every key of the dataset, and SipHash was a tenth of its CPU.
pub(super) type KeyMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// What the manifest records of one object's source.
struct Entry {
    size: u64,
    /// To the microsecond, the catalogue's precision.
    modified: Option<i64>,
    etag: Option<String>,
}

/// A replica's manifest, by key; entries leave it as the source's listing meets them.
#[derive(Default)]
pub(super) struct Manifest {
    entries: KeyMap<Entry>,
}

impl Manifest {
    #[cfg(test)]
    pub(super) fn new(objects: Vec<pb::ManifestObject>) -> Self {
        let mut manifest = Manifest::default();
        manifest.extend(objects);
        manifest
    }

    /// Adds a batch of the manifest as it arrives, so the map is built while the rest
    /// is still on its way.
    pub(super) fn extend(&mut self, objects: Vec<pb::ManifestObject>) {
        self.entries.reserve(objects.len());
        self.entries.extend(objects.into_iter().map(|o| {
            let entry = Entry {
                size: o.size,
                modified: o
                    .modified
                    .as_ref()
                    .and_then(ferry_proto::time::from_timestamp)
                    .map(|t| t.timestamp_micros()),
                etag: (!o.etag.is_empty()).then_some(o.etag),
            };
            (o.key, entry)
        }));
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the source object `o` is as the manifest recorded it and the
    /// destination holds it at that size (`destination_size`). Size, modification
    /// time and etag must match where both sides know them; an object the manifest
    /// has no time or etag for, where the listing has one, counts as changed. The
    /// object's entry leaves the manifest either way.
    pub(super) fn unchanged(&mut self, o: &ObjectInfo, destination_size: Option<u64>) -> bool {
        let Some(entry) = self.entries.remove(&o.key) else {
            return false;
        };
        fn same<T: PartialEq>(listed: Option<T>, recorded: Option<T>) -> bool {
            match (listed, recorded) {
                (Some(l), Some(r)) => l == r,
                (None, _) => true,
                (Some(_), None) => false,
            }
        }
        o.size == entry.size
            && destination_size == Some(entry.size)
            && same(
                o.last_modified.map(|t| t.timestamp_micros()),
                entry.modified,
            )
            && same(o.etag.as_deref(), entry.etag.as_deref())
    }

    /// The keys the source's listing did not meet that `held` (the destination's
    /// objects the source does not hold) has none of either: gone from both sides.
    pub(super) fn gone_from_both(self, held: &KeyMap<u64>) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries
            .into_keys()
            .filter(|key| !held.contains_key(key))
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn manifest(size: u64, modified: i64, etag: &str) -> Manifest {
        Manifest::new(vec![pb::ManifestObject {
            key: "a".into(),
            size,
            modified: Some(ferry_proto::time::to_timestamp(
                DateTime::from_timestamp(modified, 0).unwrap(),
            )),
            etag: etag.into(),
        }])
    }

    fn listed(size: u64, modified: i64, etag: Option<&str>) -> ObjectInfo {
        ObjectInfo {
            key: "a".into(),
            size,
            content_type: None,
            user_metadata: Default::default(),
            last_modified: DateTime::from_timestamp(modified, 500),
            etag: etag.map(str::to_owned),
        }
    }

    #[test]
    fn an_object_as_recorded_and_held_at_the_destination_is_unchanged() {
        // The listing's nanoseconds beyond the microsecond do not count.
        assert!(manifest(4, 10, "e").unchanged(&listed(4, 10, Some("e")), Some(4)));
        assert!(manifest(4, 10, "").unchanged(&listed(4, 10, None), Some(4)));
    }

    #[test]
    fn a_change_at_either_side_or_a_missing_record_means_a_copy() {
        let cases = [
            (listed(5, 10, Some("e")), Some(4)),
            (listed(4, 11, Some("e")), Some(4)),
            (listed(4, 10, Some("f")), Some(4)),
            (listed(4, 10, Some("e")), None),
            (listed(4, 10, Some("e")), Some(3)),
        ];
        for (o, destination_size) in cases {
            assert!(
                !manifest(4, 10, "e").unchanged(&o, destination_size),
                "{o:?}"
            );
        }
        // An etag listed that the manifest never recorded.
        assert!(!manifest(4, 10, "").unchanged(&listed(4, 10, Some("e")), Some(4)));
        let mut empty = Manifest::new(Vec::new());
        assert!(!empty.unchanged(&listed(4, 10, None), Some(4)));
    }

    #[test]
    fn keys_left_unmet_and_not_at_the_destination_are_gone_from_both_sides() {
        let mut m = Manifest::new(
            ["a", "b", "c"]
                .map(|key| pb::ManifestObject {
                    key: key.into(),
                    size: 1,
                    ..Default::default()
                })
                .into(),
        );
        let mut b = listed(1, 10, None);
        b.key = "b".into();
        m.unchanged(&b, Some(1));
        let held = KeyMap::from_iter([("c".to_owned(), 1)]);
        assert_eq!(m.gone_from_both(&held), vec!["a".to_owned()]);
    }
}
