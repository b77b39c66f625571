//! Small objects read straight from a local file system, in one blocking call that
//! opens, stats, reads, re-stats and hashes the file on one thread.
//!
//! Through OpenDAL's fs service each of those steps is its own trip to Tokio's blocking
//! pool and back. For a 64 KiB file the trips, with the thread wake-ups and context
//! switches they bring, cost the agent more CPU than the bytes do: about half of its
//! CPU on many small files went to them.

use std::{
    collections::BTreeMap,
    fs::{File, Metadata},
    io::Read,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use ferry_storage::{ErrorKind, ObjectError, Operation};
use opendal::Operator;
use xattr::FileExt;
use xxhash_rust::xxh3::xxh3_128;

/// The prefix of the extended attributes that hold user metadata, as OpenDAL's fs
/// service writes and reads them.
const USER_XATTR_PREFIX: &str = "user.";
/// `EOPNOTSUPP`: the file system has no extended attributes.
const EOPNOTSUPP: i32 = 95;

/// Whether `op` is a local file system, whose files can be read directly.
pub(crate) fn is_local(op: &Operator) -> bool {
    op.info().scheme() == "fs"
}

/// The file behind `key` below the operator's root. As OpenDAL's fs service does, a key
/// that would leave the root (a `..` segment, an absolute path) is refused.
pub(crate) fn path(op: &Operator, key: &str) -> Result<PathBuf, ObjectError> {
    ferry_storage::fs_write::file_path(op, key, Operation::Stat)
}

/// A file read whole.
#[derive(Debug)]
pub(crate) struct SmallFile {
    pub bytes: Bytes,
    pub xxh3: u128,
    /// Its `user.*` extended attributes, without the prefix.
    pub user_metadata: BTreeMap<String, String>,
}

/// Opens the file behind `key` for reading, on Tokio's blocking pool.
pub(crate) async fn open(op: &Operator, key: &str) -> Result<File, ObjectError> {
    let path = path(op, key)?;
    tokio::task::spawn_blocking(move || File::open(path))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
        .map_err(|e| io_error(op, key, Operation::Read, &e))
}

/// Reads `key` whole if it is a regular file of at most `max` bytes; `None` if it is
/// larger (or not a regular file), for the streaming path to take. Fails, temporarily,
/// if the file changes while it is read; permanently if it is missing, unreadable or
/// a directory.
pub(crate) async fn read_small(
    op: &Operator,
    key: &str,
    max: u64,
) -> Result<Option<SmallFile>, ObjectError> {
    let path = path(op, key)?;
    let read = tokio::task::spawn_blocking(move || read_blocking(&path, max, true))
        .await
        .map_err(|e| ObjectError::at(op, key, Operation::Read, ErrorKind::Temporary, "Join", e))?;
    read.map_err(|e| match e {
        LocalError::Io(operation, e) => io_error(op, key, operation, &e),
        LocalError::Directory => ObjectError::is_a_directory(op, key),
        LocalError::Changed(why) => ObjectError::source_changed(op, key, why),
    })
}

/// Why a file could not be read whole.
pub(crate) enum LocalError {
    Io(Operation, std::io::Error),
    Directory,
    Changed(String),
}

/// [`read_small`]'s work, on the calling thread: the file at `path` read whole if it is
/// a regular file of at most `max` bytes, with its `user.*` extended attributes when
/// `with_metadata` is set (else none).
pub(crate) fn read_blocking(
    path: &Path,
    max: u64,
    with_metadata: bool,
) -> Result<Option<SmallFile>, LocalError> {
    let mut file = File::open(path).map_err(|e| LocalError::Io(Operation::Stat, e))?;
    let before = file
        .metadata()
        .map_err(|e| LocalError::Io(Operation::Stat, e))?;
    if before.is_dir() {
        return Err(LocalError::Directory);
    }
    if !before.is_file() || before.len() > max {
        return Ok(None);
    }
    let user_metadata = if with_metadata {
        user_metadata(&file).map_err(|e| LocalError::Io(Operation::Stat, e))?
    } else {
        BTreeMap::new()
    };
    let size = before.len();
    let bytes = read_size(&mut file, size).map_err(|e| LocalError::Io(Operation::Read, e))?;
    if bytes.len() as u64 != size {
        return Err(LocalError::Changed(format!(
            "read {} bytes where it had {size}",
            bytes.len()
        )));
    }
    let after = file
        .metadata()
        .map_err(|e| LocalError::Io(Operation::Stat, e))?;
    if !same_version(&before, &after) {
        return Err(LocalError::Changed(
            "its size or modification time changed".into(),
        ));
    }
    Ok(Some(SmallFile {
        xxh3: xxh3_128(&bytes),
        bytes: Bytes::from(bytes),
        user_metadata,
    }))
}

/// Reads `file`, of `size` bytes by its stat, into memory, with one byte more room
/// than that: a file that grew since shows as `size + 1` bytes, one that shrank as
/// fewer. Reads stop at `size` bytes without asking again for the end of the file
/// (a read of a regular file returns less than asked only at its end, and the caller's
/// second stat catches a file that grew after it): one `read` for a small file rather
/// than two.
fn read_size(file: &mut File, size: u64) -> std::io::Result<Vec<u8>> {
    let room = usize::try_from(size)
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| std::io::Error::other("file too large to read into memory"))?;
    let mut bytes = vec![0u8; room];
    let mut filled = 0;
    while filled < room {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == room - 1 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

fn same_version(before: &Metadata, after: &Metadata) -> bool {
    before.len() == after.len()
        && before.mtime() == after.mtime()
        && before.mtime_nsec() == after.mtime_nsec()
}

/// The `user.*` extended attributes with UTF-8 values, as OpenDAL's fs service reads
/// them (none where the file system has no extended attributes).
fn user_metadata(file: &File) -> std::io::Result<BTreeMap<String, String>> {
    let names = match file.list_xattr() {
        Ok(names) => names,
        Err(e)
            if e.kind() == std::io::ErrorKind::Unsupported
                || e.raw_os_error() == Some(EOPNOTSUPP) =>
        {
            return Ok(BTreeMap::new())
        }
        Err(e) => return Err(e),
    };
    let mut metadata = BTreeMap::new();
    for name in names {
        let name = name.to_string_lossy();
        let Some(key) = name.strip_prefix(USER_XATTR_PREFIX) else {
            continue;
        };
        if let Some(value) = file.get_xattr(&*name)? {
            if let Ok(value) = String::from_utf8(value) {
                metadata.insert(key.to_owned(), value);
            }
        }
    }
    Ok(metadata)
}

pub(crate) use ferry_storage::fs_write::io_error;

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use opendal::services;

    use super::*;

    fn fs(dir: &Path) -> Operator {
        Operator::new(services::Fs::default().root(&dir.display().to_string())).unwrap()
    }

    #[tokio::test]
    async fn a_small_file_is_read_whole_with_its_hash_and_user_metadata() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let content: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("d/f.bin");
        std::fs::write(&path, &content).unwrap();
        // Where the file system has extended attributes, they come along.
        let xattrs = xattr::set(&path, "user.owner", b"ops").is_ok();
        xattr::set(&path, "user.binary", &[0xff, 0xfe]).ok();

        let op = fs(dir.path());
        let file = read_small(&op, "d/f.bin", 1 << 20).await.unwrap().unwrap();
        assert_eq!(&file.bytes[..], &content[..]);
        assert_eq!(file.xxh3, xxh3_128(&content));
        if xattrs {
            // Values that are not UTF-8 are skipped, as OpenDAL skips them.
            assert_eq!(
                file.user_metadata,
                BTreeMap::from([("owner".to_owned(), "ops".to_owned())])
            );
        }
        // The same as OpenDAL reads.
        assert_eq!(op.read("d/f.bin").await.unwrap().to_vec(), content);
    }

    #[tokio::test]
    async fn a_larger_file_is_left_to_the_streaming_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![7u8; 4097]).unwrap();
        let op = fs(dir.path());
        assert!(read_small(&op, "big", 4096).await.unwrap().is_none());
        assert!(read_small(&op, "big", 4097).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn missing_files_directories_and_escaping_keys_fail_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(dir.path().join("outside"), b"secret").unwrap();
        let op = fs(&root);

        let missing = read_small(&op, "nope", 1024).await.unwrap_err();
        assert_eq!(missing.kind, ErrorKind::NotFound);
        assert_eq!(missing.operation, Operation::Stat);

        let directory = read_small(&op, "sub", 1024).await.unwrap_err();
        assert_eq!(directory.kind, ErrorKind::Invalid);
        assert_eq!(directory.cause, "IsADirectory");

        for key in ["../outside", "sub/../../outside"] {
            let escaped = read_small(&op, key, 1024).await.unwrap_err();
            assert_eq!(escaped.kind, ErrorKind::NotFound);
            assert!(escaped.message.contains("outside the dataset"), "{escaped}");
        }
    }

    #[test]
    fn a_file_rewritten_in_place_is_a_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let before = std::fs::metadata(&path).unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert!(same_version(&before, &before));
        assert!(!same_version(&before, &after));
    }

    #[test]
    fn a_read_shows_a_file_that_grew_or_shrank_since_its_stat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for (written, stated, read) in [
            (4096, 4096, 4096),
            (5, 4, 5),
            (3, 4, 3),
            (0, 0, 0),
            (1, 0, 1),
        ] {
            std::fs::write(&path, vec![1u8; written]).unwrap();
            let mut file = File::open(&path).unwrap();
            let bytes = read_size(&mut file, stated as u64).unwrap();
            assert_eq!(bytes, vec![1u8; read], "{written} bytes, stated {stated}");
        }
    }
}
