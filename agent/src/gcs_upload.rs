//! Objects larger than one part, sent to Google Cloud Storage through a resumable
//! upload session that survives the agent: the session URI and each stored part are
//! journalled (see [`crate::parts`]), so a restarted agent (or another one) asks the
//! session how much it holds and sends only the rest.
//!
//! A session takes the object in order, one chunk at a time, so parts go out one after
//! another while the next ones are read ahead. Parts the session holds whole are
//! checked against the source as it is read again (each part's xxh3 against the
//! journal's); should the source have changed, or the session hold a whole part the
//! journal cannot vouch for, the session is cancelled and the object sent again from
//! the start. The part a crash cut short is continued where the session stopped: its
//! first bytes are the ones that run read after every checked part before it.

use std::ops::Range;

use ferry_storage::{
    gcs::{GcsUploads, Progress, CHUNK_ALIGN},
    Attributes, ErrorKind, ObjectError, Operation,
};
use futures::{stream, StreamExt, TryStreamExt};
use opendal::{Metadata, Operator};
use xxhash_rust::xxh3::Xxh3;

use crate::{
    parts::{
        hash_part, PartDone, PartLimits, PartReader, Plan, SourcePart, UploadJournal, UploadState,
    },
    transfer::{ensure_unchanged, stat_file, xxh3_hex, Copied, CopyOptions},
};

/// A session's chunks: any number, each a multiple of 256 KiB but the last.
const GCS_PARTS: PartLimits = PartLimits {
    min: CHUNK_ALIGN,
    max: 1 << 40,
    align: CHUNK_ALIGN,
    count: u32::MAX as u64,
};

/// Copies `key` from `src` to the same key of `dst` through a resumable session that a
/// later call can resume from `resume` (what `journal` recorded), hashing the bytes
/// with xxh3-128 as they pass.
///
/// On failure the session is cancelled when retrying cannot help (a permanent error)
/// or must start over (the source changed); a temporary failure, or dropping the
/// future, leaves it for the next call to resume.
pub async fn upload_resumable(
    src: &Operator,
    dst: &GcsUploads,
    key: &str,
    resume: Option<UploadState>,
    options: &CopyOptions,
    journal: &impl UploadJournal,
) -> Result<Copied, ObjectError> {
    let source = stat_file(src, key).await?;
    let size = source.content_length();
    let plan = Plan::cut(options.chunk_size, size, GCS_PARTS).ok_or_else(|| {
        ObjectError::new(
            &dst.url(key),
            key,
            Operation::Write,
            ErrorKind::Invalid,
            "TooLarge",
            format!("{size} bytes do not fit in a session"),
        )
    })?;
    let (attributes, metadata_dropped) = options.carried(Attributes::of(&source));
    let upload = SessionCopy {
        src,
        source: &source,
        dst,
        key,
        plan,
        attributes,
        options,
        journal,
    };
    let (session, held) = upload.resume_or_start(resume).await?;
    let sent = match upload.send(&session, &held).await {
        Err(Failure::StartOver(why)) => {
            tracing::info!(key, reason = %why, "the resumed session cannot be trusted; sending the object again");
            upload.cancel(&session).await;
            let session = upload.start().await?;
            upload
                .send(&session, &Held::nothing())
                .await
                .map_err(|f| (session, upload.error(f)))
        }
        other => other.map_err(|f| (session, upload.error(f))),
    };
    let xxh3 = match sent {
        Ok(xxh3) => xxh3,
        Err((session, err)) => return Err(upload.give_up(&session, err).await),
    };
    tracing::debug!(key, size, parts = plan.count, xxh3 = %xxh3_hex(xxh3), "object uploaded through a resumable session");
    Ok(Copied {
        size,
        source_xxh3: xxh3,
        // Quick verification compares etags on S3 only (see `transfer::keeps_etags`).
        etag: None,
        metadata_dropped,
    })
}

/// What a resumed session holds: its first `persisted` bytes, and the journal's record
/// of the parts among them.
struct Held {
    persisted: u64,
    parts: Vec<PartDone>,
}

impl Held {
    fn nothing() -> Self {
        Held {
            persisted: 0,
            parts: Vec::new(),
        }
    }
}

/// Why sending stopped.
enum Failure {
    /// The session holds bytes that cannot be shown to be the source's: a new one is
    /// needed.
    StartOver(String),
    Failed(ObjectError),
}

/// Everything one object's session needs.
struct SessionCopy<'a, J> {
    src: &'a Operator,
    source: &'a Metadata,
    dst: &'a GcsUploads,
    key: &'a str,
    plan: Plan,
    attributes: Attributes,
    options: &'a CopyOptions,
    journal: &'a J,
}

impl<J: UploadJournal> SessionCopy<'_, J> {
    /// The journalled session, with what it holds, if it was cut like this one and the
    /// service still has it; else a new session.
    async fn resume_or_start(
        &self,
        resume: Option<UploadState>,
    ) -> Result<(String, Held), ObjectError> {
        if let Some(state) = resume.filter(|s| !s.upload_id.is_empty()) {
            if state.part_size == self.plan.part_size {
                match self.dst.status(self.key, &state.upload_id).await {
                    Ok(Progress::Incomplete { persisted }) => {
                        tracing::info!(
                            key = self.key,
                            persisted,
                            parts_journalled = state.parts.len(),
                            "resuming a gcs session"
                        );
                        let held = Held {
                            persisted,
                            parts: state.parts,
                        };
                        return Ok((state.upload_id, held));
                    }
                    // Finished by a run that died before it was recorded: whether it
                    // holds the source's bytes cannot be told part by part.
                    Ok(Progress::Complete(_)) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            tracing::info!(
                key = self.key,
                "the journalled gcs session cannot be resumed; starting over"
            );
            self.cancel(&state.upload_id).await;
        }
        Ok((self.start().await?, Held::nothing()))
    }

    /// Starts a session and makes its URI durable before any byte goes out.
    async fn start(&self) -> Result<String, ObjectError> {
        let session = self
            .dst
            .start(
                self.key,
                self.attributes.content_type.as_deref(),
                &self.attributes.user_metadata,
            )
            .await?;
        if let Err(e) = self
            .journal
            .started(self.key, &session, self.plan.part_size)
            .await
        {
            // Not durable, so nobody would ever resume or cancel it but us.
            self.cancel(&session).await;
            return Err(self.failure(
                ErrorKind::Temporary,
                "Journal",
                format!("journalling the resumable session: {e}"),
            ));
        }
        tracing::debug!(
            key = self.key,
            part_size = self.plan.part_size,
            "gcs session started"
        );
        Ok(session)
    }

    /// Reads every part in order and sends what the session lacks; the source's xxh3.
    async fn send(&self, session: &str, held: &Held) -> Result<u128, Failure> {
        let reader = PartReader::open(self.src, self.key, self.source, self.options)
            .await
            .map_err(Failure::Failed)?;
        let mut whole = Xxh3::new();
        let mut parts = stream::iter(self.plan.parts())
            .map(|(number, range)| {
                let reader = &reader;
                async move {
                    let read = reader.read(number, range.clone()).await;
                    read.map(|(number, bytes, room)| (range, number, bytes, room))
                }
            })
            .buffered(self.options.concurrency.max(1))
            .map_err(Failure::Failed);
        while let Some((range, number, bytes, room)) = parts.try_next().await? {
            let part = hash_part(number, bytes, room, &mut whole);
            self.place_part(session, held, range, part).await?;
        }
        Ok(whole.digest128())
    }

    /// Checks a part the session holds against the journal, or sends what it lacks of
    /// it and journals it.
    async fn place_part(
        &self,
        session: &str,
        held: &Held,
        range: Range<u64>,
        part: SourcePart,
    ) -> Result<(), Failure> {
        // A part the session holds whole must be the journal's, with the source's bytes
        // there now. The one a crash cut short holds the first bytes of the part that
        // run read after every part before it, which were checked just now; the rest of
        // it follows.
        if range.end <= held.persisted && range.start < range.end {
            let journalled = held.parts.iter().find(|p| p.number == part.number);
            let vouched = journalled
                .is_some_and(|p| p.xxh3 == part.xxh3 && p.size == range.end - range.start);
            if !vouched {
                return Err(Failure::StartOver(format!(
                    "part {} is held by the session but is not the source's as journalled",
                    part.number
                )));
            }
            if range.end < self.plan.size {
                return Ok(());
            }
        }
        let last = range.end == self.plan.size;
        if last {
            // Before the last bytes: a source that moved must not become the object.
            ensure_unchanged(self.src, self.key, self.source)
                .await
                .map_err(Failure::Failed)?;
        }
        let total = last.then_some(self.plan.size);
        let mut offset = range.start.max(held.persisted.min(range.end));
        loop {
            let rest = part.bytes.slice((offset - range.start) as usize..);
            self.options.pace(rest.len()).await;
            let progress = self
                .dst
                .put(self.key, session, offset, rest, total)
                .await
                .map_err(Failure::Failed)?;
            match progress {
                Progress::Complete(_) if last => break,
                Progress::Incomplete { persisted } if persisted == range.end && !last => break,
                Progress::Incomplete { persisted }
                    if persisted > offset && persisted <= range.end =>
                {
                    offset = persisted;
                }
                other => {
                    return Err(Failure::Failed(self.failure(
                        ErrorKind::Temporary,
                        "ResumableUpload",
                        format!(
                            "after sending bytes {offset}..{} the session answered {other:?}",
                            range.end
                        ),
                    )))
                }
            }
        }
        let done = PartDone {
            number: part.number,
            size: range.end - range.start,
            etag: String::new(),
            xxh3: part.xxh3,
        };
        self.journal
            .part_done(self.key, session, &done)
            .await
            .map_err(|e| {
                Failure::Failed(self.failure(
                    ErrorKind::Temporary,
                    "Journal",
                    format!("journalling the resumable session: {e}"),
                ))
            })
    }

    /// Cancels the session when no later call could use it; otherwise keeps it for the
    /// resume. Returns `err` unchanged.
    async fn give_up(&self, session: &str, err: ObjectError) -> ObjectError {
        if !err.is_temporary() || err.is_source_changed() {
            self.cancel(session).await;
        }
        err
    }

    /// Why sending stopped, as the object's error. A session found untrustworthy twice
    /// (never, for a new one holds nothing to vouch for) is a temporary failure.
    fn error(&self, failure: Failure) -> ObjectError {
        match failure {
            Failure::Failed(e) => e,
            Failure::StartOver(why) => self.failure(ErrorKind::Temporary, "SessionDiscarded", why),
        }
    }

    /// Best effort: a session nobody finishes expires on its own after a week.
    async fn cancel(&self, session: &str) {
        if let Err(e) = self.dst.cancel(self.key, session).await {
            tracing::warn!(key = self.key, error = %e, "cancelling the gcs session failed");
        }
    }

    fn failure(&self, kind: ErrorKind, cause: &str, detail: impl std::fmt::Display) -> ObjectError {
        ObjectError::new(
            &self.dst.url(self.key),
            self.key,
            Operation::Write,
            kind,
            cause,
            detail,
        )
    }
}
