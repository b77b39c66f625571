//! A RETIRE task: the source is deleted, once the control plane has switched the
//! dataset to the destination and the policy says so.

use std::pin::pin;

use ferry_storage::Store;
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::TaskError;
use crate::transfer;

/// Deletes every object of the source, page by page as it is listed.
pub(super) async fn retire_source(
    src: &Store,
    cancel: &CancellationToken,
) -> Result<(), TaskError> {
    let mut listing = pin!(ferry_storage::list_sizes(src.op(), "", None));
    let mut total = 0usize;
    while let Some(o) = listing.try_next().await? {
        if cancel.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        transfer::delete_object(src.op(), &o.key).await?;
        total += 1;
    }
    info!(objects = total, "source retired");
    Ok(())
}
