//! Listing a dataset: every object below a store's root, streamed one page at a time,
//! so memory does not grow with the number of keys.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::{stream, Stream, StreamExt, TryStreamExt};
use opendal::{Metadata, Operator};

use crate::{
    error::{ObjectError, Operation},
    list_fs,
};

/// Objects stat'ed concurrently while listing, when the listing lacks their metadata.
const LIST_STAT_CONCURRENCY: usize = 16;
/// Keys asked for per listing page: S3's and GCS's most, and a fifth of Azure's, so that
/// every backend pages alike and a page's memory stays small.
const LIST_PAGE: usize = 1000;

/// One object of a dataset, as listed. `key` is relative to the dataset root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub user_metadata: BTreeMap<String, String>,
    pub last_modified: Option<DateTime<Utc>>,
    /// The store's entity tag, where it has one (S3 lists them).
    pub etag: Option<String>,
}

impl ObjectInfo {
    /// What a listing says of `key`.
    pub fn from_metadata(key: String, metadata: &Metadata) -> Self {
        ObjectInfo {
            key,
            size: metadata.content_length(),
            content_type: metadata.content_type().map(str::to_owned),
            user_metadata: metadata
                .user_metadata()
                .map(|m| {
                    m.into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            last_modified: metadata.last_modified().and_then(|ts| {
                i64::try_from(ts.into_inner().as_nanosecond())
                    .ok()
                    .map(DateTime::from_timestamp_nanos)
            }),
            etag: metadata.etag().map(str::to_owned),
        }
    }
}

/// Lists every file below the operator's root, recursively, as a stream that fetches
/// one listing page at a time. Directories (and S3 directory markers, keys ending in
/// `/`) are not objects and are skipped. When the listing lacks metadata the backend
/// can hold (S3 and file systems never list content type or user metadata), each
/// object is stat'ed, a bounded number at a time; an object deleted between the
/// listing and its stat is skipped. Order is the backend's listing order.
pub fn list(op: &Operator) -> impl Stream<Item = Result<ObjectInfo, ObjectError>> + Send + 'static {
    list_objects(op, true, String::new(), None, false)
}

/// Like [`list`], but only keys, sizes and modification times are sure to be filled
/// in: objects are stat'ed only when the listing lacks those, which S3 listings never
/// do. Only keys below the directory `under` are listed (`""` for all, else ending in
/// `/`); keys are still relative to the operator's root. With `start_after`, where the
/// backend supports it (S3 does, in key order), the listing begins after that key;
/// elsewhere it begins at the start.
pub fn list_sizes(
    op: &Operator,
    under: &str,
    start_after: Option<&str>,
) -> impl Stream<Item = Result<ObjectInfo, ObjectError>> + Send + 'static {
    list_objects(
        op,
        false,
        under.to_owned(),
        start_after.map(str::to_owned),
        false,
    )
}

/// [`list_sizes`] of a destination being written to: on a file system, the walk also
/// removes the temporary files that no write has touched for
/// [`crate::fs_write::STALE_AFTER`], left by writes that never finished. Other stores
/// keep nothing of the kind in their listings (S3's unfinished multipart uploads are
/// aborted as the job ends).
pub fn list_sweeping(
    op: &Operator,
    under: &str,
) -> impl Stream<Item = Result<ObjectInfo, ObjectError>> + Send + 'static {
    list_objects(op, false, under.to_owned(), None, true)
}

/// What a listing would say of `key` alone ([`list_sizes`]'s fields), or `None` when no
/// object is there: a key that was never written or is gone, or a directory.
pub async fn stat_sizes(op: &Operator, key: &str) -> Result<Option<ObjectInfo>, ObjectError> {
    if list_fs::is_fs(op) {
        return list_fs::stat_fs(op, key).await;
    }
    match op.stat(key).await {
        Ok(metadata) if metadata.is_file() && !key.ends_with('/') => {
            Ok(Some(ObjectInfo::from_metadata(key.to_owned(), &metadata)))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ObjectError::from_opendal(op, key, Operation::Stat, e)),
    }
}

/// What a listing would say of each of `keys` that names an object, where the store
/// is a file system: looked up in one blocking task, which never costs more than
/// walking the directories that hold them. `None` on other stores, where a listing of
/// the keys' range costs less than a request per key.
pub async fn stat_local<'a>(
    op: &Operator,
    keys: impl IntoIterator<Item = &'a str>,
) -> Option<Result<Vec<ObjectInfo>, ObjectError>> {
    if !list_fs::is_fs(op) {
        return None;
    }
    let keys = keys.into_iter().map(str::to_owned).collect();
    Some(list_fs::stat_fs_many(op, keys).await)
}

fn list_objects(
    op: &Operator,
    with_metadata: bool,
    under: String,
    start_after: Option<String>,
    sweep: bool,
) -> impl Stream<Item = Result<ObjectInfo, ObjectError>> + Send + 'static {
    // Keys, sizes and times only: a file system's user metadata (in extended
    // attributes) needs OpenDAL's stat.
    if !with_metadata && list_fs::is_fs(op) {
        return futures::future::Either::Left(list_fs::list_fs(op, &under, sweep));
    }
    let capability = op.info().capability();
    // A file system's temporary files of writes in progress are no objects.
    let is_fs = list_fs::is_fs(op);
    let may_have_content_type = with_metadata && capability.write_with_content_type;
    let may_have_user_metadata = with_metadata && capability.write_with_user_metadata;
    let start_after = start_after.filter(|_| capability.list_with_start_after);
    let lister_op = op.clone();
    let entries_op = op.clone();
    let stat_op = op.clone();

    let listed = stream::once(async move {
        let mut lister = lister_op
            .lister_with(&under)
            .recursive(true)
            .limit(LIST_PAGE);
        if let Some(key) = start_after {
            lister = lister.start_after(&key);
        }
        lister
            .await
            .map_err(|e| ObjectError::from_opendal(&lister_op, &under, Operation::List, e))
    })
    .map_ok(move |lister| {
        let op = entries_op.clone();
        lister.map_err(move |e| ObjectError::from_opendal(&op, "", Operation::List, e))
    })
    .try_flatten()
    .try_filter(move |entry| {
        let path = entry.path();
        let partial = is_fs && crate::fs_write::is_partial(path);
        std::future::ready(!entry.metadata().is_dir() && !path.ends_with('/') && !partial)
    })
    .map(move |entry| {
        let op = stat_op.clone();
        async move {
            let (key, metadata) = entry?.into_parts();
            let incomplete = !metadata.is_file()
                || metadata.last_modified().is_none()
                || (may_have_content_type && metadata.content_type().is_none())
                || (may_have_user_metadata && metadata.user_metadata().is_none());
            if !incomplete {
                return Ok(Some(ObjectInfo::from_metadata(key, &metadata)));
            }
            match op.stat(&key).await {
                Ok(full) if full.is_file() => Ok(Some(ObjectInfo::from_metadata(key, &full))),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                    tracing::debug!(key = %key, "object vanished between listing and stat");
                    Ok(None)
                }
                Err(e) => Err(ObjectError::from_opendal(&op, &key, Operation::Stat, e)),
            }
        }
    })
    .buffered(LIST_STAT_CONCURRENCY)
    .try_filter_map(|info| std::future::ready(Ok(info)));
    futures::future::Either::Right(listed)
}
