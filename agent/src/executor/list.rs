//! A LIST task: the source is listed through the plan's filter and cut into copy tasks,
//! which the control plane records and dispatches to every agent of the site.

use std::pin::pin;

use ferry_proto::v1::{self as pb, progress_report::Event};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{sites::Sites, Executor};
use crate::{
    destination,
    filter::ObjectFilter,
    report::Reporter,
    transfer::{self, TransferError},
};

impl Executor {
    /// Lists the source through the plan's filter and reports it page by page as copy
    /// tasks of at most `task_objects` objects or `task_mib` MiB: memory does not grow
    /// with the number of keys, and agents start copying while the listing goes on.
    pub(super) async fn list_into_tasks(
        &self,
        command: &pb::JobCommand,
        sites: &Sites,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let filter = ObjectFilter::from_pb(command.filter.as_ref()).map_err(anyhow::Error::msg)?;
        let destination_empty = destination::holds_nothing(&sites.dst).await;
        let mut listing = pin!(transfer::list_sizes(&sites.src, "", None)
            .try_filter(|o| std::future::ready(filter.accepts(o))));
        let max_bytes = self.config.task_mib << 20;
        let (mut page, mut page_bytes) = (Vec::new(), 0u64);
        let (mut tasks, mut objects, mut bytes) = (0usize, 0u64, 0u64);
        loop {
            let next = listing
                .try_next()
                .await
                .map_err(|e: TransferError| anyhow::anyhow!("{e}"))?;
            if cancel.is_cancelled() {
                anyhow::bail!("cancelled");
            }
            let end = next.is_none();
            if let Some(o) = next {
                objects += 1;
                bytes += o.size;
                page_bytes += o.size;
                page.push(pb::ListedObject {
                    key: o.key,
                    size: o.size,
                    etag: o.etag.unwrap_or_default(),
                    ..Default::default()
                });
            }
            let full = page.len() >= self.config.task_objects || page_bytes >= max_bytes;
            if !page.is_empty() && (full || end) {
                reporter
                    .send(Event::TaskListed(pb::TaskListed {
                        copy_task_id: format!("copy-{tasks}"),
                        objects: std::mem::take(&mut page),
                        destination_empty,
                    }))
                    .await?;
                tasks += 1;
                page_bytes = 0;
            }
            if end {
                break;
            }
        }
        info!(job_id = %command.job_id, tasks, objects, bytes, "source listed into copy tasks");
        Ok(())
    }
}
