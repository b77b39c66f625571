//! A LIST task: the source is listed through the plan's filter and cut into copy tasks,
//! which the control plane records and dispatches to every agent of the site.

use std::pin::pin;

use ferry_proto::v1::{self as pb, progress_report::Event};
use ferry_storage::ObjectFilter;
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{sites::Sites, Executor, TaskError};
use crate::{destination, report::Reporter, wire};

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
    ) -> Result<(), TaskError> {
        let filter =
            ObjectFilter::new(&wire::filter_spec(command.filter.as_ref())).map_err(|source| {
                TaskError::Site {
                    side: "plan",
                    source,
                }
            })?;
        let destination_empty = destination::holds_nothing(sites.dst.op()).await;
        let mut listing = pin!(ferry_storage::list_sizes(sites.src.op(), "", None)
            .try_filter(|o| std::future::ready(filter.accepts(o))));
        let max_bytes = self.config.task_mib << 20;
        let (mut page, mut page_bytes) = (Vec::new(), 0u64);
        let (mut tasks, mut objects, mut bytes) = (0usize, 0u64, 0u64);
        loop {
            let next = listing.try_next().await?;
            if cancel.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            let end = next.is_none();
            if let Some(o) = next {
                objects += 1;
                bytes += o.size;
                page_bytes += o.size;
                page.push(wire::to_listed_object(o));
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
        info!(tasks, objects, bytes, "source listed into copy tasks");
        Ok(())
    }
}
