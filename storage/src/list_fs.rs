//! Listing a file-system site without OpenDAL's per-entry hand-offs: its lister asks
//! the blocking pool twice for every entry (type, then metadata), which costs more than
//! the system calls on trees of many small files. One blocking task walks the tree
//! instead and hands the objects over a page at a time, with what OpenDAL's listing
//! gives: key relative to the root, size and modification time. Listings that want
//! user metadata (kept in extended attributes) still go through OpenDAL.

use std::{
    io,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use futures::{stream, Stream, StreamExt};
use opendal::Operator;
use tokio::sync::mpsc;

use crate::{
    error::{ObjectError, Operation},
    fs_write,
    list::ObjectInfo,
};

/// Objects per page handed from the walk to the stream.
const PAGE: usize = 1000;
/// Pages the walk may run ahead of the stream's reader.
const PAGES_AHEAD: usize = 2;

/// Whether `op` is a file system, which [`list_fs`] lists.
pub(crate) fn is_fs(op: &Operator) -> bool {
    op.info().scheme() == "fs"
}

/// Every file below `under` (`""`, or a directory ending in `/`) of the file-system
/// operator `op`, in the walk's order. Symbolic links are followed to files, not into
/// directories, as OpenDAL's listing does; an entry that vanishes during the walk is
/// skipped, and a missing directory holds nothing. Temporary files of writes are never
/// listed; with `sweep`, those no write has touched for [`fs_write::STALE_AFTER`] are
/// removed on the way.
pub(crate) fn list_fs(
    op: &Operator,
    under: &str,
    sweep: bool,
) -> impl Stream<Item = Result<ObjectInfo, ObjectError>> + Send + 'static {
    let root = PathBuf::from(op.info().root());
    let start = root.join(under.trim_end_matches('/'));
    let (pages, received) = mpsc::channel::<Vec<Walked>>(PAGES_AHEAD);
    // What the walk logs belongs to the listing's span (a job's, in the agent).
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| walk(&root, start, sweep, &pages)));
    let op = op.clone();
    stream::unfold(received, |mut received| async move {
        received.recv().await.map(|page| (page, received))
    })
    .flat_map(move |page| {
        let op = op.clone();
        stream::iter(page.into_iter().map(move |walked| {
            walked.map_err(|(key, e)| {
                ObjectError::from_opendal(&op, &key, Operation::List, io_error(e))
            })
        }))
    })
}

/// An object found, or the key and error of what could not be read.
type Walked = Result<ObjectInfo, (String, io::Error)>;

/// Walks the tree depth first, sending pages until the reader goes away. Each
/// directory is walked with its key prefix (`""` at the root, else ending in `/`), so
/// an entry's key is that prefix and its name: no path is taken apart per entry.
fn walk(root: &Path, start: PathBuf, sweep: bool, pages: &mpsc::Sender<Vec<Walked>>) {
    let mut page = Vec::with_capacity(PAGE);
    let prefix = match key_of(root, &start) {
        key if key.is_empty() => key,
        key => key + "/",
    };
    let mut dirs = vec![(start, prefix)];
    while let Some((dir, prefix)) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Gone, or a key that names no directory (a continuous sync looking below it).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(e) => {
                page.push(Err((prefix.trim_end_matches('/').to_owned(), e)));
                continue;
            }
        };
        for entry in entries {
            let found = match entry {
                Ok(entry) => object(&dir, &prefix, &entry, sweep, &mut dirs),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => Some(Err((prefix.trim_end_matches('/').to_owned(), e))),
            };
            page.extend(found);
            if page.len() >= PAGE {
                let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE));
                if pages.blocking_send(full).is_err() {
                    return;
                }
            }
        }
    }
    if !page.is_empty() {
        let _ = pages.blocking_send(page);
    }
}

/// The object at `entry` of `dir`, whose keys begin with `prefix`, or the directory to
/// walk next (pushed onto `dirs`); with `sweep`, a stale temporary file is removed.
fn object(
    dir: &Path,
    prefix: &str,
    entry: &std::fs::DirEntry,
    sweep: bool,
    dirs: &mut Vec<(PathBuf, String)>,
) -> Option<Walked> {
    let name = entry.file_name();
    let name_str = name.to_string_lossy();
    let mut key = String::with_capacity(prefix.len() + name_str.len() + 1);
    key.push_str(prefix);
    key.push_str(&name_str);
    let file_type = match entry.file_type() {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err((key, e))),
    };
    if file_type.is_dir() {
        dirs.push((dir.join(&name), key + "/"));
        return None;
    }
    if fs_write::is_partial(&name_str) {
        // A write in progress (or one killed), not an object of the dataset.
        if sweep && file_type.is_file() {
            sweep_partial(&dir.join(&name), entry);
        }
        return None;
    }
    if file_type.is_file() {
        // Stated relative to the directory being read: no walk of the whole path.
        return match entry.metadata() {
            Ok(metadata) => Some(Ok(info(key, &metadata))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some(Err((key, e))),
        };
    }
    // A link is followed to what it names; a link to a directory is not walked.
    file(key, &dir.join(&name)).transpose()
}

/// Removes the temporary file `entry` at `path` if it is stale; one gone meanwhile (its
/// write renamed it into place) is no failure, and a failure is logged, never the
/// listing's: the file stays out of every listing either way.
fn sweep_partial(path: &Path, entry: &std::fs::DirEntry) {
    let removed = entry
        .metadata()
        .and_then(|metadata| fs_write::remove_if_stale(path, &metadata));
    match removed {
        Ok(true) => tracing::info!(
            path = %path.display(),
            "removed a stale temporary file of a write that never finished"
        ),
        Ok(false) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "could not remove a stale temporary file"
        ),
    }
}

/// The file at `path` as the object `key`: `None` when nothing is there or it is not a
/// file (a link is followed to what it names).
fn file(key: String, path: &Path) -> Result<Option<ObjectInfo>, (String, io::Error)> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Ok(None),
        // Nothing there, or a file where the key has a directory.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err((key, e)),
    };
    Ok(Some(info(key, &metadata)))
}

/// What a listing says of the file `key` with `metadata`.
fn info(key: String, metadata: &std::fs::Metadata) -> ObjectInfo {
    ObjectInfo {
        key,
        size: metadata.len(),
        content_type: None,
        user_metadata: Default::default(),
        last_modified: metadata.modified().ok().map(DateTime::<Utc>::from),
        etag: None,
    }
}

/// The object `key` of the file-system operator `op`, as [`list_fs`] would list it.
pub(crate) async fn stat_fs(op: &Operator, key: &str) -> Result<Option<ObjectInfo>, ObjectError> {
    Ok(stat_keys(op, vec![key.to_owned()], key).await?.pop())
}

/// What [`stat_fs`] says of each of `keys`, in one blocking task: the objects found.
pub(crate) async fn stat_fs_many(
    op: &Operator,
    keys: Vec<String>,
) -> Result<Vec<ObjectInfo>, ObjectError> {
    stat_keys(op, keys, "").await
}

/// The objects among `keys`, looked up in one blocking task; `named` is the key a
/// failure of that task is reported against.
async fn stat_keys(
    op: &Operator,
    keys: Vec<String>,
    named: &str,
) -> Result<Vec<ObjectInfo>, ObjectError> {
    let root = PathBuf::from(op.info().root());
    let found = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        for key in keys.into_iter().filter(|key| !fs_write::is_partial(key)) {
            let path = root.join(&key);
            found.extend(file(key, &path)?);
        }
        Ok(found)
    })
    .await
    .map_err(|e| {
        ObjectError::from_opendal(
            op,
            named,
            Operation::Stat,
            opendal::Error::new(opendal::ErrorKind::Unexpected, "stat task failed").set_source(e),
        )
    })?;
    found.map_err(|(key, e)| ObjectError::from_opendal(op, &key, Operation::Stat, io_error(e)))
}

/// `path` relative to `root`, with `/` separators, as OpenDAL names keys.
fn key_of(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path).to_string_lossy();
    #[cfg(windows)]
    let relative = relative.replace('\\', "/");
    relative.into_owned()
}

fn io_error(e: io::Error) -> opendal::Error {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => opendal::ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied => opendal::ErrorKind::PermissionDenied,
        _ => opendal::ErrorKind::Unexpected,
    };
    opendal::Error::new(kind, "listing the directory tree").set_source(e)
}

#[cfg(all(test, unix))]
mod tests {
    use std::collections::BTreeMap;

    use futures::TryStreamExt;

    use super::*;

    fn fs_operator(root: &Path) -> Operator {
        let builder = opendal::services::Fs::default().root(&root.display().to_string());
        Operator::new(builder).expect("test setup")
    }

    async fn listed(op: &Operator, under: &str) -> BTreeMap<String, u64> {
        list_fs(op, under, false)
            .map_ok(|o| (o.key, o.size))
            .try_collect()
            .await
            .expect("test setup")
    }

    #[tokio::test]
    async fn the_walk_finds_what_opendal_lists_and_follows_links_to_files_only() {
        let dir = tempfile::tempdir().expect("test setup");
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).expect("test setup");
        std::fs::write(root.join("top.bin"), b"12").expect("test setup");
        std::fs::write(root.join("a/b/deep.bin"), b"1234").expect("test setup");
        std::fs::write(root.join("a/naïve name.txt"), b"x").expect("test setup");
        let op = fs_operator(root);
        // The same keys and sizes as OpenDAL's own listing.
        let opendal: BTreeMap<String, u64> = op
            .lister_with("")
            .recursive(true)
            .await
            .expect("test setup")
            .try_filter(|e| std::future::ready(!e.path().ends_with('/')))
            .map_ok(|e| (e.path().to_owned(), e.metadata().content_length()))
            .try_collect()
            .await
            .expect("test setup");
        let expected = BTreeMap::from([
            ("top.bin".to_owned(), 2),
            ("a/b/deep.bin".to_owned(), 4),
            ("a/naïve name.txt".to_owned(), 1),
        ]);
        assert_eq!(opendal, expected);
        assert_eq!(listed(&op, "").await, expected);
        assert_eq!(
            listed(&op, "a/b/").await,
            BTreeMap::from([("a/b/deep.bin".to_owned(), 4)])
        );
        let all = list_fs(&op, "", false)
            .try_collect::<Vec<_>>()
            .await
            .expect("test setup");
        assert!(
            all.iter().all(|o| o.last_modified.is_some()),
            "every object has its modification time"
        );
        // A link to a file is an object; a link to a directory is not walked.
        std::os::unix::fs::symlink(root.join("top.bin"), root.join("link.bin"))
            .expect("test setup");
        std::os::unix::fs::symlink(root.join("a"), root.join("dir-link")).expect("test setup");
        let mut with_link = expected.clone();
        with_link.insert("link.bin".into(), 2);
        assert_eq!(listed(&op, "").await, with_link);
    }

    /// A tree holding one object, `d/f.bin` of 2 bytes, and the temporary file of a
    /// write of `d/g.bin` tagged `tag`: the tree, that file, and what a listing says.
    fn tree_with_a_write(tag: &str) -> (tempfile::TempDir, PathBuf, BTreeMap<String, u64>) {
        let dir = tempfile::tempdir().expect("test setup");
        std::fs::create_dir_all(dir.path().join("d")).expect("test setup");
        std::fs::write(dir.path().join("d/f.bin"), b"12").expect("test setup");
        let partial = fs_write::partial_path(&dir.path().join("d/g.bin"), tag);
        std::fs::write(&partial, b"half").expect("test setup");
        (dir, partial, BTreeMap::from([("d/f.bin".to_owned(), 2)]))
    }

    #[tokio::test]
    async fn writes_in_progress_are_no_objects_of_any_listing() {
        let (dir, partial, only) = tree_with_a_write("job");
        let op = fs_operator(dir.path());
        assert_eq!(listed(&op, "").await, only);
        let with_metadata: BTreeMap<String, u64> = crate::list(&op)
            .map_ok(|o| (o.key, o.size))
            .try_collect()
            .await
            .expect("test setup");
        assert_eq!(with_metadata, only, "nor through OpenDAL's listing");
        let key = format!(
            "d/{}",
            partial.file_name().expect("a name").to_string_lossy()
        );
        assert!(stat_fs(&op, &key).await.expect("a stat").is_none());
    }

    #[tokio::test]
    async fn a_destination_listing_removes_only_stale_temporary_files() {
        let (dir, stale, only) = tree_with_a_write("killed");
        let root = dir.path();
        let long_ago = std::time::SystemTime::now() - fs_write::STALE_AFTER * 2;
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .and_then(|f| f.set_modified(long_ago))
            .expect("test setup");
        let fresh = fs_write::partial_path(&root.join("h.bin"), "running");
        std::fs::write(&fresh, b"in progress").expect("test setup");
        let op = fs_operator(root);

        assert_eq!(listed(&op, "").await, only);
        assert!(stale.exists(), "a source's listing removes nothing");
        let swept: BTreeMap<String, u64> = crate::list_sweeping(&op, "")
            .map_ok(|o| (o.key, o.size))
            .try_collect()
            .await
            .expect("a listing");
        assert_eq!(swept, only, "temporary files are no objects either way");
        assert!(!stale.exists(), "the stale temporary file is removed");
        assert!(fresh.exists(), "a write in progress keeps its file");
        assert!(root.join("d/f.bin").exists());
    }

    #[tokio::test]
    async fn a_missing_directory_holds_nothing() {
        let dir = tempfile::tempdir().expect("test setup");
        let op = fs_operator(&dir.path().join("not-yet"));
        assert!(listed(&op, "").await.is_empty());
        assert!(listed(&op, "sub/").await.is_empty());
    }
}
