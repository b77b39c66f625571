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
    parts::{JournalError, PartDone, UploadJournal, UploadState},
    report::Reporter,
    wire,
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
        let uploads = wire::recorded_uploads(recorded);
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

    async fn report(&self, key: &str, upload: pb::MultipartUpload) -> Result<(), JournalError> {
        self.reporter
            .send(Event::Upload(pb::UploadProgress {
                key: key.to_owned(),
                upload: Some(upload),
            }))
            .await
            .map_err(|e| JournalError(e.to_string()))
    }
}

impl UploadJournal for TaskJournal {
    async fn started(
        &self,
        key: &str,
        upload_id: &str,
        part_size: u64,
    ) -> Result<(), JournalError> {
        if !self.pause_before_upload_journalled.is_zero() {
            tokio::time::sleep(self.pause_before_upload_journalled).await;
        }
        self.report(key, wire::upload_progress(upload_id, part_size, &[]))
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

    async fn part_done(
        &self,
        key: &str,
        upload_id: &str,
        part: &PartDone,
    ) -> Result<(), JournalError> {
        let part_size = {
            let uploads = self.uploads.lock().unwrap_or_else(PoisonError::into_inner);
            match uploads.get(key) {
                Some(state) if state.upload_id == upload_id => state.part_size,
                _ => {
                    return Err(JournalError(format!(
                        "part {} of an upload of {key} that was never journalled",
                        part.number
                    )))
                }
            }
        };
        self.report(
            key,
            wire::upload_progress(upload_id, part_size, std::slice::from_ref(part)),
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
