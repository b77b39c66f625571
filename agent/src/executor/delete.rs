//! A DELETE task: a sync deletes the objects it found at the destination only, once
//! every source object is verified there and the control plane checked the count
//! against the sync's cap; a migration, the copies it made of objects its final pass
//! found deleted at the source. Only the destination is touched.

use ferry_proto::v1 as pb;
use ferry_storage::{ObjectError, ObjectInfo};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{sites::Sites, TaskError};
use crate::{report::Reporter, transfer, wire::ObjectReport};

/// Results reported per message, at most.
const RESULTS_PER_REPORT: usize = 500;

/// Deletes the task's objects at the destination, `concurrency` at a time, and
/// reports each: `deleted`, or `failed` with the reason. An object already gone counts
/// as deleted.
pub(super) async fn delete_extras(
    command: &pb::JobCommand,
    sites: &Sites,
    reporter: &Reporter,
    cancel: &CancellationToken,
    concurrency: usize,
) -> Result<(), TaskError> {
    let dst = sites.dst.op();
    let deletions = command.objects.iter().map(|o| {
        let dst = dst.clone();
        let info = ObjectInfo {
            key: o.key.clone(),
            size: o.size,
            content_type: None,
            user_metadata: Default::default(),
            last_modified: None,
            etag: None,
        };
        async move {
            let outcome = transfer::delete_object(&dst, &info.key).await;
            (info, outcome)
        }
    });
    let mut deletions =
        futures::stream::iter(deletions.collect::<Vec<_>>()).buffer_unordered(concurrency.max(1));
    let (mut batch, mut failures, mut deleted) = (
        Vec::<pb::ObjectResult>::new(),
        Vec::<ObjectError>::new(),
        0usize,
    );
    while let Some((info, outcome)) = deletions.next().await {
        if cancel.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        let report = match outcome {
            Ok(()) => {
                deleted += 1;
                ObjectReport::new(&info, pb::ObjectStatus::Deleted)
            }
            Err(e) => {
                let report = ObjectReport::new(&info, pb::ObjectStatus::Failed).failed(&e);
                failures.push(e);
                report
            }
        };
        batch.push(report.into());
        if batch.len() >= RESULTS_PER_REPORT {
            reporter.objects(std::mem::take(&mut batch)).await?;
        }
    }
    reporter.objects(batch).await?;
    info!(
        deleted,
        failed = failures.len(),
        "extras deleted at the destination"
    );
    let count = failures.len();
    match failures.into_iter().next() {
        Some(first) => Err(TaskError::Deletions { count, first }),
        None => Ok(()),
    }
}
