//! The control plane's one error type. Every layer returns it; `grpc::status` maps it to
//! a `tonic::Status` in exactly one place.

/// What went wrong, as a small closed set of kinds a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong; `field` names the offending field.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the system's state does not allow it now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller did not prove who it is.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// Lost a race with a concurrent change; the client may retry.
    #[error("{0}")]
    Conflict(String),
    /// The capability exists in the API but not yet in this build.
    #[error("{0}")]
    Unimplemented(String),
    /// A dependency (database, broker) could not be reached; retrying may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected state; the detail goes to the log, not the client.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(kind: &'static str, id: impl std::fmt::Display) -> Self {
        Error::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    pub fn already_exists(kind: &str, name: impl std::fmt::Display) -> Self {
        Error::AlreadyExists(format!("{kind} {name} already exists"))
    }

    /// Prefixes the field of an `InvalidArgument` with the enclosing message's name, so
    /// a nested validation error reads `site.prices.egress_per_gb: ...`.
    pub fn within(self, parent: &str) -> Self {
        match self {
            Error::InvalidArgument { field, reason } => Error::InvalidArgument {
                field: format!("{parent}.{field}"),
                reason,
            },
            other => other,
        }
    }
}

/// A setting the storage layer refused, named by its field.
impl From<ferry_storage::InvalidField> for Error {
    fn from(e: ferry_storage::InvalidField) -> Self {
        Error::InvalidArgument {
            field: e.field,
            reason: e.reason,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
