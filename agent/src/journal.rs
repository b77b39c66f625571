//! The journal of a copy task's multipart uploads: every upload id and every stored
//! part is reported to the control plane (and stored by JetStream) before the upload
//! goes on, so whoever runs the task next resumes it instead of starting over.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use ferry_proto::v1::{self as pb, progress_report::Event};

use crate::{
    config::Faults,
    multipart::{PartDone, UploadJournal, UploadState},
    report::Reporter,
    transfer,
};

pub struct TaskJournal {
    reporter: Reporter,
    /// The latest state of each upload of the task, by key: what a retry resumes.
    uploads: Mutex<HashMap<String, UploadState>>,
    /// Fault injection: a pause after each journalled part.
    pause_after_part: Duration,
    /// Fault injection: a pause between creating an upload and journalling it.
    pause_before_upload_journalled: Duration,
}

impl TaskJournal {
    /// A journal starting from the uploads the control plane recorded for the task.
    pub fn new(
        reporter: Reporter,
        recorded: &HashMap<String, pb::JobObject>,
        faults: &Faults,
    ) -> Self {
        let uploads = recorded
            .iter()
            .filter_map(|(key, o)| Some((key.clone(), upload_from_pb(o.upload.as_ref()?)?)))
            .collect();
        TaskJournal {
            reporter,
            uploads: Mutex::new(uploads),
            pause_after_part: Duration::from_millis(faults.pause_after_part_ms),
            pause_before_upload_journalled: Duration::from_millis(
                faults.pause_before_upload_journalled_ms,
            ),
        }
    }

    /// Where the upload of `key` stands, if one was started.
    pub fn state(&self, key: &str) -> Option<UploadState> {
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Every upload started and not known to be finished, by key.
    pub fn uploads(&self) -> Vec<(String, UploadState)> {
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, u)| (k.clone(), u.clone()))
            .collect()
    }

    /// Forgets the upload of `key`: it completed.
    pub fn finished(&self, key: &str) {
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    async fn report(&self, key: &str, upload: pb::MultipartUpload) -> anyhow::Result<()> {
        self.reporter
            .send(Event::Upload(pb::UploadProgress {
                key: key.to_owned(),
                upload: Some(upload),
            }))
            .await
    }
}

impl UploadJournal for TaskJournal {
    async fn started(&self, key: &str, upload_id: &str, part_size: u64) -> anyhow::Result<()> {
        if !self.pause_before_upload_journalled.is_zero() {
            tokio::time::sleep(self.pause_before_upload_journalled).await;
        }
        self.report(
            key,
            pb::MultipartUpload {
                upload_id: upload_id.to_owned(),
                part_size,
                parts: Vec::new(),
            },
        )
        .await?;
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key.to_owned(),
                UploadState {
                    upload_id: upload_id.to_owned(),
                    part_size,
                    parts: Vec::new(),
                },
            );
        Ok(())
    }

    async fn part_done(&self, key: &str, upload_id: &str, part: &PartDone) -> anyhow::Result<()> {
        let part_size = {
            let uploads = self.uploads.lock().unwrap_or_else(PoisonError::into_inner);
            match uploads.get(key) {
                Some(state) if state.upload_id == upload_id => state.part_size,
                _ => anyhow::bail!(
                    "part {} of an upload of {key} that was never journalled",
                    part.number
                ),
            }
        };
        self.report(
            key,
            pb::MultipartUpload {
                upload_id: upload_id.to_owned(),
                part_size,
                parts: vec![pb::UploadedPart {
                    number: part.number,
                    size: part.size,
                    etag: part.etag.clone(),
                    xxh3: transfer::xxh3_hex(part.xxh3),
                }],
            },
        )
        .await?;
        if let Some(state) = self
            .uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(key)
            .filter(|s| s.upload_id == upload_id)
        {
            state.parts.retain(|p| p.number != part.number);
            state.parts.push(part.clone());
        }
        if !self.pause_after_part.is_zero() {
            tokio::time::sleep(self.pause_after_part).await;
        }
        Ok(())
    }
}

/// An upload as the control plane records it; `None` when a part's hash is unreadable
/// (the upload then starts over rather than trusting it).
fn upload_from_pb(u: &pb::MultipartUpload) -> Option<UploadState> {
    let parts = u
        .parts
        .iter()
        .map(|p| {
            Some(PartDone {
                number: p.number,
                size: p.size,
                etag: p.etag.clone(),
                xxh3: transfer::parse_xxh3_hex(&p.xxh3).ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(UploadState {
        upload_id: u.upload_id.clone(),
        part_size: u.part_size,
        parts,
    })
}
