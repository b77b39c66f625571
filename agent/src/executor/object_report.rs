//! One object's line in a progress report.

use ferry_proto::v1 as pb;

use crate::transfer::{self, ObjectInfo, TransferError};

/// One object's line in a progress report, built up from what is known of it.
pub(super) struct ObjectReport(pb::ObjectResult);

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
        self.0.source_xxh3 = source.map(transfer::xxh3_hex).unwrap_or_default();
        self.0.destination_xxh3 = destination.map(transfer::xxh3_hex).unwrap_or_default();
        self
    }

    pub fn attempts(mut self, attempts: u32) -> Self {
        self.0.attempts = attempts;
        self
    }

    /// The failure's reason and the operation that failed (`read`, `write`, `copy`,
    /// `verify`...), kept on the object for the report.
    pub fn failed(mut self, e: &TransferError) -> Self {
        self.0.error = e.to_string();
        self.0.operation = e.operation.to_owned();
        self
    }
}

impl From<ObjectReport> for pb::ObjectResult {
    fn from(r: ObjectReport) -> Self {
        r.0
    }
}
