//! The one `syncfs` that makes a batch of files written to a local file system durable
//! before their results are reported.
//!
//! OpenDAL's fs service flushes each file to disk as it closes it (`fsync`), so copying
//! many small files spent most of its time waiting for the disk, one file at a time. A
//! destination must be durable before the control plane switches to it, not after
//! every file: the results of a task are reported in batches, and before each batch the
//! agent syncs the destination's file system once ([`sync_tree`]), so nothing it
//! reports as copied can be lost by a power cut afterwards. Files are written by
//! [`ferry_storage::Store::write`] and [`ferry_storage::fs_write`], through a temporary
//! file renamed into place, with no flush of their own.

use std::{fs::File, path::PathBuf, sync::Mutex};

use ferry_storage::{ErrorKind, ObjectError, Operation};
use opendal::Operator;

use crate::local_file::io_error;

/// Flushes every file written below `op`'s root to disk: one `syncfs` of the file
/// system holding it.
pub(crate) async fn sync_tree(op: &Operator) -> Result<(), ObjectError> {
    let root = op.info().root().to_owned();
    tokio::task::spawn_blocking(move || {
        let dir = File::open(&root)?;
        rustix::fs::syncfs(&dir).map_err(std::io::Error::from)
    })
    .await
    .map_err(|e| ObjectError::at(op, "", Operation::Write, ErrorKind::Temporary, "Join", e))?
    .map_err(|e| io_error(op, "", Operation::Write, &e))
}

/// The old files a task's copies replaced, each linked aside at a temporary name (see
/// `fs_write::replace_file`): removed together once the task's results are stored
/// (`ResultQueue::finish`).
#[derive(Debug, Default)]
pub(crate) struct Retired(Mutex<Vec<PathBuf>>);

impl Retired {
    pub(crate) fn keep(&self, path: PathBuf) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(path);
    }

    /// Removes the files kept so far on Tokio's blocking pool, without waiting for it:
    /// nothing waits on them. Should the agent stop first, a listing of the destination
    /// sweeps what is left once it is stale.
    pub(crate) fn remove_later(&self) {
        let paths = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        if paths.is_empty() {
            return;
        }
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| ferry_storage::fs_write::remove_retired(&paths))
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use ferry_storage::{Attributes, SiteAccess, Store};

    use super::*;

    #[tokio::test]
    async fn writes_bytes_and_metadata_where_opendal_reads_them() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dst = Store::open(&SiteAccess {
            uri: format!("file://{}", dir.path().display()),
            options: BTreeMap::new(),
            credentials: BTreeMap::new(),
            path: "data".into(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let op = dst.op();
        let attributes = Attributes {
            content_type: None,
            user_metadata: BTreeMap::from([("owner".to_owned(), "genomics".to_owned())]),
        };
        dst.write("a/b/c.bin", Bytes::from_static(b"hello"), &attributes)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sync_tree(op).await.unwrap_or_else(|e| panic!("{e}"));
        let read = op.read("a/b/c.bin").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.to_vec(), b"hello");
        let stat = op.stat("a/b/c.bin").await.unwrap_or_else(|e| panic!("{e}"));
        let kept = ferry_storage::Attributes::of(&stat).user_metadata;
        assert_eq!(
            kept,
            BTreeMap::from([("owner".to_owned(), "genomics".to_owned())])
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("data/a/b"))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.unwrap_or_else(|e| panic!("{e}")).file_name())
            .collect();
        assert_eq!(names, ["c.bin"], "no temporary file is left beside it");
        assert!(dst
            .write("../escape", Bytes::new(), &Attributes::default())
            .await
            .is_err());
    }
}
