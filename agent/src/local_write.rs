//! Small objects written straight to a local file system, and the one `syncfs` that
//! makes a batch of them durable before their results are reported.
//!
//! OpenDAL's fs service flushes each file to disk as it closes it (`fsync`), so copying
//! many small files spent most of its time waiting for the disk, one file at a time. A
//! destination must be durable before the control plane switches to it, not after
//! every file: the results of a task are reported in batches, and before each batch the
//! agent syncs the destination's file system once ([`sync_tree`]), so nothing it
//! reports as copied can be lost by a power cut afterwards.

use std::{collections::BTreeMap, fs::File, io::Write, path::Path};

use bytes::Bytes;
use ferry_storage::{ErrorKind, ObjectError, Operation};
use opendal::Operator;
use xattr::FileExt;

use crate::local_file::{io_error, path};

/// Writes `bytes` as `key`, with `user_metadata` as `user.*` extended attributes as
/// OpenDAL's fs service keeps them, creating the directories above it, in one call on
/// Tokio's blocking pool. Not durable until [`sync_tree`].
pub(crate) async fn write_small(
    op: &Operator,
    key: &str,
    bytes: Bytes,
    user_metadata: BTreeMap<String, String>,
) -> Result<(), ObjectError> {
    let path = path(op, key)?;
    tokio::task::spawn_blocking(move || write_blocking(&path, &bytes, &user_metadata))
        .await
        .map_err(|e| ObjectError::at(op, key, Operation::Write, ErrorKind::Temporary, "Join", e))?
        .map_err(|e| io_error(op, key, Operation::Write, &e))
}

/// [`write_small`]'s work, on the calling thread. The directories above `path` are
/// created only when the file cannot be: most files land where others already are.
pub(crate) fn write_blocking(
    path: &Path,
    bytes: &[u8],
    user_metadata: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let mut file = match File::create(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            File::create(path)?
        }
        created => created?,
    };
    file.write_all(bytes)?;
    for (name, value) in user_metadata {
        file.set_xattr(format!("user.{name}"), value.as_bytes())?;
    }
    Ok(())
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
    use opendal::services;

    use super::*;

    #[tokio::test]
    async fn writes_bytes_and_metadata_where_opendal_reads_them() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().to_string_lossy().into_owned();
        let op =
            Operator::new(services::Fs::default().root(&root)).unwrap_or_else(|e| panic!("{e}"));
        let metadata = BTreeMap::from([("owner".to_owned(), "genomics".to_owned())]);
        write_small(&op, "a/b/c.bin", Bytes::from_static(b"hello"), metadata)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sync_tree(&op).await.unwrap_or_else(|e| panic!("{e}"));
        let read = op.read("a/b/c.bin").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.to_vec(), b"hello");
        let stat = op.stat("a/b/c.bin").await.unwrap_or_else(|e| panic!("{e}"));
        let kept = ferry_storage::Attributes::of(&stat).user_metadata;
        assert_eq!(
            kept,
            BTreeMap::from([("owner".to_owned(), "genomics".to_owned())])
        );
        assert!(write_small(&op, "../escape", Bytes::new(), BTreeMap::new())
            .await
            .is_err());
    }
}
