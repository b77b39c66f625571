//! Unfinished multipart uploads of a job that is over are aborted, so that no orphaned
//! parts stay behind (and keep costing) at the destination.

use ferry_proto::v1 as pb;
use tracing::{info, warn};

use super::{sites::Sites, Outcome};
use crate::{journal::TaskJournal, s3::S3Dataset, storage::SiteAccess};

/// Aborts the task's unfinished multipart uploads once the job is over. Best effort: a
/// failure is logged, and a bucket lifecycle rule is the backstop.
pub(super) async fn abort_uploads(sites: &Sites, journal: &TaskJournal) {
    let Some(dst) = &sites.dst_s3 else { return };
    for (key, upload) in journal.uploads() {
        match dst.abort_upload(&key, &upload.upload_id).await {
            Ok(()) => {
                info!(key, upload_id = %upload.upload_id, "unfinished upload aborted: the job is over")
            }
            Err(e) => {
                warn!(key, upload_id = %upload.upload_id, error = %e, "aborting an unfinished upload failed")
            }
        }
    }
}

/// Aborts the uploads an ABORT_UPLOADS task lists: the job ended, and whichever agent
/// started them may be gone. An upload the service no longer knows is already gone.
pub(super) async fn abort_recorded_uploads(
    command: &pb::JobCommand,
    destination: &SiteAccess,
) -> Outcome {
    let dst = match S3Dataset::for_site(destination) {
        Ok(Some(dst)) => dst,
        Ok(None) => return Outcome::Dropped("the destination is not on S3".into()),
        Err(e) => return Outcome::Dropped(format!("destination: {e}")),
    };
    let mut failed = 0;
    for o in &command.objects {
        match dst.abort_upload(&o.key, &o.upload_id).await {
            Ok(()) => {
                info!(job_id = %command.job_id, key = %o.key, upload_id = %o.upload_id, "unfinished upload aborted: the job is over")
            }
            Err(e) if e.kind == opendal::ErrorKind::NotFound => {}
            Err(e) if e.temporary => {
                warn!(job_id = %command.job_id, key = %o.key, error = %e, "aborting an upload failed; will retry");
                failed += 1;
            }
            Err(e) => {
                warn!(job_id = %command.job_id, key = %o.key, error = %e, "aborting an upload failed; a lifecycle rule must remove it")
            }
        }
    }
    if failed > 0 {
        return Outcome::Retry(format!("{failed} upload(s) not aborted yet"));
    }
    Outcome::Done
}
