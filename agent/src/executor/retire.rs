//! A RETIRE task: the source is deleted, once the control plane has switched the
//! dataset to the destination and the policy says so.

use std::pin::pin;

use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::transfer::{self, TransferError};

/// Deletes every object of the source, page by page as it is listed.
pub(super) async fn retire_source(
    src: &opendal::Operator,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let mut listing = pin!(transfer::list_sizes(src, "", None));
    let mut total = 0usize;
    while let Some(o) = listing
        .try_next()
        .await
        .map_err(|e: TransferError| anyhow::anyhow!("{e}"))?
    {
        if cancel.is_cancelled() {
            anyhow::bail!("cancelled");
        }
        transfer::delete_object(src, &o.key)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        total += 1;
    }
    info!(objects = total, "source retired");
    Ok(())
}
