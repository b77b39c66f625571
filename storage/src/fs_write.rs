//! Writing files so that no reader finds one half-written: the bytes go to a hidden
//! temporary file beside the destination, which is renamed over it once complete.
//!
//! A file written in place is visible from its first byte: a copy replacing a
//! replica's file truncated it, so until the copy finished (and for good, after a
//! crash) readers of the replica found a short file where a whole one had been. Written
//! beside it and renamed, the file is the old one or the new one, never a mix. A write
//! that fails removes its temporary file; the name a temporary file takes depends only
//! on the writer's tag (a job's id, in the agent) and the file's name, so a write
//! killed with its agent is written over, and renamed, by the attempt that follows.
//! Listings leave the temporary files out: they are never objects of a dataset.
//!
//! Nothing here flushes to disk: the agent syncs the file system once before it
//! reports a batch of results.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    fs::File,
    io::{self, Write},
    os::unix::ffi::OsStrExt,
    path::{Component, Path, PathBuf},
};

use opendal::{Buffer, Operator};
use xattr::FileExt;
use xxhash_rust::xxh3::Xxh3;

use crate::{
    error::{ErrorKind, ObjectError, Operation},
    write::Written,
};

/// How the names of temporary files end.
pub const PARTIAL_SUFFIX: &str = ".ferry-partial";

/// How long a temporary file lies untouched before a destination's listing removes it
/// ([`crate::list_sweeping`]): a write in progress touches its file with every block,
/// and one that stalled this long has failed. What such a file is left by is a write
/// killed with its agent whose job never ran again (cancelled or failed meanwhile);
/// an attempt that does run again writes the same file over and renames it.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Bytes of the destination's name a temporary file's name keeps: with the dot, the
/// hash and the suffix, 192 bytes at most, within every file system's 255.
const NAME_KEPT: usize = 160;

/// Whether `name` (a file's name, or a key) names a temporary file of a write.
pub fn is_partial(name: &str) -> bool {
    let name = name.rsplit('/').next().unwrap_or(name);
    name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX)
}

/// The temporary file a writer tagged `tag` writes `path` through:
/// `.{name}.{hash}.ferry-partial` in the same directory, where the hash is of the tag
/// and the whole name, so that names cut to [`NAME_KEPT`] bytes stay apart.
pub fn partial_path(path: &Path, tag: &str) -> PathBuf {
    let name = path.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
    let mut hash = Xxh3::new();
    hash.update(tag.as_bytes());
    hash.update(&[0]);
    hash.update(name);
    let mut partial = Vec::with_capacity(NAME_KEPT + 32);
    partial.push(b'.');
    partial.extend_from_slice(&name[..name.len().min(NAME_KEPT)]);
    partial.extend_from_slice(format!(".{:016x}", hash.digest()).as_bytes());
    partial.extend_from_slice(PARTIAL_SUFFIX.as_bytes());
    path.with_file_name(OsStr::from_bytes(&partial))
}

/// Removes the temporary file at `path` when nothing has written to it for
/// [`STALE_AFTER`]; whether it did.
pub(crate) fn remove_if_stale(path: &Path, metadata: &std::fs::Metadata) -> io::Result<bool> {
    let untouched = metadata
        .modified()?
        .elapsed()
        .is_ok_and(|age| age >= STALE_AFTER);
    if untouched {
        std::fs::remove_file(path)?;
    }
    Ok(untouched)
}

/// The path of `key` below the root of the file-system operator `op`; an error for a
/// key that would lead outside it.
pub fn file_path(op: &Operator, key: &str, operation: Operation) -> Result<PathBuf, ObjectError> {
    let relative = key.trim_end_matches('/');
    let escapes = Path::new(relative).components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::RootDir | Component::Prefix(_)
        )
    });
    if escapes {
        return Err(ObjectError::at(
            op,
            key,
            operation,
            ErrorKind::NotFound,
            "OutsideDataset",
            "the key leads outside the dataset's directory",
        ));
    }
    Ok(Path::new(&*op.info().root()).join(relative))
}

/// Writes `bytes` as the file at `path`, with `user_metadata` as `user.*` extended
/// attributes (as OpenDAL's fs service keeps them), through its temporary file for
/// `tag`; creates the directories above it where needed. Blocks.
pub fn write_file(
    path: &Path,
    tag: &str,
    bytes: &[u8],
    user_metadata: &BTreeMap<String, String>,
) -> io::Result<()> {
    write_through(path, tag, bytes, user_metadata, false).map(drop)
}

/// [`write_file`] over a file `path` already holds, without freeing the old one on the
/// way: before the rename its file is linked at a temporary name of its own (see
/// [`retired_path`]), returned for the caller to remove once nothing waits on it. The
/// rename that replaces a file frees the old one's blocks, and on a file system mounted
/// with `discard` and no journal that waits for the disk to discard them: most of the
/// time of replacing many small files, spent where the copy waits. `None` when no old
/// file was kept (none was there, or the link failed): the rename freed it, as
/// [`write_file`] does. Either way the file at `path` is the old one or the new one,
/// never a mix.
pub fn replace_file(
    path: &Path,
    tag: &str,
    bytes: &[u8],
    user_metadata: &BTreeMap<String, String>,
) -> io::Result<Option<PathBuf>> {
    write_through(path, tag, bytes, user_metadata, true)
}

/// [`write_file`], keeping the old file aside when `keep_old` (see [`replace_file`]).
fn write_through(
    path: &Path,
    tag: &str,
    bytes: &[u8],
    user_metadata: &BTreeMap<String, String>,
    keep_old: bool,
) -> io::Result<Option<PathBuf>> {
    let partial = partial_path(path, tag);
    let mut file = create(&partial)?;
    let mut kept = None;
    let written = file.write_all(bytes).and_then(|()| {
        if keep_old {
            let retired = retired_path(path, tag);
            kept = std::fs::hard_link(path, &retired)
                .is_ok()
                .then_some(retired);
        }
        finish(file, &partial, path, user_metadata)
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        if let Some(retired) = kept {
            let _ = std::fs::remove_file(retired);
        }
        return Err(e);
    }
    Ok(kept)
}

/// The name the writer tagged `tag` keeps the old file at `path` under while
/// [`replace_file`] replaces it: a temporary file's name (listings leave it out and
/// sweep it once stale), apart from the one the new file is written through.
pub fn retired_path(path: &Path, tag: &str) -> PathBuf {
    partial_path(path, &format!("{tag}\0retired"))
}

/// Removes the old files [`replace_file`] kept; one gone already (swept by a listing)
/// is no failure, and a failure is logged: a file left over is swept by a listing of
/// the destination once it is stale.
pub fn remove_retired(paths: &[PathBuf]) {
    for path in paths {
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "removing a replaced file failed");
            }
        }
    }
}

/// [`write_file`] for `key` of the file-system operator `op`, on Tokio's blocking pool.
pub(crate) async fn write_whole(
    op: &Operator,
    key: &str,
    tag: &str,
    bytes: Buffer,
    user_metadata: BTreeMap<String, String>,
) -> Result<(), ObjectError> {
    let path = file_path(op, key, Operation::Write)?;
    let tag = tag.to_owned();
    blocking(op, key, move || {
        write_file(&path, &tag, &bytes.to_bytes(), &user_metadata)
    })
    .await
}

/// Creates (or truncates) `path`, and the directories above it when they are missing:
/// most files land where others already are, so those are made only on demand.
fn create(path: &Path) -> io::Result<File> {
    match File::create(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            File::create(path)
        }
        created => created,
    }
}

/// Gives the temporary file its attributes and renames it over `path`.
fn finish(
    file: File,
    partial: &Path,
    path: &Path,
    user_metadata: &BTreeMap<String, String>,
) -> io::Result<()> {
    for (name, value) in user_metadata {
        file.set_xattr(format!("user.{name}"), value.as_bytes())?;
    }
    drop(file);
    std::fs::rename(partial, path)
}

/// A file being written in pieces through its temporary file, renamed into place by
/// [`FileWriter::close`]. Dropped unfinished, it removes the temporary file.
pub struct FileWriter {
    op: Operator,
    key: String,
    path: PathBuf,
    partial: PathBuf,
    /// `None` once finished, or after a write lost it.
    file: Option<File>,
    user_metadata: BTreeMap<String, String>,
    size: u64,
}

impl FileWriter {
    /// Creates the temporary file for `key` of `op` (a file system) and `tag`.
    pub(crate) async fn open(
        op: &Operator,
        key: &str,
        tag: &str,
        user_metadata: BTreeMap<String, String>,
    ) -> Result<FileWriter, ObjectError> {
        let path = file_path(op, key, Operation::Write)?;
        let partial = partial_path(&path, tag);
        let opened = partial.clone();
        let file = blocking(op, key, move || create(&opened)).await?;
        Ok(FileWriter {
            op: op.clone(),
            key: key.to_owned(),
            path,
            partial,
            file: Some(file),
            user_metadata,
            size: 0,
        })
    }

    pub(crate) async fn write(&mut self, buffer: Buffer) -> Result<(), ObjectError> {
        let mut file = self.file.take().ok_or_else(|| self.unfinishable())?;
        let len = buffer.len() as u64;
        let file = blocking(&self.op, &self.key, move || {
            for chunk in buffer {
                file.write_all(&chunk)?;
            }
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        self.size += len;
        Ok(())
    }

    /// Renames the complete file into place.
    pub(crate) async fn close(&mut self) -> Result<Written, ObjectError> {
        let file = self.file.take().ok_or_else(|| self.unfinishable())?;
        let (partial, path) = (self.partial.clone(), self.path.clone());
        let user_metadata = std::mem::take(&mut self.user_metadata);
        let finished = blocking(&self.op, &self.key, move || {
            finish(file, &partial, &path, &user_metadata)
        })
        .await;
        if finished.is_err() {
            self.remove_partial();
        }
        finished?;
        self.partial = PathBuf::new();
        Ok(Written {
            size: self.size,
            etag: None,
        })
    }

    /// Removes the temporary file; the destination stays as it was.
    pub(crate) fn abort(&mut self) {
        self.file = None;
        self.remove_partial();
    }

    fn remove_partial(&mut self) {
        let partial = std::mem::take(&mut self.partial);
        if partial.as_os_str().is_empty() {
            return;
        }
        if let Err(e) = std::fs::remove_file(&partial) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %partial.display(), error = %e, "removing a temporary file failed");
            }
        }
    }

    fn unfinishable(&self) -> ObjectError {
        ObjectError::at(
            &self.op,
            &self.key,
            Operation::Write,
            ErrorKind::Temporary,
            "WriterFailed",
            "an earlier write to this file failed",
        )
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        self.file = None;
        self.remove_partial();
    }
}

/// Runs `work` on Tokio's blocking pool, naming `key` in its error.
async fn blocking<T: Send + 'static>(
    op: &Operator,
    key: &str,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, ObjectError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ObjectError::at(op, key, Operation::Write, ErrorKind::Temporary, "Join", e))?
        .map_err(|e| io_error(op, key, Operation::Write, &e))
}

/// An I/O error of `operation` on `key`: not found and permission denied as such,
/// anything else temporary.
pub fn io_error(op: &Operator, key: &str, operation: Operation, e: &io::Error) -> ObjectError {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Temporary,
    };
    ObjectError::at(op, key, operation, kind, format!("{:?}", e.kind()), e)
}

#[cfg(test)]
mod tests {
    use opendal::services;

    use super::*;

    fn fs(dir: &Path) -> Operator {
        Operator::new(services::Fs::default().root(&dir.display().to_string()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.unwrap_or_else(|e| panic!("{e}")).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn temporary_names_are_hidden_marked_short_and_apart() {
        let dir = Path::new("/data/set");
        let partial = partial_path(&dir.join("run.bam"), "job-1");
        let name = partial.file_name().unwrap_or_default().to_string_lossy();
        assert_eq!(partial.parent(), Some(dir));
        assert!(name.starts_with(".run.bam.") && is_partial(&name), "{name}");
        assert_eq!(partial, partial_path(&dir.join("run.bam"), "job-1"));
        assert_ne!(partial, partial_path(&dir.join("run.bam"), "job-2"));
        let long = |last: char| dir.join(format!("{}{last}", "n".repeat(240)));
        let (a, b) = (partial_path(&long('a'), "j"), partial_path(&long('b'), "j"));
        assert_ne!(a, b, "names cut alike stay apart");
        assert!(a.file_name().unwrap_or_default().len() <= 192);
        assert!(is_partial("d/.x.0123456789abcdef.ferry-partial"));
        assert!(
            !is_partial("d/x.ferry-partial"),
            "not hidden: a user's file"
        );
        assert!(!is_partial(".ferry-partial/x"), "a directory of that name");
    }

    #[test]
    fn a_replacement_keeps_the_old_file_aside_until_it_is_removed() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("b.txt");
        // Nothing there yet: nothing is kept.
        let kept = replace_file(&path, "t", b"old bytes", &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept, None);
        let old = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        let kept = replace_file(&path, "t", b"new", &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the old file was not kept"));
        assert_eq!(std::fs::read(&path).unwrap_or_default(), b"new");
        // The old file itself, under a temporary name that listings leave out.
        assert_eq!(kept, retired_path(&path, "t"));
        assert_ne!(kept, partial_path(&path, "t"));
        assert!(is_partial(&kept.to_string_lossy()));
        let aside = std::fs::metadata(&kept).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(aside.ino(), old.ino());
        assert_eq!(std::fs::read(&kept).unwrap_or_default(), b"old bytes");

        // Kept again before the first was removed: the link fails, the rename frees it.
        let again =
            replace_file(&path, "t", b"newer", &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, None);
        assert_eq!(std::fs::read(&path).unwrap_or_default(), b"newer");
        remove_retired(&[kept.clone(), kept]);
        assert_eq!(names(dir.path()), ["b.txt"]);
    }

    #[test]
    fn a_whole_write_replaces_the_file_at_once_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("a/b.txt");
        let metadata = BTreeMap::from([("owner".to_owned(), "lab".to_owned())]);
        write_file(&path, "t", b"old bytes", &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
        let before = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        write_file(&path, "t", b"new", &metadata).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&path).unwrap_or_default(), b"new");
        let after = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::MetadataExt;
        assert_ne!(
            before.ino(),
            after.ino(),
            "a new file, renamed over the old"
        );
        assert_eq!(
            xattr::get(&path, "user.owner").unwrap_or_default(),
            Some(b"lab".to_vec())
        );
        assert_eq!(names(&dir.path().join("a")), ["b.txt"]);
    }

    #[tokio::test]
    async fn a_streamed_write_shows_nothing_until_it_closes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let op = fs(dir.path());
        std::fs::write(dir.path().join("f.bin"), b"the old version").unwrap_or_default();
        let mut writer = FileWriter::open(&op, "f.bin", "job", BTreeMap::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        writer
            .write(Buffer::from(vec![1u8; 1000]))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read(dir.path().join("f.bin")).unwrap_or_default(),
            b"the old version",
            "the old file is whole while the new one is written"
        );
        let partial = partial_path(&dir.path().join("f.bin"), "job");
        assert_eq!(
            std::fs::metadata(&partial).map(|m| m.len()).ok(),
            Some(1000)
        );
        writer
            .write(Buffer::from(vec![2u8; 24]))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let written = writer.close().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written.size, 1024);
        let read = std::fs::read(dir.path().join("f.bin")).unwrap_or_default();
        assert_eq!(read.len(), 1024);
        assert_eq!((read[0], read[1023]), (1, 2));
        drop(writer);
        assert_eq!(names(dir.path()), ["f.bin"]);
    }

    #[tokio::test]
    async fn an_aborted_or_dropped_write_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let op = fs(dir.path());
        std::fs::write(dir.path().join("f.bin"), b"old").unwrap_or_default();
        for abort in [true, false] {
            let mut writer = FileWriter::open(&op, "f.bin", "job", BTreeMap::new())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            writer
                .write(Buffer::from(vec![7u8; 10]))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                names(dir.path()).len(),
                2,
                "the file and its temporary file"
            );
            if abort {
                writer.abort();
                assert!(writer.close().await.is_err(), "nothing left to close");
            }
            drop(writer);
            assert_eq!(names(dir.path()), ["f.bin"]);
            assert_eq!(
                std::fs::read(dir.path().join("f.bin")).unwrap_or_default(),
                b"old"
            );
        }
    }

    #[tokio::test]
    async fn a_write_after_a_killed_one_takes_over_its_temporary_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let op = fs(dir.path());
        // What an agent killed mid-write leaves: half a file under the job's name.
        let left = partial_path(&dir.path().join("d/f.bin"), "job");
        std::fs::create_dir_all(dir.path().join("d")).unwrap_or_default();
        std::fs::write(&left, vec![9u8; 5000]).unwrap_or_default();
        let mut writer = FileWriter::open(&op, "d/f.bin", "job", BTreeMap::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        writer
            .write(Buffer::from(b"whole".to_vec()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        writer.close().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read(dir.path().join("d/f.bin")).unwrap_or_default(),
            b"whole"
        );
        assert_eq!(names(&dir.path().join("d")), ["f.bin"]);
        assert!(FileWriter::open(&op, "../out", "job", BTreeMap::new())
            .await
            .is_err());
    }
}
