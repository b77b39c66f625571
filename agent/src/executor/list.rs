//! A LIST task: the source is listed through the plan's filter and cut into copy tasks,
//! which the control plane records and dispatches to every agent of the site. A sync's
//! listing also lists the destination through the same filter first: each source object
//! goes out with what the destination holds under its key, and the destination's
//! objects the source does not hold follow at the end. Its source objects are compared
//! with the replica's manifest, read from the control plane meanwhile: those unchanged
//! are counted, not sent; a migration's final pass compares its listing the same way
//! with the objects the migration copied. A continuous sync's run of changes names its
//! keys: only those are looked up at both ends (and, for a key that is no file, what
//! lies below it), instead of listing either. A full listing of a file-system
//! destination removes the temporary files of writes no one has touched for an hour.

use std::{collections::BTreeMap, pin::pin};

use ferry_proto::v1::{self as pb, progress_report::Event};
use ferry_storage::{ObjectFilter, ObjectInfo};
use futures::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::{
    manifest::{KeyMap, Manifest},
    sites::Sites,
    Executor, TaskError,
};
use crate::{destination, report::Reporter, wire};

impl Executor {
    /// Lists the source through the plan's filter and reports it page by page as copy
    /// tasks of at most `task_objects` objects or `task_mib` MiB: memory does not grow
    /// with the number of keys, and agents start copying while the listing goes on. A
    /// sync's listing holds the destination's keys and sizes (those the filter takes)
    /// in memory while it runs.
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
        let compared = command.job_kind == pb::JobKind::Sync as i32;
        if compared && !command.keys.is_empty() {
            return self
                .list_changes(command, sites, &filter, reporter, cancel)
                .await;
        }
        // A migration's final pass also lists the destination: what the source no
        // longer holds of it was deleted there during the copy (the control plane
        // knows which of those objects the migration wrote). A sync's listing is
        // compared with the replica's manifest, a final pass's with what the migration
        // copied, read meanwhile; the source is listed ahead, within bounds, at the
        // same time, so both sides are read at once.
        let reads_manifest = compared || command.final_pass;
        let source = ferry_storage::list_sizes(sites.src.op(), "", None);
        let source = if reads_manifest {
            futures::future::Either::Left(read_ahead(source, SOURCE_AHEAD))
        } else {
            futures::future::Either::Right(source)
        };
        let (mut at_destination, mut manifest) = if reads_manifest {
            let (held, manifest) = tokio::join!(
                destination_objects(sites, &filter, cancel),
                self.read_manifest(command)
            );
            (Some(held?), manifest?)
        } else {
            (None, None)
        };
        let destination_empty = match &at_destination {
            Some(objects) => objects.is_empty(),
            None => destination::holds_nothing(sites.dst.op()).await,
        };
        let recorded = manifest.as_ref().map_or(0, Manifest::len);
        let mut pages = Pages {
            reporter,
            // A migration's final pass names its tasks apart from the first listing's.
            prefix: if command.final_pass { "final" } else { "copy" },
            max_objects: self.config.task_objects,
            max_bytes: self.config.task_mib << 20,
            destination_empty,
            compared,
            page: Vec::new(),
            page_bytes: 0,
            tasks: 0,
        };
        let mut listing = pin!(source.try_filter(|o| std::future::ready(filter.accepts(o))));
        let (mut objects, mut bytes) = (0u64, 0u64);
        let (mut unchanged, mut unchanged_bytes) = (0u64, 0u64);
        while let Some(o) = listing.try_next().await? {
            if cancel.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            objects += 1;
            bytes += o.size;
            let size = o.size;
            let destination_size = at_destination.as_mut().and_then(|held| held.remove(&o.key));
            if let Some(manifest) = manifest.as_mut() {
                if manifest.unchanged(&o, destination_size) {
                    unchanged += 1;
                    unchanged_bytes += size;
                    continue;
                }
            }
            let listed = if compared {
                wire::to_compared_object(o, destination_size)
            } else {
                wire::to_listed_object(o)
            };
            pages.add(listed, size).await?;
        }
        pages.flush().await?;
        let extras = at_destination.as_ref().map_or(0, KeyMap::len);
        if let Some(held) = at_destination {
            // A sync forgets what neither side holds any more; a migration keeps its
            // record of what it copied.
            let gone = match manifest {
                Some(m) if compared => m.gone_from_both(&held),
                _ => Vec::new(),
            };
            pages.send_destination_only(held).await?;
            pages.send_manifest_only(gone).await?;
        }
        if compared {
            reporter
                .send(Event::ManifestCompared(pb::ManifestCompared {
                    unchanged_objects: unchanged,
                    unchanged_bytes,
                }))
                .await?;
        }
        info!(
            tasks = pages.tasks,
            objects, bytes, extras, recorded, unchanged, "source listed into copy tasks"
        );
        Ok(())
    }

    /// The manifest the listing is compared with: the replica's for a sync, what the
    /// migration copied for its final pass. A control plane that keeps none for a
    /// migration (an older one) leaves the final pass to send every object, as it
    /// judges them all anyway.
    async fn read_manifest(&self, command: &pb::JobCommand) -> Result<Option<Manifest>, TaskError> {
        let mut manifest = Manifest::default();
        let read = self
            .control
            .sync_manifest(&command.job_id, command.attempt, |batch| {
                manifest.extend(batch)
            })
            .await;
        match read {
            Ok(()) => {
                info!(entries = manifest.len(), "manifest read");
                Ok(Some(manifest))
            }
            Err(status)
                if command.final_pass
                    && matches!(
                        status.code(),
                        tonic::Code::FailedPrecondition | tonic::Code::Unimplemented
                    ) =>
            {
                warn!(
                    error = status.message(),
                    "no manifest for the final pass; every object goes to the control plane"
                );
                Ok(None)
            }
            Err(status) => Err(TaskError::Control {
                what: "for the job's manifest",
                message: status.message().to_owned(),
            }),
        }
    }

    /// A continuous sync's run of changes: each named key is looked up at both ends
    /// (what lies below it too, when it is no file there: a directory created, moved
    /// or removed), and reported as a sync's listing of those objects alone.
    async fn list_changes(
        &self,
        command: &pb::JobCommand,
        sites: &Sites,
        filter: &ObjectFilter,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Result<(), TaskError> {
        let source = objects_at(sites.src.op(), &command.keys, filter, cancel).await?;
        let mut held: KeyMap<u64> = objects_at(sites.dst.op(), &command.keys, filter, cancel)
            .await?
            .into_iter()
            .map(|(key, o)| (key, o.size))
            .collect();
        let mut pages = Pages {
            reporter,
            prefix: "copy",
            max_objects: self.config.task_objects,
            max_bytes: self.config.task_mib << 20,
            // Only the named keys were looked at: the rest of the destination is unknown.
            destination_empty: false,
            compared: true,
            page: Vec::new(),
            page_bytes: 0,
            tasks: 0,
        };
        let (objects, mut bytes) = (source.len(), 0u64);
        for (key, o) in source {
            let size = o.size;
            bytes += size;
            let destination_size = held.remove(&key);
            pages
                .add(wire::to_compared_object(o, destination_size), size)
                .await?;
        }
        pages.flush().await?;
        let extras = held.len();
        pages.send_destination_only(held).await?;
        info!(
            keys = command.keys.len(),
            objects, bytes, extras, "changed keys looked up"
        );
        Ok(())
    }
}

/// Source objects a sync's listing reads ahead while it reads the destination and the
/// manifest: about 10 MB at most.
const SOURCE_AHEAD: usize = 100_000;
/// Objects handed from the read-ahead task to its reader at once: one hand-off per
/// page of a listing rather than per object.
const AHEAD_CHUNK: usize = 1000;

/// `stream`, driven by a task of its own up to about `ahead` items before its reader.
fn read_ahead<T: Send + 'static>(
    stream: impl futures::Stream<Item = T> + Send + 'static,
    ahead: usize,
) -> impl futures::Stream<Item = T> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(ahead.div_ceil(AHEAD_CHUNK).max(1));
    let drive = async move {
        let mut chunks = pin!(stream.ready_chunks(AHEAD_CHUNK));
        while let Some(chunk) = chunks.next().await {
            // The reader is gone: the task ended.
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    };
    // In the task's span, which carries the job id.
    tokio::spawn(drive.in_current_span());
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (futures::stream::iter(chunk), rx))
    })
    .flatten()
}

/// The objects at `keys` through the filter, by key: the object named by each key, or
/// when there is none, every object below it.
async fn objects_at(
    op: &opendal::Operator,
    keys: &[String],
    filter: &ObjectFilter,
    cancel: &CancellationToken,
) -> Result<BTreeMap<String, ObjectInfo>, TaskError> {
    let mut found = BTreeMap::new();
    for key in keys {
        if cancel.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        if let Some(o) = ferry_storage::stat_sizes(op, key).await? {
            if filter.accepts(&o) {
                found.insert(o.key.clone(), o);
            }
            continue;
        }
        let under = format!("{}/", key.trim_end_matches('/'));
        let listing = ferry_storage::list_sizes(op, &under, None);
        each_below(listing, filter, cancel, |o| {
            found.insert(o.key.clone(), o);
        })
        .await?;
    }
    Ok(found)
}

/// What the destination holds, through the plan's filter: size by key. A destination
/// that does not exist yet holds nothing. On a file system the walk also removes the
/// stale temporary files of writes that never finished.
async fn destination_objects(
    sites: &Sites,
    filter: &ObjectFilter,
    cancel: &CancellationToken,
) -> Result<KeyMap<u64>, TaskError> {
    let mut held = KeyMap::default();
    let listing = ferry_storage::list_sweeping(sites.dst.op(), "");
    each_below(listing, filter, cancel, |o| {
        held.insert(o.key, o.size);
    })
    .await?;
    info!(objects = held.len(), "destination listed");
    Ok(held)
}

/// Hands `each` every object of `listing` that the filter takes; a directory that does
/// not exist holds nothing.
async fn each_below(
    listing: impl futures::Stream<Item = Result<ObjectInfo, ferry_storage::ObjectError>>,
    filter: &ObjectFilter,
    cancel: &CancellationToken,
    mut each: impl FnMut(ObjectInfo),
) -> Result<(), TaskError> {
    let mut listing =
        pin!(listing.try_filter(|o: &ObjectInfo| std::future::ready(filter.accepts(o))));
    loop {
        match listing.try_next().await {
            Ok(Some(o)) => {
                if cancel.is_cancelled() {
                    return Err(TaskError::Cancelled);
                }
                each(o);
            }
            Ok(None) => return Ok(()),
            Err(e) if e.kind == ferry_storage::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The listing's pages, each reported as a copy task.
struct Pages<'a> {
    reporter: &'a Reporter,
    prefix: &'static str,
    max_objects: usize,
    max_bytes: u64,
    destination_empty: bool,
    compared: bool,
    page: Vec<pb::ListedObject>,
    page_bytes: u64,
    tasks: usize,
}

impl Pages<'_> {
    async fn add(&mut self, object: pb::ListedObject, size: u64) -> Result<(), TaskError> {
        self.page.push(object);
        self.page_bytes += size;
        if self.page.len() >= self.max_objects || self.page_bytes >= self.max_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TaskError> {
        if self.page.is_empty() {
            return Ok(());
        }
        self.reporter
            .send(Event::TaskListed(pb::TaskListed {
                copy_task_id: format!("{}-{}", self.prefix, self.tasks),
                objects: std::mem::take(&mut self.page),
                destination_empty: self.destination_empty,
                compared: self.compared,
                destination_only: Vec::new(),
                manifest_only: Vec::new(),
            }))
            .await?;
        self.tasks += 1;
        self.page_bytes = 0;
        Ok(())
    }

    /// The destination's objects the source does not hold, in pages with no object to
    /// copy, after every page of the source.
    async fn send_destination_only(&mut self, held: KeyMap<u64>) -> Result<(), TaskError> {
        let mut extras: Vec<pb::ListedObject> = held
            .into_iter()
            .map(|(key, size)| pb::ListedObject {
                key,
                size,
                at_destination: true,
                destination_size: size,
                ..Default::default()
            })
            .collect();
        extras.sort_by(|a, b| a.key.cmp(&b.key));
        for (n, page) in extras.chunks(self.max_objects.max(1)).enumerate() {
            self.reporter
                .send(Event::TaskListed(pb::TaskListed {
                    copy_task_id: format!("extras-{n}"),
                    objects: Vec::new(),
                    destination_empty: false,
                    compared: true,
                    destination_only: page.to_vec(),
                    manifest_only: Vec::new(),
                }))
                .await?;
        }
        Ok(())
    }

    /// The keys the replica's manifest records that neither side holds any more, in
    /// pages of their own, for the control plane to forget.
    async fn send_manifest_only(&mut self, keys: Vec<String>) -> Result<(), TaskError> {
        for (n, page) in keys.chunks(self.max_objects.max(1)).enumerate() {
            self.reporter
                .send(Event::TaskListed(pb::TaskListed {
                    copy_task_id: format!("forgotten-{n}"),
                    objects: Vec::new(),
                    destination_empty: false,
                    compared: true,
                    destination_only: Vec::new(),
                    manifest_only: page.to_vec(),
                }))
                .await?;
        }
        Ok(())
    }
}
