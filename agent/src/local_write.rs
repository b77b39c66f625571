//! Small objects written straight to a local file system, and the one `syncfs` that
//! makes a batch of them durable before their results are reported.
//!
//! OpenDAL's fs service flushes each file to disk as it closes it (`fsync`), so copying
//! many small files spent most of its time waiting for the disk, one file at a time. A
//! destination must be durable before the control plane switches to it, not after
//! every file: the results of a task are reported in batches, and before each batch the
//! agent syncs the destination's file system once ([`sync_tree`]), so nothing it
//! reports as copied can be lost by a power cut afterwards. Each file goes through a
//! temporary file renamed into place ([`fs_write`]), so that readers of a replica never
//! find one half-written.

use std::{collections::BTreeMap, fs::File};

use bytes::Bytes;
use ferry_storage::{fs_write, ErrorKind, ObjectError, Operation, Store};
use opendal::Operator;

use crate::local_file::{io_error, path};

/// Writes `bytes` as `key` of the file-system store `dst`, with `user_metadata` as
/// `user.*` extended attributes as OpenDAL's fs service keeps them, through a temporary
/// file renamed into place (see [`fs_write`]), in one call on Tokio's blocking pool.
/// Not durable until [`sync_tree`].
pub(crate) async fn write_small(
    dst: &Store,
    key: &str,
    bytes: Bytes,
    user_metadata: BTreeMap<String, String>,
) -> Result<(), ObjectError> {
    let op = dst.op();
    let path = path(op, key)?;
    let tag = dst.write_tag().to_owned();
    tokio::task::spawn_blocking(move || fs_write::write_file(&path, &tag, &bytes, &user_metadata))
        .await
        .map_err(|e| ObjectError::at(op, key, Operation::Write, ErrorKind::Temporary, "Join", e))?
        .map_err(|e| io_error(op, key, Operation::Write, &e))
}

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

#[cfg(test)]
mod tests {
    use ferry_storage::SiteAccess;

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
        let metadata = BTreeMap::from([("owner".to_owned(), "genomics".to_owned())]);
        write_small(&dst, "a/b/c.bin", Bytes::from_static(b"hello"), metadata)
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
        assert!(
            write_small(&dst, "../escape", Bytes::new(), BTreeMap::new())
                .await
                .is_err()
        );
    }
}
