//! A copy task's small files between two local file systems go in batches, each
//! copied, compared and checked in one blocking call (see `local_copy`); the rest of
//! the task's objects go one by one.

use std::{collections::HashMap, sync::Arc};

use ferry_storage::ObjectInfo;
use tracing::Instrument;

use super::{CopyTask, PlacedObject};
use crate::{
    destination,
    executor::{
        place::Placed,
        verify::{Proof, Work},
    },
    local_copy::{Check, Done, LocalCopy, Wanted},
    local_file,
    local_write::Retired,
    metrics,
    transfer::VerifyMode,
};

/// Files of at most this size go in batches: for them the hand-offs to the blocking
/// pool cost more than the bytes.
const SMALL_FILE: u64 = 256 << 10;
/// Files in one batch, at most.
const BATCH_FILES: usize = 64;
/// Bytes in one batch, at most: a batch is one thread's work, and larger files are
/// better copied side by side.
const BATCH_BYTES: u64 = 2 << 20;

/// What a copy task copies together: one object, or a batch of small files and the
/// copy that takes them.
pub(super) enum Unit {
    One(ObjectInfo),
    Batch(Arc<LocalCopy>, Vec<ObjectInfo>),
}

/// How a task batches its small files, when both its ends are local file systems.
pub(super) fn batching(
    sites: &crate::executor::sites::Sites,
    options: &crate::transfer::CopyOptions,
    mode: VerifyMode,
    check_at_once: bool,
    retired: &Arc<Retired>,
) -> Option<Arc<LocalCopy>> {
    let local = local_file::is_local(sites.src.op()) && local_file::is_local(sites.dst.op());
    if !local || sites.in_place {
        return None;
    }
    let check = match (check_at_once, mode) {
        (false, _) => Check::Later,
        (true, VerifyMode::Quick) => Check::Quick,
        (true, VerifyMode::Full) => Check::Full,
    };
    Some(Arc::new(LocalCopy {
        src: sites.src.clone(),
        dst: sites.dst.clone(),
        options: options.clone(),
        max: SMALL_FILE.min(options.chunk_size as u64),
        check,
        retired: retired.clone(),
    }))
}

/// `todo` cut into what is copied together: runs of small files in batches of at most
/// [`BATCH_FILES`] files and [`BATCH_BYTES`] bytes, the rest one by one.
pub(super) fn units(todo: Vec<ObjectInfo>, batch: Option<&Arc<LocalCopy>>) -> Vec<Unit> {
    let Some(batch) = batch else {
        return todo.into_iter().map(Unit::One).collect();
    };
    let mut units = Vec::new();
    let (mut files, mut bytes) = (Vec::new(), 0u64);
    for info in todo {
        if info.size > batch.max {
            units.push(Unit::One(info));
            continue;
        }
        if files.len() == BATCH_FILES || bytes + info.size > BATCH_BYTES {
            units.push(Unit::Batch(batch.clone(), std::mem::take(&mut files)));
            bytes = 0;
        }
        bytes += info.size;
        files.push(info);
    }
    if !files.is_empty() {
        units.push(Unit::Batch(batch.clone(), files));
    }
    units
}

impl CopyTask<'_> {
    /// Copies a batch of small files in one of the agent's object slots, then any of
    /// them the batch declined one by one. Each file's outcome is what the one-by-one
    /// path gives: skipped when both ends held the same bytes, copied, and verified at
    /// once when the batch checked it.
    pub(super) async fn place_batch(
        &self,
        copy: Arc<LocalCopy>,
        files: Vec<ObjectInfo>,
        present: &HashMap<String, destination::Listed>,
    ) -> Vec<PlacedObject> {
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        let largest = files.iter().map(|f| f.size).max().unwrap_or(0);
        let first = files.first().map(|f| f.key.clone()).unwrap_or_default();
        let span = tracing::info_span!("copy_batch", objects = files.len(), %first, bytes);
        async {
            let done = {
                let _batch = self.batch_slots.acquire().await.ok();
                let _held = self.slot_and_room(largest).await;
                let _in_flight = metrics::InFlight::new(bytes);
                self.options.pace(bytes as usize).await;
                let wanted = files
                    .iter()
                    .map(|f| {
                        let there = present.get(&f.key).map(|l| l.size);
                        Wanted {
                            key: f.key.clone(),
                            size: f.size,
                            compare: there == Some(f.size),
                            replaces: there.is_some(),
                        }
                    })
                    .collect();
                copy.run(wanted).await
            };
            let mut placed = Vec::with_capacity(files.len());
            for (info, done) in files.into_iter().zip(done) {
                placed.push(match done {
                    Done::Same(xxh3) => (info, Ok(Placed::AlreadyThere(xxh3)), None),
                    Done::Copied {
                        size,
                        xxh3,
                        checked,
                    } => {
                        metrics::copied(size);
                        tracing::debug!(key = %info.key, size, "object copied");
                        let info = ObjectInfo { size, ..info };
                        let proof = Proof::Hashed { xxh3, etag: None };
                        let verified = checked
                            .map(|dst_xxh3| {
                                let work = Work {
                                    info: info.clone(),
                                    proof: proof.clone(),
                                };
                                (work, (Some(xxh3), dst_xxh3), 0)
                            })
                            .map(Ok);
                        (info, Ok(Placed::Copied(proof, size, 1)), verified)
                    }
                    Done::Declined => self.place_in_slot(info, present).await,
                });
            }
            placed
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(key: &str, size: u64) -> ObjectInfo {
        ObjectInfo {
            key: key.to_owned(),
            size,
            content_type: None,
            user_metadata: Default::default(),
            last_modified: None,
            etag: None,
        }
    }

    fn shape(units: &[Unit]) -> Vec<usize> {
        units
            .iter()
            .map(|u| match u {
                Unit::One(_) => 0,
                Unit::Batch(_, files) => files.len(),
            })
            .collect()
    }

    #[test]
    fn small_files_are_batched_by_count_and_bytes_and_large_ones_go_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = ferry_storage::Store::open(&ferry_storage::SiteAccess {
            uri: format!("file://{}", dir.path().display()),
            options: Default::default(),
            credentials: Default::default(),
            path: String::new(),
        })
        .unwrap();
        let copy = Arc::new(LocalCopy {
            src: store.clone(),
            dst: store,
            options: Default::default(),
            max: SMALL_FILE,
            check: Check::Quick,
            retired: Arc::default(),
        });
        let mut todo: Vec<ObjectInfo> = (0..BATCH_FILES + 1)
            .map(|n| info(&format!("s{n}"), 4096))
            .collect();
        todo.push(info("large", SMALL_FILE + 1));
        // At most 2 MiB a batch: the 65th small file and seven of 256 KiB, then two.
        todo.extend((0..9).map(|n| info(&format!("m{n}"), SMALL_FILE)));
        let units = units(todo, Some(&copy));
        assert_eq!(shape(&units), vec![BATCH_FILES, 0, 8, 2]);
        // The large file went alone, in its place; no file was lost or repeated.
        let keys: Vec<&str> = units
            .iter()
            .flat_map(|u| match u {
                Unit::One(info) => std::slice::from_ref(info),
                Unit::Batch(_, files) => files.as_slice(),
            })
            .map(|i| i.key.as_str())
            .collect();
        assert_eq!(keys.len(), BATCH_FILES + 11);
        assert!(keys.contains(&"large"));

        let alone = super::units(vec![info("a", 1), info("b", 1)], None);
        assert_eq!(shape(&alone), vec![0, 0]);
    }
}
