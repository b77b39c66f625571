//! Unfinished resumable uploads (S3 multipart uploads, GCS sessions) of a job that is
//! over are aborted, so that no orphaned parts stay behind (and keep costing) at the
//! destination.

use ferry_proto::v1 as pb;
use ferry_storage::{ErrorKind, ObjectError};
use tracing::{info, warn};

use super::{sites::Sites, Outcome};
use crate::journal::TaskJournal;

/// Aborts the task's unfinished uploads once the job is over. Best effort: a failure
/// is logged, and a bucket lifecycle rule (or a session's expiry) is the backstop.
pub(super) async fn abort_uploads(sites: &Sites, journal: &TaskJournal) {
    for (key, upload) in journal.uploads() {
        match abort(sites, &key, &upload.upload_id).await {
            Some(Ok(())) => info!(key, "unfinished upload aborted: the job is over"),
            Some(Err(e)) => warn!(key, error = %e, "aborting an unfinished upload failed"),
            None => {}
        }
    }
}

/// Aborts the uploads an ABORT_UPLOADS task lists: the job ended, and whichever agent
/// started them may be gone. An upload the service no longer knows is already gone.
pub(super) async fn abort_recorded_uploads(command: &pb::JobCommand, sites: &Sites) -> Outcome {
    let mut failed = 0;
    for o in &command.objects {
        match abort(sites, &o.key, &o.upload_id).await {
            None => return Outcome::Dropped("the destination has no resumable uploads".into()),
            Some(Ok(())) => info!(key = %o.key, "unfinished upload aborted: the job is over"),
            Some(Err(e)) if e.kind == ErrorKind::NotFound => {}
            Some(Err(e)) if e.is_temporary() => {
                warn!(key = %o.key, error = %e, "aborting an upload failed; will retry");
                failed += 1;
            }
            Some(Err(e)) => {
                warn!(key = %o.key, error = %e, "aborting an upload failed; a lifecycle rule must remove it")
            }
        }
    }
    if failed > 0 {
        return Outcome::Retry(format!("{failed} upload(s) not aborted yet"));
    }
    Outcome::Done
}

/// Aborts one upload of the destination; `None` where it has no resumable uploads.
async fn abort(sites: &Sites, key: &str, upload_id: &str) -> Option<Result<(), ObjectError>> {
    if let Some(dst) = &sites.dst_s3 {
        return Some(dst.abort_upload(key, upload_id).await);
    }
    let gcs = sites.dst_gcs.as_ref()?;
    Some(gcs.cancel(key, upload_id).await)
}
