//! What a destination already holds, read from its listing: the objects a copy task can
//! skip, and the sizes (and etags) that confirm its copies in quick verification.

use std::{collections::HashMap, pin::pin};

use futures::{StreamExt, TryStreamExt};
use tracing::info;

use ferry_storage::{list_sizes, ObjectInfo};

use crate::{local_file, transfer};

/// An object as a destination listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    pub size: u64,
    pub etag: Option<String>,
}

impl Listed {
    /// A listed object's key, and what the listing says of it.
    fn by_key(o: ObjectInfo) -> (String, Listed) {
        let listed = Listed {
            size: o.size,
            etag: o.etag,
        };
        (o.key, listed)
    }
}

/// The objects at the destination, by key, among the task's keys. A file system is
/// asked for each key; elsewhere only the deepest directory holding all of them is
/// listed, and where the destination lists in key order from a given key (S3), only
/// the task's key range within it. A destination that cannot be listed (not created
/// yet, say) holds nothing as far as skipping goes: everything is copied.
pub(crate) async fn listing(
    dst: &opendal::Operator,
    objects: &[ObjectInfo],
) -> HashMap<String, Listed> {
    let (Some(first), Some(last)) = (
        objects.iter().map(|o| o.key.as_str()).min(),
        objects.iter().map(|o| o.key.as_str()).max(),
    ) else {
        return HashMap::new();
    };
    let keys = objects.iter().map(|o| o.key.as_str());
    if let Some(found) = ferry_storage::stat_local(dst, keys).await {
        return match found {
            Ok(found) => found.into_iter().map(Listed::by_key).collect(),
            Err(e) => {
                info!(reason = %e, "destination not looked up; copying every object");
                HashMap::new()
            }
        };
    }
    let wanted: std::collections::HashSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    let mut sizes = HashMap::new();
    // `start_after` is exclusive: where the listing honours it, the first key is looked
    // up on its own; elsewhere the listing begins at the start and shows it anyway.
    let ordered = dst.info().capability().list_with_start_after;
    let first_meta = if ordered {
        dst.stat(first).await.ok().filter(|meta| meta.is_file())
    } else {
        None
    };
    if let Some(meta) = first_meta {
        sizes.insert(
            first.to_owned(),
            Listed {
                size: meta.content_length(),
                etag: meta.etag().map(str::to_owned),
            },
        );
    }
    let mut listing = pin!(list_sizes(dst, enclosing_dir(first, last), Some(first)));
    loop {
        match listing.try_next().await {
            Ok(Some(o)) => {
                if ordered && o.key.as_str() > last {
                    break;
                }
                if wanted.contains(o.key.as_str()) {
                    let (key, listed) = Listed::by_key(o);
                    sizes.insert(key, listed);
                }
            }
            Ok(None) => break,
            Err(e) => {
                info!(reason = %e, "destination not listed; copying every object");
                return HashMap::new();
            }
        }
    }
    sizes
}

/// The deepest directory (`""`, or a prefix ending in `/`) that holds every key from
/// `first` to `last` in key order: their common prefix, cut after its last `/`. Any key
/// between two keys starts with what they have in common, so a listing below it misses
/// none of the range, and on a store that reads every key below the prefix it asks for
/// (s3s-fs, a file system) it reads one directory's keys instead of the dataset's.
fn enclosing_dir<'a>(first: &'a str, last: &str) -> &'a str {
    let common = first
        .bytes()
        .zip(last.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    // Cutting right after an ASCII `/` always falls on a character boundary.
    match first.as_bytes()[..common].iter().rposition(|&b| b == b'/') {
        Some(slash) => &first[..=slash],
        None => "",
    }
}

/// Whether the destination holds no object at all below the job's path, from the first
/// page of its listing. A destination that cannot be listed is not known to be empty.
pub(crate) async fn holds_nothing(dst: &opendal::Operator) -> bool {
    let mut listing = pin!(list_sizes(dst, "", None));
    listing.next().await.is_none()
}

/// The object's xxh3-128 when source and destination hold the same bytes.
pub(crate) async fn same_content(
    src: &opendal::Operator,
    dst: &opendal::Operator,
    key: &str,
) -> Option<u128> {
    match tokio::join!(content_hash(src, key), content_hash(dst, key)) {
        (Ok((src_size, src_xxh3)), Ok((dst_size, dst_xxh3)))
            if src_size == dst_size && src_xxh3 == dst_xxh3 =>
        {
            Some(src_xxh3)
        }
        _ => None,
    }
}

/// The size and xxh3-128 of `key` at `op`. A small local file is read whole in one
/// blocking call, as a copy reads it: through OpenDAL its stat, open, read and second
/// stat would each be a hand-off to the blocking pool, and a sync's changed small files
/// are compared at both ends before they are copied.
async fn content_hash(
    op: &opendal::Operator,
    key: &str,
) -> Result<(u64, u128), ferry_storage::ObjectError> {
    if local_file::is_local(op) {
        let max = transfer::DEFAULT_CHUNK_SIZE as u64;
        if let Some(file) = local_file::read_small(op, key, max).await? {
            return Ok((file.bytes.len() as u64, file.xxh3));
        }
    }
    transfer::hash_object(op, key).await
}

#[cfg(test)]
mod tests {
    use opendal::{services, Operator};
    use xxhash_rust::xxh3::xxh3_128;

    use super::{enclosing_dir, same_content};
    use crate::transfer::DEFAULT_CHUNK_SIZE;

    fn site(dir: &std::path::Path) -> Operator {
        Operator::new(services::Fs::default().root(&dir.display().to_string())).unwrap()
    }

    #[tokio::test]
    async fn local_files_are_the_same_only_when_their_bytes_are() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (src, dst) = (site(a.path()), site(b.path()));
        // A small file, read whole; one above a chunk, streamed.
        let small = b"four KiB, or near enough".to_vec();
        let large: Vec<u8> = (0..DEFAULT_CHUNK_SIZE + 1).map(|i| i as u8).collect();
        for (key, bytes) in [("small", &small), ("large", &large)] {
            std::fs::write(a.path().join(key), bytes).unwrap();
            std::fs::write(b.path().join(key), bytes).unwrap();
            assert_eq!(
                same_content(&src, &dst, key).await,
                Some(xxh3_128(bytes)),
                "{key}"
            );
            // The same size, one byte different.
            let mut changed = bytes.clone();
            changed[0] ^= 1;
            std::fs::write(b.path().join(key), &changed).unwrap();
            assert_eq!(same_content(&src, &dst, key).await, None, "{key}");
        }
        assert_eq!(same_content(&src, &dst, "missing").await, None);
    }

    #[test]
    fn the_enclosing_directory_holds_every_key_of_the_range() {
        assert_eq!(
            enclosing_dir("d000/f000000.bin", "d000/f000999.bin"),
            "d000/"
        );
        assert_eq!(enclosing_dir("a/b/c/x", "a/b/d/y"), "a/b/");
        // A common prefix that ends inside a name is cut back to its directory.
        assert_eq!(enclosing_dir("logs/2026-01", "logs/2026-02"), "logs/");
        assert_eq!(enclosing_dir("a/x", "b/y"), "");
        assert_eq!(enclosing_dir("same.bin", "sub/deep.bin"), "");
        // One key: its own directory.
        assert_eq!(enclosing_dir("a/b/k", "a/b/k"), "a/b/");
        assert_eq!(enclosing_dir("k", "k"), "");
        // Multi-byte characters that differ in a later byte: the cut stays on the `/`.
        assert_eq!(enclosing_dir("é/ä1", "é/å2"), "é/");
        assert_eq!(enclosing_dir("dä", "då"), "");
    }
}
