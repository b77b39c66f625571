//! One object's copy: the fastest way the two sites allow, with temporary failures
//! retried after a jittered back-off, each try in a span of its own.

use std::{collections::HashMap, future::Future, time::Duration};

use ferry_storage::{ErrorKind, ObjectError, ObjectInfo, Operation};
use tracing::{warn, Instrument};

use super::{
    sites::{Route, Sites},
    verify::Proof,
};
use crate::{
    destination, gcs_upload,
    journal::TaskJournal,
    s3::{self, PutFailure, S3Dataset, ServerCopyOptions},
    transfer::{self, CopyOptions},
};

/// Copies of one object tried before its failure is final (temporary errors only).
const COPY_TRIES: u32 = 3;
/// The wait before an object's second copy; it doubles for each one after.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// How an object reached the destination in the copy phase.
pub(super) enum Placed {
    /// Copied: how to check it, the bytes copied (the source may have changed size
    /// since it was listed), and the tries it took.
    Copied(Proof, u64, u32),
    /// It was there already, with this xxh3-128 at both ends.
    AlreadyThere(u128),
}

/// A copy's final failure and the tries it took.
pub(super) type CopyFailure = (ObjectError, u32);

/// Copies one object the fastest way the two sites allow: not at all when the
/// destination holds the same bytes already, server-side within one S3 service, to S3
/// as a resumable multipart upload above the multipart threshold or in one streamed
/// request above a part, else through OpenDAL.
pub(super) async fn place(
    sites: &Sites,
    info: &ObjectInfo,
    present: &HashMap<String, destination::Listed>,
    options: &CopyOptions,
    server: &ServerCopyOptions,
    journal: &TaskJournal,
) -> Result<Placed, CopyFailure> {
    let key = info.key.as_str();
    if sites.in_place && sites.server_side().is_none() {
        // Reading an object while writing it would destroy it.
        let e = ObjectError::new(
            &sites.dst.url(key),
            key,
            Operation::Copy,
            ErrorKind::Invalid,
            "InPlace",
            "source and destination are the same objects, and only an S3 \
             server-side copy can rewrite an object in place",
        );
        return Err((e, 1));
    }
    if present.get(key).map(|l| l.size) == Some(info.size) {
        if let Some(xxh3) = destination::same_content(sites.src.op(), sites.dst.op(), key).await {
            return Ok(Placed::AlreadyThere(xxh3));
        }
    }
    let (proof, size, attempts) = copy_routed(sites, info, options, server, journal).await?;
    Ok(Placed::Copied(proof, size, attempts))
}

/// Copies one object by the route its size and the two sites give: the first copy's
/// and a repair's alike. Returns the proof, the size copied and the tries it took.
pub(super) async fn copy_routed(
    sites: &Sites,
    info: &ObjectInfo,
    options: &CopyOptions,
    server: &ServerCopyOptions,
    journal: &TaskJournal,
) -> Result<(Proof, u64, u32), CopyFailure> {
    let key = info.key.as_str();
    let (copied, attempts) = match sites.route(info.size, options) {
        Route::ServerSide(src, dst) => {
            let listed = Some((info.size, info.etag.as_deref()));
            let (copied, attempts) =
                with_retries(key, || dst.copy_from(src, key, listed, server)).await?;
            let size = copied.size;
            return Ok((Proof::ServerSide(copied), size, attempts));
        }
        Route::Multipart(dst) => with_retries(key, || {
            s3::upload_resumable(
                sites.src.op(),
                dst,
                key,
                journal.state(key),
                options,
                journal,
            )
        })
        .await
        .inspect(|_| journal.finished(key))?,
        Route::Streamed(dst) => with_retries(key, || {
            streamed_or_parts(sites.src.op(), dst, key, options, journal)
        })
        .await
        .inspect(|_| journal.finished(key))?,
        Route::Resumable(dst) => with_retries(key, || {
            gcs_upload::upload_resumable(
                sites.src.op(),
                dst,
                key,
                journal.state(key),
                options,
                journal,
            )
        })
        .await
        .inspect(|_| journal.finished(key))?,
        Route::Through => {
            with_retries(key, || {
                transfer::copy_object(&sites.src, &sites.dst, key, options)
            })
            .await?
        }
    };
    let proof = Proof::Hashed {
        xxh3: copied.source_xxh3,
        etag: copied.etag,
    };
    Ok((proof, copied.size, attempts))
}

/// Sends `key` in one streamed request; should the connection break before the service
/// answered, as a multipart upload instead, whose start carries no body: a refusal
/// then arrives as what it is rather than as a broken pipe, and a broken network
/// leaves an upload that resumes part by part.
async fn streamed_or_parts(
    src: &opendal::Operator,
    dst: &S3Dataset,
    key: &str,
    options: &CopyOptions,
    journal: &TaskJournal,
) -> Result<transfer::Copied, ObjectError> {
    match s3::put_streamed(src, dst, key, options).await {
        Ok(copied) => Ok(copied),
        Err(PutFailure::Failed(e)) => Err(e),
        Err(PutFailure::Unanswered(e)) => {
            warn!(key, error = %e, "the request broke before the service answered; sending the object in parts");
            s3::upload_resumable(src, dst, key, journal.state(key), options, journal).await
        }
    }
}

/// Runs `copy` until it succeeds, fails permanently, or failed [`COPY_TRIES`] times;
/// returns its result and the tries it took. Each try runs in a `copy` span with its
/// attempt number.
pub(super) async fn with_retries<T, F, Fut>(key: &str, mut copy: F) -> Result<(T, u32), CopyFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ObjectError>>,
{
    let mut attempts = 0;
    let mut backoff = FIRST_BACKOFF;
    loop {
        attempts += 1;
        let tried = copy()
            .instrument(tracing::info_span!("copy", attempt = attempts))
            .await;
        match tried {
            Ok(c) => return Ok((c, attempts)),
            Err(e) if e.is_temporary() && attempts < COPY_TRIES => {
                crate::metrics::retried();
                let wait = jittered(backoff);
                warn!(key, error = %e, attempts, wait_ms = wait.as_millis() as u64, "temporary failure; retrying");
                tokio::time::sleep(wait).await;
                backoff *= 2;
            }
            Err(e) => return Err((e, attempts)),
        }
    }
}

/// Half of `backoff` and a random part of the other half: the objects of a task that
/// failed together, when the store was briefly overloaded, come back spread out rather
/// than all at once.
fn jittered(backoff: Duration) -> Duration {
    backoff / 2 + backoff.mul_f64(rand::random_range(0.0..0.5))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn failure(temporary: bool) -> ObjectError {
        let kind = if temporary {
            ErrorKind::Temporary
        } else {
            ErrorKind::Other
        };
        ObjectError::new(
            "s3://b/k",
            "k",
            Operation::Write,
            kind,
            "Test",
            "the store said no",
        )
    }

    #[tokio::test(start_paused = true)]
    async fn temporary_failures_are_retried_after_jittered_growing_waits() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let (value, attempts) = with_retries("k", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(failure(true)),
                _ => Ok("copied"),
            }
        })
        .await
        .unwrap();
        assert_eq!((value, attempts), ("copied", 3));
        // Two waits: 100 to 200 ms, then 200 to 400 ms.
        let waited = started.elapsed();
        assert!(
            (Duration::from_millis(300)..Duration::from_millis(600)).contains(&waited),
            "waited {waited:?}"
        );
    }

    /// Runs a copy that always fails so: its final failure, and how often it ran.
    async fn always_failing(temporary: bool) -> (CopyFailure, u32) {
        let calls = AtomicU32::new(0);
        let failed = with_retries("k", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(failure(temporary))
        })
        .await
        .unwrap_err();
        (failed, calls.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried_and_temporary_ones_stop_after_the_last_try() {
        let ((e, attempts), calls) = always_failing(false).await;
        assert_eq!((attempts, calls), (1, 1));
        assert!(!e.is_temporary());

        let ((e, attempts), calls) = always_failing(true).await;
        assert_eq!((attempts, calls), (COPY_TRIES, COPY_TRIES));
        assert!(e.is_temporary());
    }

    #[test]
    fn a_jittered_wait_lies_between_half_and_all_of_the_backoff() {
        let backoff = Duration::from_millis(400);
        let waits: Vec<Duration> = (0..200).map(|_| jittered(backoff)).collect();
        assert!(waits.iter().all(|w| (backoff / 2..backoff).contains(w)));
        // Spread out, not one fixed wait.
        let (min, max) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
        assert!(*max - *min > Duration::from_millis(50), "{min:?}..{max:?}");
    }
}
