//! The SDK's one error type: what went wrong talking to the control plane, classified
//! by the gRPC code a caller would act on.

use std::error::Error as StdError;

use tonic::Code;

/// Everything a [`Client`](crate::Client) call can fail with.
///
/// Every variant maps to a gRPC [`Code`] through [`Error::code`], so callers branch on one
/// thing whether the failure happened locally (bad input, no connection) or on the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The control plane could not be reached when connecting.
    #[error("cannot reach the Ferry control plane at {endpoint}: {}", cause_chain(.source))]
    Connect {
        /// The endpoint as it was dialled, scheme included.
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The server answered with a non-OK status. Its code and message are kept as sent.
    #[error("{}", describe_status(.0))]
    Rpc(#[from] tonic::Status),
    /// The caller's input was rejected before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidInput(String),
    /// The server's answer broke the protocol's guarantees (a required field missing, a
    /// page token that never advances).
    #[error("unexpected answer from the control plane: {0}")]
    Protocol(String),
}

impl Error {
    /// The gRPC code of the failure: the server's own code for [`Error::Rpc`],
    /// `Unavailable` for a failed connection, `InvalidArgument` for rejected input and
    /// `Internal` for a protocol violation.
    pub fn code(&self) -> Code {
        match self {
            Error::Connect { .. } => Code::Unavailable,
            Error::Rpc(status) => status.code(),
            Error::InvalidInput(_) => Code::InvalidArgument,
            Error::Protocol(_) => Code::Internal,
        }
    }

    /// The server's status, when the failure came from the server.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Rpc(status) => Some(status),
            _ => None,
        }
    }
}

/// A gRPC code in plain lowercase words, as used in messages: `NotFound` is "not found".
pub fn code_words(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

fn describe_status(status: &tonic::Status) -> String {
    let words = code_words(status.code());
    let mut parts: Vec<String> = Vec::new();
    if !status.message().is_empty() {
        parts.push(status.message().to_owned());
    }
    // A status made on this side of the wire (a refused connection, a broken stream)
    // keeps its cause, which says more than tonic's message ("tcp connect error").
    let mut next = StdError::source(status);
    while let Some(cause) = next {
        let message = cause.to_string();
        if !message.is_empty() && !parts.iter().any(|p| p.contains(&message)) {
            parts.push(message);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        words.to_owned()
    } else {
        format!("{words}: {}", parts.join(": "))
    }
}

/// The messages of an error's causes joined with ": ", skipping the outermost one when it
/// has causes (tonic's "transport error" says nothing) and messages already included.
/// A failed TLS handshake reads as what rustls or the server's alert said.
pub fn cause_chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn StdError> = error.source();
    while let Some(cause) = next {
        let message = cause.to_string();
        if !parts.iter().any(|p| p.contains(&message)) {
            parts.push(message);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_errors_read_as_code_words_then_message() {
        let err = Error::from(tonic::Status::not_found("site foo not found"));
        assert_eq!(err.to_string(), "not found: site foo not found");
        assert_eq!(err.code(), Code::NotFound);
        assert!(err.status().is_some());

        let bare = Error::from(tonic::Status::new(Code::AlreadyExists, ""));
        assert_eq!(bare.to_string(), "already exists");
    }

    #[test]
    fn local_statuses_carry_their_cause() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = tonic::Status::from_error(Box::new(refused));
        let message = Error::from(status).to_string();
        assert_eq!(message, "unknown error: refused");
        let mut wrapped = tonic::Status::unavailable("tcp connect error");
        wrapped.set_source(std::sync::Arc::new(std::io::Error::other(
            "connection refused",
        )));
        assert_eq!(
            Error::from(wrapped).to_string(),
            "unavailable: tcp connect error: connection refused"
        );
    }

    #[test]
    fn local_errors_have_codes() {
        let err = Error::InvalidInput("site name is empty".into());
        assert_eq!(err.to_string(), "invalid argument: site name is empty");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(Error::Protocol("x".into()).code(), Code::Internal);
    }
}
