//! Every conversion between the agent's types and the `ferry.v1` wire messages, in one
//! place: a field added to a message is converted here and nowhere else.
//!
//! The agent takes its work orders (`JobCommand`) and the control plane's records
//! (`JobObject`) as they arrive; what it computes with (site access, filters, listed
//! objects, uploads) it converts on receipt, and its results on the way out.

use std::collections::HashMap;

use ferry_proto::{time::from_timestamp, v1 as pb};
use ferry_storage::{FilterSpec, ObjectError, ObjectInfo, SiteAccess};
use secrecy::SecretString;

use crate::{
    parts::{PartDone, UploadState},
    transfer::{parse_xxh3_hex, xxh3_hex},
};

/// A site's access as the control plane hands it over (credentials included).
pub fn site_access(a: pb::SiteAccess) -> SiteAccess {
    SiteAccess {
        uri: a.uri,
        options: a.options.into_iter().collect(),
        credentials: a
            .credentials
            .into_iter()
            .map(|(k, v)| (k, SecretString::from(v)))
            .collect(),
        path: a.path,
    }
}

/// A plan's object filter; an absent one takes everything.
pub fn filter_spec(f: Option<&pb::ObjectFilter>) -> FilterSpec {
    let Some(f) = f else {
        return FilterSpec::default();
    };
    FilterSpec {
        prefix: f.prefix.clone(),
        include: f.include.clone(),
        exclude: f.exclude.clone(),
        min_size: f.min_size,
        max_size: (f.max_size != 0).then_some(f.max_size),
        modified_before: f.modified_before.as_ref().and_then(from_timestamp),
        modified_after: f.modified_after.as_ref().and_then(from_timestamp),
    }
}

/// A task's object as the listing gave it.
pub fn listed_object(o: &pb::ListedObject) -> ObjectInfo {
    ObjectInfo {
        key: o.key.clone(),
        size: o.size,
        content_type: None,
        user_metadata: Default::default(),
        last_modified: None,
        etag: Some(o.etag.clone()).filter(|e| !e.is_empty()),
    }
}

/// A listed object as a LIST task reports it.
pub fn to_listed_object(o: ObjectInfo) -> pb::ListedObject {
    pb::ListedObject {
        modified: o.last_modified.map(ferry_proto::time::to_timestamp),
        key: o.key,
        size: o.size,
        etag: o.etag.unwrap_or_default(),
        ..Default::default()
    }
}

/// A source object as a sync's LIST task reports it: with the size of the
/// destination's object of the same key, if it has one.
pub fn to_compared_object(o: ObjectInfo, destination_size: Option<u64>) -> pb::ListedObject {
    pb::ListedObject {
        at_destination: destination_size.is_some(),
        destination_size: destination_size.unwrap_or(0),
        ..to_listed_object(o)
    }
}

/// The uploads the control plane recorded for a task's objects, by key. An upload with
/// an unreadable part hash is left out: it starts over rather than being trusted.
pub fn recorded_uploads(recorded: &HashMap<String, pb::JobObject>) -> HashMap<String, UploadState> {
    recorded
        .iter()
        .filter_map(|(key, o)| Some((key.clone(), upload_state(o.upload.as_ref()?)?)))
        .collect()
}

fn upload_state(u: &pb::MultipartUpload) -> Option<UploadState> {
    let parts = u
        .parts
        .iter()
        .map(|p| {
            Some(PartDone {
                number: p.number,
                size: p.size,
                etag: p.etag.clone(),
                xxh3: parse_xxh3_hex(&p.xxh3).ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(UploadState {
        upload_id: u.upload_id.clone(),
        part_size: u.part_size,
        parts,
    })
}

/// An upload's progress as journalled: its id and part size, and the parts given.
pub fn upload_progress(upload_id: &str, part_size: u64, parts: &[PartDone]) -> pb::MultipartUpload {
    pb::MultipartUpload {
        upload_id: upload_id.to_owned(),
        part_size,
        parts: parts
            .iter()
            .map(|part| pb::UploadedPart {
                number: part.number,
                size: part.size,
                etag: part.etag.clone(),
                xxh3: xxh3_hex(part.xxh3),
            })
            .collect(),
    }
}

/// One object's line in a progress report, built up from what is known of it.
pub struct ObjectReport(pb::ObjectResult);

impl ObjectReport {
    pub fn new(info: &ObjectInfo, status: pb::ObjectStatus) -> Self {
        ObjectReport(pb::ObjectResult {
            key: info.key.clone(),
            size: info.size,
            status: status.into(),
            ..Default::default()
        })
    }

    pub fn hashes(mut self, source: Option<u128>, destination: Option<u128>) -> Self {
        self.0.source_xxh3 = source.map(xxh3_hex).unwrap_or_default();
        self.0.destination_xxh3 = destination.map(xxh3_hex).unwrap_or_default();
        self
    }

    pub fn attempts(mut self, attempts: u32) -> Self {
        self.0.attempts = attempts;
        self
    }

    /// The failure, kept on the object for the report: the operation that failed
    /// (`read`, `write`, `copy`, `verify`...) and the reason, which names the operation,
    /// the kind, the backend's own name for it and its message.
    pub fn failed(mut self, e: &ObjectError) -> Self {
        self.0.error = e.reason();
        self.0.operation = e.operation.as_str().to_owned();
        self
    }
}

impl From<ObjectReport> for pb::ObjectResult {
    fn from(r: ObjectReport) -> Self {
        r.0
    }
}

/// A dry run's answer: what the filter takes of the dataset.
pub fn dry_run_answer(objects: u64, bytes: u64, sample: Vec<ObjectInfo>) -> pb::DryRunAnswer {
    pb::DryRunAnswer {
        objects,
        bytes,
        sample: sample
            .into_iter()
            .map(|o| pb::PlannedObject {
                key: o.key,
                size: o.size,
            })
            .collect(),
        error: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_round_trip_and_unreadable_hashes_are_left_out() {
        let parts = vec![PartDone {
            number: 1,
            size: 5,
            etag: "\"e\"".into(),
            xxh3: 42,
        }];
        let good = pb::JobObject {
            upload: Some(upload_progress("u-1", 5, &parts)),
            ..Default::default()
        };
        let mut bad = good.clone();
        if let Some(u) = bad.upload.as_mut() {
            u.parts[0].xxh3 = "not hex".into();
        }
        let recorded = HashMap::from([("a".to_owned(), good), ("b".to_owned(), bad)]);
        let uploads = recorded_uploads(&recorded);
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads["a"].upload_id, "u-1");
        assert_eq!(uploads["a"].parts, parts);
    }

    #[test]
    fn an_absent_filter_takes_everything_and_zero_means_no_maximum() {
        assert_eq!(filter_spec(None), FilterSpec::default());
        let spec = filter_spec(Some(&pb::ObjectFilter {
            prefix: "p/".into(),
            min_size: 3,
            ..Default::default()
        }));
        assert_eq!(
            (spec.prefix.as_str(), spec.min_size, spec.max_size),
            ("p/", 3, None)
        );
    }
}
