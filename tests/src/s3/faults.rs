//! Faults the S3 test server injects, so tests can watch clients recover from a flaky
//! store or cope with one that answers unlike AWS: refusals, throttling, connections
//! closed unanswered, and 200 answers that AWS's SDK does not expect (see [`Answer`]).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
};

/// Failures the server injects before its real handling, and how it answers the
/// requests it carries out on its side. None by default: the server answers as s3s-fs
/// does.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    unavailable_puts: Arc<AtomicUsize>,
    /// Writes to object keys ending with one of these are refused with 403.
    denied_suffixes: Arc<Mutex<Vec<String>>>,
    /// Parts sent to these multipart uploads get their connection closed unanswered.
    broken_uploads: Arc<Mutex<Vec<String>>>,
    answers: Arc<Mutex<HashMap<ServerSideOp, Answering>>>,
    foreign_roots: Arc<AtomicUsize>,
    embedded_errors: Arc<AtomicUsize>,
}

/// How a [`ServerSideOp`] is answered, and for how many more requests (`None`: until
/// changed).
#[derive(Clone, Copy, Debug)]
struct Answering {
    answer: Answer,
    left: Option<usize>,
}

/// The requests S3 carries out on its side, assembling or copying stored bytes. It may
/// answer them `200 OK` before it is done, so the body, not the status, tells whether
/// they succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerSideOp {
    CompleteMultipartUpload,
    CopyObject,
    UploadPartCopy,
}

impl ServerSideOp {
    pub const ALL: [ServerSideOp; 3] = [
        ServerSideOp::CompleteMultipartUpload,
        ServerSideOp::CopyObject,
        ServerSideOp::UploadPartCopy,
    ];

    /// The operation `req` asks for, if it is one of these.
    pub(super) fn of(req: &http::Request<hyper::body::Incoming>) -> Option<ServerSideOp> {
        let query = req.uri().query().unwrap_or("");
        let has = |name: &str| {
            query
                .split('&')
                .any(|p| p == name || p.starts_with(&format!("{name}=")))
        };
        let copies = req.headers().contains_key("x-amz-copy-source");
        match *req.method() {
            http::Method::POST if has("uploadId") => Some(ServerSideOp::CompleteMultipartUpload),
            http::Method::PUT if copies && has("partNumber") => Some(ServerSideOp::UploadPartCopy),
            http::Method::PUT if copies => Some(ServerSideOp::CopyObject),
            _ => None,
        }
    }
}

/// How the server answers a [`ServerSideOp`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Answer {
    /// As AWS does (and s3s-fs): `200 OK` with `<CompleteMultipartUploadResult>`,
    /// `<CopyObjectResult>` or `<CopyPartResult>`.
    #[default]
    Aws,
    /// The request is carried out, but the `200 OK` body's root element is named
    /// `…Response` instead of `…Result` (`<CompleteMultipartUploadResponse>`,
    /// `<CopyObjectResponse>`, `<CopyPartResponse>`), with the same children, as some
    /// S3-compatible servers answer.
    ForeignRoot,
    /// The request is not carried out, and the answer is `200 OK` with an
    /// `<Error><Code>CODE</Code>…</Error>` body, as AWS answers when the operation
    /// fails after it has sent its status: `InternalError` and `SlowDown` are
    /// temporary, `AccessDenied` is not.
    EmbeddedError(&'static str),
}

impl Faults {
    /// The next `n` PUT requests (objects and parts) are answered `503 SlowDown`.
    pub fn fail_next_puts(&self, n: usize) {
        self.unavailable_puts.store(n, Ordering::SeqCst);
    }

    /// How many injected failures have not been used yet.
    pub fn pending(&self) -> usize {
        self.unavailable_puts.load(Ordering::SeqCst)
    }

    /// Every write (PUT of an object or part, multipart upload start) of an object whose
    /// key ends with `suffix` is answered `403 AccessDenied`, as a bucket policy would.
    pub fn deny_writes_to(&self, suffix: &str) {
        self.denied_suffixes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(suffix.to_owned());
    }

    /// Every `UploadPart` of upload `upload_id` has its connection closed before any
    /// answer, as a service may do when it refuses a request while the body is still
    /// being sent: the client sees a broken connection, not the refusal.
    pub fn break_parts_of(&self, upload_id: &str) {
        self.broken_uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(upload_id.to_owned());
    }

    pub(super) fn breaks(&self, req: &http::Request<hyper::body::Incoming>) -> bool {
        let query = req.uri().query().unwrap_or("");
        let Some(upload) = query.split('&').find_map(|p| p.strip_prefix("uploadId=")) else {
            return false;
        };
        req.method() == http::Method::PUT
            && self
                .broken_uploads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|u| u == upload)
    }

    pub(super) fn denies(&self, req: &http::Request<hyper::body::Incoming>) -> bool {
        let writes = matches!(*req.method(), http::Method::PUT | http::Method::POST);
        let path = req.uri().path();
        writes
            && self
                .denied_suffixes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|s| path.ends_with(s.as_str()))
    }

    pub(super) fn take_put(&self) -> bool {
        self.unavailable_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// From now on every request of `op` is answered as `answer` says.
    pub fn answer(&self, op: ServerSideOp, answer: Answer) {
        self.set_answer(op, answer, None);
    }

    /// The next `n` requests of `op` are answered as `answer` says, later ones as AWS
    /// does: for a client that retries.
    pub fn answer_next(&self, op: ServerSideOp, n: usize, answer: Answer) {
        self.set_answer(op, answer, Some(n));
    }

    /// From now on every [`ServerSideOp`] is answered as `answer` says.
    pub fn answer_all(&self, answer: Answer) {
        for op in ServerSideOp::ALL {
            self.answer(op, answer);
        }
    }

    /// How many `200 OK` answers the server gave with a foreign root element
    /// ([`Answer::ForeignRoot`]).
    pub fn foreign_roots(&self) -> usize {
        self.foreign_roots.load(Ordering::SeqCst)
    }

    /// How many `200 OK` answers the server gave with an error document
    /// ([`Answer::EmbeddedError`]).
    pub fn embedded_errors(&self) -> usize {
        self.embedded_errors.load(Ordering::SeqCst)
    }

    fn set_answer(&self, op: ServerSideOp, answer: Answer, times: Option<usize>) {
        self.answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                op,
                Answering {
                    answer,
                    left: times,
                },
            );
    }

    /// How to answer this request of `op`, counting it against an [`Self::answer_next`]
    /// (and among the embedded errors given, if it is one).
    pub(super) fn take_answer(&self, op: ServerSideOp) -> Answer {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        let answer = match answers.get_mut(&op) {
            None => Answer::Aws,
            Some(Answering { left: Some(0), .. }) => Answer::Aws,
            Some(Answering { answer, left: None }) => *answer,
            Some(Answering {
                answer,
                left: Some(left),
            }) => {
                *left -= 1;
                *answer
            }
        };
        if let Answer::EmbeddedError(_) = answer {
            self.embedded_errors.fetch_add(1, Ordering::SeqCst);
        }
        answer
    }

    /// Counts a `200 OK` given with a foreign root element.
    pub(super) fn count_foreign_root(&self) {
        self.foreign_roots.fetch_add(1, Ordering::SeqCst);
    }
}

/// An answer of `status` whose body is S3's error document for `code`: `200 OK` for
/// an [`Answer::EmbeddedError`].
pub(super) fn error_answer(status: http::StatusCode, code: &str) -> s3s::HttpResponse {
    let message = match code {
        "InternalError" => "We encountered an internal error. Please try again.",
        "SlowDown" => "Please reduce your request rate.",
        "AccessDenied" => "Access Denied",
        _ => "Injected by the test server.",
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>FERRYTESTREQUEST</RequestId></Error>"
    );
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/xml")
        .body(s3s::Body::from(body))
        .expect("a well-formed error response")
}

/// `body` with its root element `…Result` renamed `…Response`; `None` when the root is
/// not named so.
pub(super) fn with_foreign_root(body: &str) -> Option<String> {
    let open = body
        .match_indices('<')
        .map(|(i, _)| i)
        .find(|&i| !body[i..].starts_with("<?"))?;
    let name_len = body[open + 1..].find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
    let name = &body[open + 1..open + 1 + name_len];
    let stem = name.strip_suffix("Result")?;
    let close = format!("</{name}>");
    let close_at = body.rfind(&close)?;
    Some(format!(
        "{}<{stem}Response{}</{stem}Response>{}",
        &body[..open],
        &body[open + 1 + name_len..close_at],
        &body[close_at + close.len()..]
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_root_is_renamed_and_its_children_kept() {
        let body = "<?xml version=\"1.0\"?>\n<CopyPartResult xmlns=\"x\"><ETag>e</ETag>\
                    <LastModified>t</LastModified></CopyPartResult>";
        assert_eq!(
            super::with_foreign_root(body).as_deref(),
            Some(
                "<?xml version=\"1.0\"?>\n<CopyPartResponse xmlns=\"x\"><ETag>e</ETag>\
                 <LastModified>t</LastModified></CopyPartResponse>"
            )
        );
        assert_eq!(super::with_foreign_root("<Error></Error>"), None);
    }
}
