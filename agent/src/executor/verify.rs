//! Verification of copied objects: `quick` compares sizes and, on S3, the etag the
//! service gave the object when it was written or copied; `full` reads the destination
//! back and hashes it. An object found different is copied again once; a second
//! mismatch fails it.

use ferry_proto::v1 as pb;
use ferry_storage::{ErrorKind, ObjectError, ObjectInfo, Operation};
use tracing::warn;

use super::{place, sites::Sites};
use crate::{
    destination,
    journal::TaskJournal,
    s3::{ServerCopied, ServerCopyOptions},
    transfer::{self, CopyOptions, VerifyMode},
    wire::ObjectReport,
};

/// How an object's copy can be checked.
#[derive(Clone, Debug)]
pub(super) enum Proof {
    /// The agent moved the bytes: their xxh3-128, and the etag the destination gave
    /// the object it stored, where it has one (S3).
    Hashed { xxh3: u128, etag: Option<String> },
    /// A run before this one moved the bytes and recorded their xxh3-128; the etag its
    /// write got is gone with it.
    Recorded(u128),
    /// The service copied it: the destination's size and etag must match.
    ServerSide(ServerCopied),
}

impl Proof {
    /// The source's xxh3-128, when the agent read the bytes.
    pub fn source_xxh3(&self) -> Option<u128> {
        match self {
            Proof::Hashed { xxh3, .. } | Proof::Recorded(xxh3) => Some(*xxh3),
            Proof::ServerSide(_) => None,
        }
    }
}

/// One copied object waiting for verification.
pub(super) struct Work {
    pub info: ObjectInfo,
    pub proof: Proof,
}

/// Source and destination xxh3-128 as far as the verification computed them.
type Hashes = (Option<u128>, Option<u128>);

/// A verified object, its hashes and the re-copies it took; or the object, why it
/// failed and the re-copies made.
pub(super) type Verified = Result<(Work, Hashes, u32), (Work, ObjectError, u32)>;

/// What a repair copies with: the same settings, and the same journal of multipart
/// uploads, as the task's first copies.
pub(super) struct Recopy<'a> {
    pub options: &'a CopyOptions,
    pub server: &'a ServerCopyOptions,
    pub journal: &'a TaskJournal,
}

/// Verifies one object; on a mismatch copies it again once, the way its first copy
/// went (server-side, a resumable multipart upload for a large object, …), and
/// re-verifies.
pub(super) async fn verify_or_repair(
    sites: &Sites,
    mut work: Work,
    mode: VerifyMode,
    copy: &Recopy<'_>,
) -> Verified {
    let mut repaired = 0;
    loop {
        let checked = match &work.proof {
            Proof::Hashed { xxh3, etag } => {
                verify_hashed(sites, &work.info, *xxh3, etag.as_deref(), mode).await
            }
            Proof::Recorded(xxh3) => {
                // Without the etag the earlier write got, only the bytes can tell that
                // copy from an object written over it since, where etags would have.
                let mode = if transfer::keeps_etags(sites.dst.op()) {
                    VerifyMode::Full
                } else {
                    mode
                };
                verify_hashed(sites, &work.info, *xxh3, None, mode).await
            }
            Proof::ServerSide(copied) => verify_server_copy(sites, &work.info, copied, mode).await,
        };
        let found = match checked {
            Ok(Ok(hashes)) => return Ok((work, hashes, repaired)),
            Ok(Err(found)) => found,
            Err(e) => return Err((work, e, repaired)),
        };
        if repaired >= 1 {
            let e = mismatch(
                sites,
                &work.info.key,
                format!("destination still differs after a re-copy ({found})"),
            );
            return Err((work, e, repaired));
        }
        warn!(key = %work.info.key, found, "destination differs from the source; copying again");
        repaired += 1;
        let again =
            place::copy_routed(sites, &work.info, copy.options, copy.server, copy.journal).await;
        match again {
            Ok((proof, _, _)) => work.proof = proof,
            Err((e, _)) => return Err((work, e, repaired)),
        }
    }
}

/// The result line of a verification; a failure also goes to `mismatches`. `copies`
/// is what the copy before it took (0 when it happened in an earlier run): the
/// attempts recorded are those and the re-copies the verification made.
pub(super) fn verification_report(
    outcome: Verified,
    copies: u32,
    mismatches: &mut Vec<ObjectError>,
) -> pb::ObjectResult {
    match &outcome {
        Ok((work, ..)) => crate::metrics::verified(work.info.size),
        Err((_, e, _)) => crate::metrics::failed(e),
    }
    match outcome {
        Ok((work, hashes, repaired)) => ObjectReport::new(&work.info, pb::ObjectStatus::Verified)
            .hashes(hashes.0, hashes.1)
            .attempts(copies + repaired)
            .into(),
        Err((work, e, repaired)) => {
            let report = ObjectReport::new(&work.info, pb::ObjectStatus::Failed)
                .attempts(copies + repaired)
                .failed(&e)
                .into();
            mismatches.push(e);
            report
        }
    }
}

/// Whether a destination listing shows a copy as quick verification would find it:
/// the size copied, and the etag the service gave the object when it was written or
/// copied, where the copy noted one and the listing carries etags (S3's do). A HEAD
/// per object would only have the service repeat what its listing says. A copy an
/// earlier run made is confirmed only where the listing has nothing but sizes; where
/// it has etags, [`verify_or_repair`] reads the object back instead.
pub(super) fn confirmed_by_listing(work: &Work, listed: Option<&destination::Listed>) -> bool {
    let Some(listed) = listed else { return false };
    let (size, etag) = match &work.proof {
        Proof::Hashed { etag, .. } => (work.info.size, etag),
        Proof::ServerSide(copied) => (copied.size, &copied.etag),
        // A listing with etags could tell more than the size, had the etag been kept.
        Proof::Recorded(_) => return listed.size == work.info.size && listed.etag.is_none(),
    };
    listed.size == size && transfer::etags_agree(etag.as_deref(), listed.etag.as_deref())
}

/// Checks bytes the agent copied against their hash (full) or the size and etag the
/// copy left (quick). `Ok(Err(found))` is a mismatch.
async fn verify_hashed(
    sites: &Sites,
    info: &ObjectInfo,
    source_xxh3: u128,
    etag: Option<&str>,
    mode: VerifyMode,
) -> Result<Result<Hashes, String>, ObjectError> {
    let verified = transfer::verify_object(
        sites.dst.op(),
        &info.key,
        info.size,
        source_xxh3,
        etag,
        mode,
    )
    .await?;
    if verified.matches {
        return Ok(Ok((Some(source_xxh3), verified.destination_xxh3)));
    }
    Ok(Err(match verified.destination_xxh3 {
        Some(found) => format!(
            "found {}, expected {}",
            transfer::xxh3_hex(found),
            transfer::xxh3_hex(source_xxh3)
        ),
        None => differs(
            (
                verified.destination_size,
                verified.destination_etag.as_deref(),
            ),
            (info.size, etag),
        ),
    }))
}

/// What a quick verification found against what it expected.
fn differs(found: (u64, Option<&str>), expected: (u64, Option<&str>)) -> String {
    format!(
        "found {} bytes with etag {}, expected {} with etag {}",
        found.0,
        found.1.unwrap_or("(none)"),
        expected.0,
        expected.1.unwrap_or("(none)")
    )
}

/// Checks a server-side copy: in quick mode by size and etag (the service computed
/// both), in full mode by reading and hashing the destination, and the source as well
/// unless the destination's bytes match the MD5 the source's etag states.
async fn verify_server_copy(
    sites: &Sites,
    info: &ObjectInfo,
    copied: &ServerCopied,
    mode: VerifyMode,
) -> Result<Result<Hashes, String>, ObjectError> {
    let Some((_, dst)) = sites.server_side() else {
        unreachable!("a server-side copy is verified only between S3 datasets of one service")
    };
    match mode {
        VerifyMode::Quick => {
            let (size, etag) = dst.head(&info.key).await?;
            if size == copied.size && transfer::etags_agree(copied.etag.as_deref(), etag.as_deref())
            {
                Ok(Ok((None, None)))
            } else {
                Ok(Err(differs(
                    (size, etag.as_deref()),
                    (copied.size, copied.etag.as_deref()),
                )))
            }
        }
        VerifyMode::Full => verify_server_copy_in_full(sites, info, copied).await,
    }
}

/// Reads a server-side copy back. Every request of the copy was conditional on the
/// source's etag, so the version copied is the one that etag names; where it states the
/// MD5 of that version's bytes (an object written in one request), destination bytes
/// with that MD5 are those bytes, and the source need not be read: its xxh3 is the
/// destination's. Otherwise (a multipart source, an etag that is no MD5, a destination
/// that differs) the source is read and hashed too, and the two xxh3 decide.
async fn verify_server_copy_in_full(
    sites: &Sites,
    info: &ObjectInfo,
    copied: &ServerCopied,
) -> Result<Result<Hashes, String>, ObjectError> {
    let (src, dst) = (sites.src.op(), sites.dst.op());
    let source_md5 = copied.source_etag.as_deref().and_then(transfer::etag_md5);
    let (source, destination) = match source_md5 {
        Some(source_md5) => {
            let (size, xxh3, md5) = transfer::hash_streamed_md5(dst, &info.key).await?;
            if size == copied.size && md5 == source_md5 {
                return Ok(Ok((Some(xxh3), Some(xxh3))));
            }
            (transfer::hash_streamed(src, &info.key).await?, (size, xxh3))
        }
        None => {
            let (source, destination) = tokio::join!(
                transfer::hash_streamed(src, &info.key),
                transfer::hash_streamed(dst, &info.key)
            );
            (source?, destination?)
        }
    };
    let ((src_size, src_xxh3), (dst_size, dst_xxh3)) = (source, destination);
    if src_size == dst_size && src_xxh3 == dst_xxh3 {
        Ok(Ok((Some(src_xxh3), Some(dst_xxh3))))
    } else {
        Ok(Err(format!(
            "found {}, expected {}",
            transfer::xxh3_hex(dst_xxh3),
            transfer::xxh3_hex(src_xxh3)
        )))
    }
}

fn mismatch(sites: &Sites, key: &str, detail: String) -> ObjectError {
    ObjectError::new(
        &sites.dst.url(key),
        key,
        Operation::Verify,
        ErrorKind::Other,
        "Mismatch",
        detail,
    )
}
