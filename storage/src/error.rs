//! The storage layer's two errors: a setting that cannot work ([`InvalidField`], named by
//! its field), and an operation on one object that failed ([`ObjectError`], classified
//! by [`ErrorKind`] so callers retry only what retrying can fix).
//!
//! Both the control plane (validating a site before it is stored) and the agent (every
//! object it moves) see storage failures through these types alone.

use std::fmt;

use opendal::Operator;

/// A setting that cannot work: a site URI, option or credential, a dataset path or an
/// object filter. `field` names it as a client wrote it (`uri`, `options[endpoint]`,
/// `credentials[account_key]`, `filter.include`), so the control plane answers
/// `InvalidArgument` with the offending field first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: String,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// What a caller can do about a failed object operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object (or bucket, or upload) does not exist.
    NotFound,
    /// The credentials are wrong or lack the permission. Never retried: a retry meets
    /// the same refusal, and a wrong key retried in a loop can lock an account.
    PermissionDenied,
    /// A network failure, a timeout, throttling, a 5xx, or the source changing while it
    /// was read: the same operation may succeed if tried again.
    Temporary,
    /// The request cannot succeed as made: an unsupported operation, a directory where
    /// an object was expected, a failed precondition, an invalid configuration.
    Invalid,
    /// Anything else; not retried.
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Temporary => "temporary",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation that failed on an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    List,
    Stat,
    Read,
    Write,
    /// A copy the service makes itself (S3 server-side copy).
    Copy,
    Delete,
    Verify,
}

impl Operation {
    /// The name recorded with a failed object (`read`, `write`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::List => "list",
            Operation::Stat => "stat",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Copy => "copy",
            Operation::Delete => "delete",
            Operation::Verify => "verify",
        }
    }

    /// How a message names the operation: `reading s3://b/k: ...`.
    pub fn verb(self) -> &'static str {
        match self {
            Operation::List => "listing",
            Operation::Stat => "stat",
            Operation::Read => "reading",
            Operation::Write => "writing",
            Operation::Copy => "copying server-side to",
            Operation::Delete => "deleting",
            Operation::Verify => "verifying",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The backend's own name for a source that changed while it was read.
const SOURCE_CHANGED: &str = "SourceChanged";

/// A failed operation on one object (or on a listing, with an empty `key`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ObjectError {
    /// The object's key relative to the dataset root.
    pub key: String,
    pub operation: Operation,
    pub kind: ErrorKind,
    /// The backend's own name for the failure: OpenDAL's error kind (`PermissionDenied`),
    /// an S3 error code (`SlowDown`), an I/O error kind; for an operator to search for.
    pub cause: String,
    /// Lowercase, with the object's location: `reading s3://bucket/key: ...`.
    pub message: String,
}

impl ObjectError {
    /// A failure of `operation` on `key` at `location` (the object's printable URL).
    pub fn new(
        location: &str,
        key: &str,
        operation: Operation,
        kind: ErrorKind,
        cause: impl Into<String>,
        detail: impl fmt::Display,
    ) -> Self {
        ObjectError {
            key: key.to_owned(),
            operation,
            kind,
            cause: cause.into(),
            message: format!("{} {location}: {detail}", operation.verb()),
        }
    }

    /// [`ObjectError::new`] for `key` of the dataset `op` is rooted at.
    pub fn at(
        op: &Operator,
        key: &str,
        operation: Operation,
        kind: ErrorKind,
        cause: impl Into<String>,
        detail: impl fmt::Display,
    ) -> Self {
        ObjectError::new(
            &crate::object_url(op, key),
            key,
            operation,
            kind,
            cause,
            detail,
        )
    }

    /// An OpenDAL error on `key` of `op`, classified.
    pub fn from_opendal(
        op: &Operator,
        key: &str,
        operation: Operation,
        err: opendal::Error,
    ) -> Self {
        let mut detail = kind_text(err.kind()).to_owned();
        if !err.message().is_empty() {
            detail.push_str(": ");
            detail.push_str(err.message());
        }
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        ObjectError::new(
            &crate::object_url(op, key),
            key,
            operation,
            classify_opendal(&err),
            format!("{:?}", err.kind()),
            detail,
        )
    }

    /// The source of a copy changed while it was read (its etag, size or modification
    /// time moved): temporary, since copying again takes the new version.
    pub fn source_changed(op: &Operator, key: &str, why: impl fmt::Display) -> Self {
        ObjectError::new(
            &crate::object_url(op, key),
            key,
            Operation::Read,
            ErrorKind::Temporary,
            SOURCE_CHANGED,
            format!("object changed while it was read: {why}"),
        )
    }

    /// A directory where an object was expected: never worth retrying.
    pub fn is_a_directory(op: &Operator, key: &str) -> Self {
        ObjectError::new(
            &crate::object_url(op, key),
            key,
            Operation::Stat,
            ErrorKind::Invalid,
            "IsADirectory",
            "is a directory, not an object",
        )
    }

    /// Retrying the same operation may succeed.
    pub fn is_temporary(&self) -> bool {
        self.kind == ErrorKind::Temporary
    }

    /// Whether this is [`ObjectError::source_changed`].
    pub fn is_source_changed(&self) -> bool {
        self.cause == SOURCE_CHANGED
    }

    /// What is recorded on a failed object: the operation, the kind, the backend's own
    /// name for it and the message, e.g. `write: permission denied (AccessDenied):
    /// writing s3://b/k: HTTP 403: AccessDenied: Access Denied`.
    pub fn reason(&self) -> String {
        format!(
            "{}: {} ({}): {}",
            self.operation, self.kind, self.cause, self.message
        )
    }
}

/// OpenDAL marks transient failures (network, 5xx) temporary; throttling always is;
/// errors that no retry can change never are, whatever status they carry.
pub fn classify_opendal(err: &opendal::Error) -> ErrorKind {
    use opendal::ErrorKind as K;
    match err.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::PermissionDenied => ErrorKind::PermissionDenied,
        K::RateLimited => ErrorKind::Temporary,
        K::ConfigInvalid
        | K::Unsupported
        | K::IsADirectory
        | K::NotADirectory
        | K::IsSameFile
        | K::AlreadyExists
        | K::ConditionNotMatch
        | K::RangeNotSatisfied => ErrorKind::Invalid,
        _ if err.is_temporary() => ErrorKind::Temporary,
        _ => ErrorKind::Other,
    }
}

/// An S3 answer's error, from its HTTP status and error code, classified as
/// [`classify_opendal`] classifies OpenDAL's: a missing key, bucket or upload is not
/// found; a refused or unsigned request is permission denied; throttling, timeouts and
/// server errors are temporary; other client errors are invalid.
pub fn classify_s3(status: u16, code: Option<&str>) -> ErrorKind {
    match code.unwrap_or("") {
        "NoSuchKey" | "NoSuchBucket" | "NoSuchUpload" | "NoSuchVersion" => {
            return ErrorKind::NotFound
        }
        "AccessDenied"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "AllAccessDisabled"
        | "AccountProblem"
        | "ExpiredToken"
        | "InvalidToken" => return ErrorKind::PermissionDenied,
        "SlowDown"
        | "Throttling"
        | "ThrottlingException"
        | "RequestTimeout"
        | "InternalError"
        | "ServiceUnavailable"
        | "RequestTimeTooSkewed" => return ErrorKind::Temporary,
        _ => {}
    }
    match status {
        404 => ErrorKind::NotFound,
        401 | 403 => ErrorKind::PermissionDenied,
        408 | 429 => ErrorKind::Temporary,
        400..=499 => ErrorKind::Invalid,
        500..=599 => ErrorKind::Temporary,
        _ => ErrorKind::Other,
    }
}

fn kind_text(kind: opendal::ErrorKind) -> &'static str {
    use opendal::ErrorKind as K;
    match kind {
        K::Unexpected => "unexpected error",
        K::Unsupported => "unsupported",
        K::ConfigInvalid => "invalid configuration",
        K::NotFound => "not found",
        K::PermissionDenied => "permission denied",
        K::IsADirectory => "is a directory",
        K::NotADirectory => "not a directory",
        K::AlreadyExists => "already exists",
        K::RateLimited => "rate limited",
        K::IsSameFile => "same file",
        K::ConditionNotMatch => "condition not met",
        K::RangeNotSatisfied => "range not satisfiable",
        K::Conflict => "conflict",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opendal_classification_never_retries_permanent_kinds() {
        use opendal::ErrorKind as K;
        let temporary_not_found = opendal::Error::new(K::NotFound, "gone").set_temporary();
        assert_eq!(classify_opendal(&temporary_not_found), ErrorKind::NotFound);
        let denied = opendal::Error::new(K::PermissionDenied, "no").set_temporary();
        assert_eq!(classify_opendal(&denied), ErrorKind::PermissionDenied);
        assert_eq!(
            classify_opendal(&opendal::Error::new(K::RateLimited, "slow down")),
            ErrorKind::Temporary
        );
        assert_eq!(
            classify_opendal(&opendal::Error::new(K::Unexpected, "reset").set_temporary()),
            ErrorKind::Temporary
        );
        assert_eq!(
            classify_opendal(&opendal::Error::new(K::Unexpected, "bad xml")),
            ErrorKind::Other
        );
        assert_eq!(
            classify_opendal(&opendal::Error::new(K::Unsupported, "no")),
            ErrorKind::Invalid
        );
    }

    #[test]
    fn s3_codes_decide_before_statuses() {
        assert_eq!(classify_s3(404, Some("NoSuchKey")), ErrorKind::NotFound);
        assert_eq!(
            classify_s3(403, Some("AccessDenied")),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            classify_s3(403, Some("SignatureDoesNotMatch")),
            ErrorKind::PermissionDenied
        );
        assert_eq!(classify_s3(503, Some("SlowDown")), ErrorKind::Temporary);
        // An error a 200 answer carried: its code decides.
        assert_eq!(
            classify_s3(200, Some("InternalError")),
            ErrorKind::Temporary
        );
        assert_eq!(
            classify_s3(200, Some("AccessDenied")),
            ErrorKind::PermissionDenied
        );
        assert_eq!(classify_s3(412, None), ErrorKind::Invalid);
        assert_eq!(classify_s3(500, None), ErrorKind::Temporary);
        assert_eq!(classify_s3(429, None), ErrorKind::Temporary);
        assert_eq!(classify_s3(301, None), ErrorKind::Other);
    }

    #[test]
    fn the_recorded_reason_keeps_operation_kind_and_cause() {
        let e = ObjectError::new(
            "s3://b/k",
            "k",
            Operation::Write,
            ErrorKind::PermissionDenied,
            "AccessDenied",
            "HTTP 403: Access Denied",
        );
        assert_eq!(e.to_string(), "writing s3://b/k: HTTP 403: Access Denied");
        assert_eq!(
            e.reason(),
            "write: permission denied (AccessDenied): writing s3://b/k: HTTP 403: Access Denied"
        );
        assert!(!e.is_temporary());
    }
}
