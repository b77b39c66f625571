//! Writing objects, whole or streamed in chunks, the way each backend takes them:
//! through OpenDAL (S3 multipart uploads, Azure block lists), through a temporary file
//! renamed into place on a file system ([`crate::fs_write`]) and, for GCS objects
//! larger than one chunk, through a resumable upload session, which real GCS and its
//! emulators both implement.

use std::{collections::BTreeMap, time::Duration};

use bytes::{Bytes, BytesMut};
use opendal::{Buffer, Metadata};

use crate::{
    error::{ErrorKind, ObjectError, Operation},
    fs_write::{self, FileWriter},
    gcs::{GcsUploads, Progress, CHUNK_ALIGN},
    Scheme, Store,
};

/// The content type and user metadata an object is written with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub content_type: Option<String>,
    pub user_metadata: BTreeMap<String, String>,
}

impl Attributes {
    /// What `metadata` (a source's stat) says.
    pub fn of(metadata: &Metadata) -> Self {
        Attributes {
            content_type: metadata.content_type().map(str::to_owned),
            user_metadata: metadata
                .user_metadata()
                .map(|m| {
                    m.into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.content_type.is_none() && self.user_metadata.is_empty()
    }
}

/// What a write stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    /// The etag the service gave the object, where it answered with one.
    pub etag: Option<String>,
}

/// Chunks of a session in flight when a GCS write fails mid-way and is resumed, at most.
const GCS_RESUMES: u32 = 4;

impl Store {
    /// The part of `attributes` this store can keep, and whether anything was left
    /// out: S3, GCS and Azure keep both; memory keeps the content type only; a file
    /// system keeps user metadata as `user.*` extended attributes and no content type.
    pub fn keepable(&self, attributes: Attributes) -> (Attributes, bool) {
        let capability = self.op().info().capability();
        let mut kept = attributes;
        let mut dropped = false;
        if kept.content_type.is_some() && !capability.write_with_content_type {
            kept.content_type = None;
            dropped = true;
        }
        if !kept.user_metadata.is_empty() && !capability.write_with_user_metadata {
            kept.user_metadata.clear();
            dropped = true;
        }
        if self.scheme() == Scheme::Azblob {
            // Azure refuses the whole write (400 InvalidMetadata) for a name that is not
            // a C# identifier, which S3 and GCS names often are not (`content-owner`).
            let before = kept.user_metadata.len();
            kept.user_metadata
                .retain(|name, _| is_csharp_identifier(name));
            dropped |= kept.user_metadata.len() != before;
        }
        (kept, dropped)
    }

    /// Writes `bytes` as `key` in one request, with the attributes this store keeps; to
    /// a file system in one blocking call, through a temporary file renamed into place
    /// and without a flush to disk (see [`crate::fs_write`]).
    pub async fn write(
        &self,
        key: &str,
        bytes: impl Into<Buffer>,
        attributes: &Attributes,
    ) -> Result<Written, ObjectError> {
        let bytes = bytes.into();
        let size = bytes.len() as u64;
        let (attributes, _) = self.keepable(attributes.clone());
        if self.scheme() == Scheme::File {
            let tag = self.write_tag();
            fs_write::write_whole(self.op(), key, tag, bytes, attributes.user_metadata).await?;
            return Ok(Written { size, etag: None });
        }
        let mut write = self.op().write_with(key, bytes);
        if let Some(content_type) = &attributes.content_type {
            write = write.content_type(content_type);
        }
        if !attributes.user_metadata.is_empty() {
            write = write.user_metadata(attributes.user_metadata);
        }
        let written = write
            .await
            .map_err(|e| ObjectError::from_opendal(self.op(), key, Operation::Write, e))?;
        Ok(Written {
            size,
            etag: written.etag().map(str::to_owned),
        })
    }

    /// A writer for `key` that takes the object in pieces, holding about
    /// `chunk * concurrency` bytes: chunks of `chunk` bytes go out `concurrency` at a
    /// time where the backend allows it (S3 parts, Azure blocks), one at a time to a
    /// GCS session, in order to a file system's temporary file. Nothing is stored until
    /// [`ObjectWriter::close`] succeeds.
    pub async fn writer(
        &self,
        key: &str,
        attributes: &Attributes,
        chunk: usize,
        concurrency: usize,
    ) -> Result<ObjectWriter, ObjectError> {
        let (attributes, _) = self.keepable(attributes.clone());
        if self.scheme() == Scheme::File {
            let writer =
                FileWriter::open(self.op(), key, self.write_tag(), attributes.user_metadata)
                    .await?;
            return Ok(ObjectWriter::File(Box::new(writer)));
        }
        if let Some(uploads) = self.gcs_uploads() {
            return Ok(ObjectWriter::Gcs(Box::new(GcsWriter {
                store: self.clone(),
                uploads,
                key: key.to_owned(),
                attributes,
                chunk: (chunk as u64).div_ceil(CHUNK_ALIGN).max(1) * CHUNK_ALIGN,
                session: None,
                sent: 0,
                pending: BytesMut::new(),
            })));
        }
        let mut writer = self
            .op()
            .writer_with(key)
            .chunk(chunk.max(1))
            .concurrent(concurrency.max(1));
        if let Some(content_type) = &attributes.content_type {
            writer = writer.content_type(content_type);
        }
        if !attributes.user_metadata.is_empty() {
            writer = writer.user_metadata(attributes.user_metadata);
        }
        let writer = writer
            .await
            .map_err(|e| ObjectError::from_opendal(self.op(), key, Operation::Write, e))?;
        Ok(ObjectWriter::OpenDal {
            op: self.op().clone(),
            key: key.to_owned(),
            writer: Box::new(writer),
            size: 0,
        })
    }
}

/// Whether Azure takes `name` as a metadata name: a C# identifier, a letter or `_`
/// followed by letters, digits and `_`.
fn is_csharp_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An object being written in pieces; see [`Store::writer`].
pub enum ObjectWriter {
    OpenDal {
        op: opendal::Operator,
        key: String,
        writer: Box<opendal::Writer>,
        size: u64,
    },
    Gcs(Box<GcsWriter>),
    /// A file, through its temporary file (see [`crate::fs_write`]).
    File(Box<FileWriter>),
}

impl ObjectWriter {
    pub async fn write(&mut self, buffer: Buffer) -> Result<(), ObjectError> {
        match self {
            ObjectWriter::OpenDal {
                op,
                key,
                writer,
                size,
            } => {
                *size += buffer.len() as u64;
                writer
                    .write(buffer)
                    .await
                    .map_err(|e| ObjectError::from_opendal(op, key, Operation::Write, e))
            }
            ObjectWriter::Gcs(gcs) => gcs.write(buffer).await,
            ObjectWriter::File(file) => file.write(buffer).await,
        }
    }

    /// Stores the object.
    pub async fn close(&mut self) -> Result<Written, ObjectError> {
        match self {
            ObjectWriter::OpenDal {
                op,
                key,
                writer,
                size,
            } => {
                let written = writer
                    .close()
                    .await
                    .map_err(|e| ObjectError::from_opendal(op, key, Operation::Write, e))?;
                Ok(Written {
                    size: *size,
                    etag: written.etag().map(str::to_owned),
                })
            }
            ObjectWriter::Gcs(gcs) => gcs.close().await,
            ObjectWriter::File(file) => file.close().await,
        }
    }

    /// Drops what was sent (an unfinished multipart upload or session, a temporary
    /// file). Best effort: a
    /// failed abort leaves it to the bucket's lifecycle rules, and is logged.
    pub async fn abort(&mut self) {
        let failed = match self {
            ObjectWriter::OpenDal {
                op, key, writer, ..
            } => writer
                .abort()
                .await
                .err()
                .map(|e| ObjectError::from_opendal(op, key, Operation::Write, e)),
            ObjectWriter::Gcs(gcs) => gcs.abort().await.err(),
            ObjectWriter::File(file) => {
                file.abort();
                None
            }
        };
        if let Some(e) = failed {
            tracing::warn!(error = %e, "aborting an unfinished write failed");
        }
    }
}

/// A GCS object written through a resumable session, started only once the object
/// proves larger than one chunk: a smaller one goes in one request.
pub struct GcsWriter {
    store: Store,
    uploads: GcsUploads,
    key: String,
    attributes: Attributes,
    /// A multiple of [`CHUNK_ALIGN`].
    chunk: u64,
    session: Option<String>,
    /// Bytes the session holds.
    sent: u64,
    /// Bytes written and not sent yet.
    pending: BytesMut,
}

impl GcsWriter {
    async fn write(&mut self, buffer: Buffer) -> Result<(), ObjectError> {
        for piece in buffer {
            self.pending.extend_from_slice(&piece);
        }
        // A chunk goes out only once more follows it: the last one carries the size.
        while self.pending.len() as u64 > self.chunk {
            let chunk = self.pending.split_to(self.chunk as usize).freeze();
            self.send(chunk, None).await?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<Written, ObjectError> {
        let last = std::mem::take(&mut self.pending).freeze();
        if self.session.is_none() {
            return self.store.write(&self.key, last, &self.attributes).await;
        }
        let total = self.sent + last.len() as u64;
        match self.send(last, Some(total)).await? {
            Some(done) => Ok(done),
            None => Err(self.uploads_failure(format!(
                "the session holds {} of the {total} bytes sent, and is not finished",
                self.sent
            ))),
        }
    }

    async fn abort(&mut self) -> Result<(), ObjectError> {
        match self.session.take() {
            Some(session) => self.uploads.cancel(&self.key, &session).await,
            None => Ok(()),
        }
    }

    /// Sends `chunk` (the object's bytes from `self.sent` on), resuming from what the
    /// session holds after a temporary failure; the object once it is complete.
    async fn send(
        &mut self,
        chunk: Bytes,
        total: Option<u64>,
    ) -> Result<Option<Written>, ObjectError> {
        let session = match &self.session {
            Some(session) => session.clone(),
            None => {
                let session = self
                    .uploads
                    .start(
                        &self.key,
                        self.attributes.content_type.as_deref(),
                        &self.attributes.user_metadata,
                    )
                    .await?;
                self.session = Some(session.clone());
                session
            }
        };
        let start = self.sent;
        let end = start + chunk.len() as u64;
        let mut offset = start;
        let mut failures = 0;
        loop {
            let rest = chunk.slice((offset - start) as usize..);
            let sent = self
                .uploads
                .put(&self.key, &session, offset, rest, total)
                .await;
            let progress = match sent {
                Ok(progress) => progress,
                Err(e) if e.is_temporary() && failures < GCS_RESUMES => {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "gcs chunk not stored; resuming the session");
                    tokio::time::sleep(Duration::from_millis(200 << failures)).await;
                    self.uploads.status(&self.key, &session).await?
                }
                Err(e) => return Err(e),
            };
            match progress {
                Progress::Complete(done) if total.is_some() => {
                    self.sent = end;
                    return Ok(Some(Written {
                        size: done.size.max(end),
                        etag: done.etag,
                    }));
                }
                Progress::Complete(_) => {
                    return Err(self.uploads_failure("the session finished before the last chunk"))
                }
                Progress::Incomplete { persisted } if persisted == end && total.is_none() => {
                    self.sent = end;
                    return Ok(None);
                }
                Progress::Incomplete { persisted } if (start..=end).contains(&persisted) => {
                    // The service kept part of it (or, after a failure, some): send the
                    // rest; with everything there, only the size is missing.
                    if persisted <= offset && persisted != end {
                        failures += 1;
                        if failures > GCS_RESUMES {
                            return Err(self.uploads_failure(format!(
                                "the session stays at {persisted} bytes of {end}"
                            )));
                        }
                    }
                    offset = persisted;
                }
                Progress::Incomplete { persisted } => {
                    return Err(self.uploads_failure(format!(
                        "the session holds {persisted} bytes, outside the chunk {start}..{end} just sent"
                    )))
                }
            }
        }
    }

    fn uploads_failure(&self, detail: impl std::fmt::Display) -> ObjectError {
        ObjectError::new(
            &self.uploads.url(&self.key),
            &self.key,
            Operation::Write,
            ErrorKind::Other,
            "ResumableUpload",
            detail,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::SiteAccess;

    #[test]
    fn azure_keeps_only_metadata_names_it_accepts() {
        assert!(is_csharp_identifier("owner_2"));
        assert!(is_csharp_identifier("_x"));
        assert!(!is_csharp_identifier("content-owner"));
        assert!(!is_csharp_identifier("2nd"));
        assert!(!is_csharp_identifier(""));
        let store = Store::open(&SiteAccess {
            uri: "azblob://container".into(),
            options: BTreeMap::from([("account_name".to_owned(), "acct".to_owned())]),
            credentials: BTreeMap::new(),
            path: String::new(),
        })
        .unwrap();
        let attributes = Attributes {
            content_type: Some("text/plain".into()),
            user_metadata: BTreeMap::from([
                ("owner".to_owned(), "a".to_owned()),
                ("content-owner".to_owned(), "b".to_owned()),
            ]),
        };
        let (kept, dropped) = store.keepable(attributes);
        assert!(dropped);
        assert_eq!(kept.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            kept.user_metadata,
            BTreeMap::from([("owner".to_owned(), "a".to_owned())])
        );
    }
}
