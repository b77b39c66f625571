//! Small files copied between two local file systems a batch at a time: one blocking
//! call reads, compares, writes and checks every file of the batch.
//!
//! Object by object, a small file costs a read and a write on Tokio's blocking pool
//! (and, for a sync's changed file, a read at both ends to compare them first): two to
//! four hand-offs, with the thread wake-ups they bring, for a few system calls' work.
//! They were most of the agent's CPU when copying many small files. A batch takes one
//! hand-off, and a changed file's bytes, read to compare, are the bytes written.
//!
//! A file this path cannot finish (grown past the limit, changed while read, unreadable,
//! a key that leaves the dataset) is declined: the object-by-object path copies it, with
//! its retries and its error reports. Nothing is flushed to disk here; the task syncs
//! the destination's file system before it reports the results (see `local_write`).
//!
//! A file that replaces one at the destination leaves the old one linked aside
//! (`fs_write::replace_file`) rather than freed by the rename: freeing it waits for the
//! disk where the file system discards freed blocks at once. The task removes those old
//! files once its results are stored ([`Retired`]), while the control plane records
//! them, instead of one by one in the copy's way.

use std::sync::Arc;

use ferry_storage::{fs_write, Attributes, Store};

use crate::{
    local_file::{self, read_blocking},
    local_write::Retired,
    transfer::CopyOptions,
};

/// How a batch checks what it wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Not here: the task's verify phase does.
    Later,
    /// The destination file's size, asked of the file system after the write: what a
    /// quick verification's lookup of the destination checks.
    Quick,
    /// The destination file read back and hashed.
    Full,
}

/// One file of a batch.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    pub key: String,
    /// Its size as listed, for its span.
    pub size: u64,
    /// The destination holds a file of the source's listed size under this key: it is
    /// compared first and written only if its bytes differ.
    pub compare: bool,
    /// The destination holds a file under this key, which the copy replaces.
    pub replaces: bool,
}

/// What became of one file of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Done {
    /// Both ends held the same bytes already, with this xxh3-128.
    Same(u128),
    /// Written: the bytes copied and their xxh3-128. `checked` is the check's answer
    /// when it passed (with the destination's own xxh3-128 when it was read back);
    /// `None` when the file is left to the verify phase, which also repairs it.
    Copied {
        size: u64,
        xxh3: u128,
        checked: Option<Option<u128>>,
    },
    /// Not copied here: the object-by-object path takes it.
    Declined,
}

/// Both ends of a batch copy, and how it copies.
#[derive(Clone)]
pub(crate) struct LocalCopy {
    pub src: Store,
    pub dst: Store,
    pub options: CopyOptions,
    /// Files larger than this are declined.
    pub max: u64,
    pub check: Check,
    /// The old files the copy replaced, kept aside until the task is done with them.
    pub retired: Arc<Retired>,
}

impl LocalCopy {
    /// Copies `wanted` in order, in one call on Tokio's blocking pool; one [`Done`] per
    /// file, in the same order. Should the call itself fail, every file is declined.
    /// Each file has its `copy_object` span (and `verify_object`, for its check) below
    /// the caller's, as a file copied on its own has.
    pub async fn run(self: Arc<Self>, wanted: Vec<Wanted>) -> Vec<Done> {
        let files = wanted.len();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| wanted.iter().map(|w| self.one(w)).collect())
        })
        .await
        .unwrap_or_else(|_| vec![Done::Declined; files])
    }

    fn one(&self, wanted: &Wanted) -> Done {
        let _span =
            tracing::info_span!("copy_object", key = %wanted.key, bytes = wanted.size).entered();
        let (Ok(src), Ok(dst)) = (
            local_file::path(self.src.op(), &wanted.key),
            local_file::path(self.dst.op(), &wanted.key),
        ) else {
            return Done::Declined;
        };
        let Ok(Some(file)) = read_blocking(&src, self.max, self.options.preserve_metadata) else {
            return Done::Declined;
        };
        let size = file.bytes.len() as u64;
        if wanted.compare {
            if let Ok(Some(held)) = read_blocking(&dst, self.max, false) {
                if held.bytes.len() as u64 == size && held.xxh3 == file.xxh3 {
                    return Done::Same(file.xxh3);
                }
            }
        }
        let source = Attributes {
            content_type: None,
            user_metadata: file.user_metadata,
        };
        let (attributes, _) = self.options.attributes(source, &self.dst);
        let tag = self.dst.write_tag();
        let metadata = &attributes.user_metadata;
        let written = if wanted.replaces {
            fs_write::replace_file(&dst, tag, &file.bytes, metadata)
                .map(|kept| kept.into_iter().for_each(|old| self.retired.keep(old)))
        } else {
            fs_write::write_file(&dst, tag, &file.bytes, metadata)
        };
        if written.is_err() {
            return Done::Declined;
        }
        let _check = (self.check != Check::Later).then(|| {
            tracing::info_span!("verify_object", key = %wanted.key, bytes = size).entered()
        });
        let checked = match self.check {
            Check::Later => None,
            Check::Quick => std::fs::metadata(&dst)
                .ok()
                .filter(|m| m.is_file() && m.len() == size)
                .map(|_| None),
            Check::Full => read_blocking(&dst, self.max, false)
                .ok()
                .flatten()
                .filter(|back| back.bytes.len() as u64 == size && back.xxh3 == file.xxh3)
                .map(|back| Some(back.xxh3)),
        };
        Done::Copied {
            size,
            xxh3: file.xxh3,
            checked,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ferry_storage::SiteAccess;
    use xxhash_rust::xxh3::xxh3_128;

    use super::*;

    fn store(dir: &std::path::Path) -> Store {
        Store::open(&SiteAccess {
            uri: format!("file://{}", dir.display()),
            options: BTreeMap::new(),
            credentials: BTreeMap::new(),
            path: String::new(),
        })
        .unwrap()
    }

    fn wanted(key: &str, compare: bool) -> Wanted {
        Wanted {
            key: key.to_owned(),
            size: 0,
            compare,
            // The tests' files compared are the ones there.
            replaces: compare,
        }
    }

    #[tokio::test]
    async fn a_batch_copies_compares_checks_and_declines_file_by_file() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let write = |root: &std::path::Path, key: &str, bytes: &[u8]| {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        };
        write(a.path(), "new/deep/one.bin", b"one");
        write(a.path(), "same.bin", b"same bytes");
        write(b.path(), "same.bin", b"same bytes");
        write(a.path(), "changed.bin", b"new bytes!");
        write(b.path(), "changed.bin", b"old bytes!");
        write(a.path(), "large.bin", &[7u8; 65]);
        let retired = Arc::new(Retired::default());
        let dst = store(b.path());
        let copy = |check| LocalCopy {
            src: store(a.path()),
            dst: dst.clone(),
            options: CopyOptions::default(),
            max: 64,
            check,
            retired: retired.clone(),
        };
        let done = Arc::new(copy(Check::Quick))
            .run(vec![
                wanted("new/deep/one.bin", false),
                wanted("same.bin", true),
                wanted("changed.bin", true),
                wanted("large.bin", false),
                wanted("missing.bin", false),
                wanted("../escape.bin", false),
            ])
            .await;
        assert_eq!(
            done,
            vec![
                Done::Copied {
                    size: 3,
                    xxh3: xxh3_128(b"one"),
                    checked: Some(None)
                },
                Done::Same(xxh3_128(b"same bytes")),
                Done::Copied {
                    size: 10,
                    xxh3: xxh3_128(b"new bytes!"),
                    checked: Some(None)
                },
                Done::Declined,
                Done::Declined,
                Done::Declined,
            ]
        );
        // The bytes at the destination, read back without the agent.
        assert_eq!(
            std::fs::read(b.path().join("new/deep/one.bin")).unwrap(),
            b"one"
        );
        assert_eq!(
            std::fs::read(b.path().join("changed.bin")).unwrap(),
            b"new bytes!"
        );
        assert!(!b.path().join("large.bin").exists());
        // The file replaced is kept aside until the task removes it.
        let aside = fs_write::retired_path(&b.path().join("changed.bin"), dst.write_tag());
        assert_eq!(std::fs::read(&aside).unwrap(), b"old bytes!");
        retired.remove_later();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while aside.exists() && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!aside.exists(), "the replaced file is removed");
        assert_eq!(
            std::fs::read(b.path().join("changed.bin")).unwrap(),
            b"new bytes!"
        );

        // A full check reads the copy back; a later one leaves it to the verify phase.
        write(a.path(), "full.bin", b"full");
        let full = Arc::new(copy(Check::Full))
            .run(vec![wanted("full.bin", false)])
            .await;
        let hash = xxh3_128(b"full");
        assert_eq!(
            full,
            vec![Done::Copied {
                size: 4,
                xxh3: hash,
                checked: Some(Some(hash))
            }]
        );
        let later = Arc::new(copy(Check::Later))
            .run(vec![wanted("full.bin", false)])
            .await;
        assert_eq!(
            later,
            vec![Done::Copied {
                size: 4,
                xxh3: hash,
                checked: None
            }]
        );
    }

    #[tokio::test]
    async fn user_metadata_is_carried_only_when_the_copy_preserves_it() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let path = a.path().join("tagged.bin");
        std::fs::write(&path, b"x").unwrap();
        if xattr::set(&path, "user.owner", b"ops").is_err() {
            eprintln!("skipped: this file system has no extended attributes");
            return;
        }
        let mut copy = LocalCopy {
            src: store(a.path()),
            dst: store(b.path()),
            options: CopyOptions::default(),
            max: 64,
            check: Check::Quick,
            retired: Arc::default(),
        };
        Arc::new(copy.clone())
            .run(vec![wanted("tagged.bin", false)])
            .await;
        let kept = ferry_storage::Attributes::of(&copy.dst.op().stat("tagged.bin").await.unwrap())
            .user_metadata;
        assert_eq!(kept, BTreeMap::from([("owner".into(), "ops".into())]));

        copy.options.preserve_metadata = false;
        std::fs::remove_file(b.path().join("tagged.bin")).unwrap();
        Arc::new(copy.clone())
            .run(vec![wanted("tagged.bin", false)])
            .await;
        assert_eq!(
            xattr::get(b.path().join("tagged.bin"), "user.owner").unwrap(),
            None
        );
    }
}
