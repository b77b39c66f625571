//! The one place where a control-plane error becomes a gRPC status.

use tonic::{Code, Status};

use crate::error::Error;

/// Longest message a status carries, in bytes. Messages quote the input they refuse, and
/// a value of megabytes quoted whole makes a `grpc-message` header so large that the
/// client's HTTP/2 stack drops the connection instead of reading the answer.
const MAX_MESSAGE: usize = 1024;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Conflict(_) => Code::Aborted,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        };
        match code {
            // The detail of an internal error may name tables or files; the operator
            // finds it in the log, the client gets a pointer there.
            Code::Internal => {
                tracing::error!(error = %e, "internal error");
                Status::internal(
                    "the request failed inside the control plane; its log has the detail",
                )
            }
            Code::Unavailable => {
                tracing::warn!(error = %e, "dependency unavailable");
                Status::unavailable(bounded(e.to_string()))
            }
            _ => Status::new(code, bounded(e.to_string())),
        }
    }
}

/// `message`, cut at [`MAX_MESSAGE`] bytes (on a character boundary) with a mark that
/// it was.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (cut)");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_codes_with_messages() {
        let s = Status::from(Error::invalid("site.uri", "bad"));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "site.uri: bad");
        let s = Status::from(Error::not_found("site", "x"));
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "site x not found")
        );
        let s = Status::from(Error::Internal("SELECT secret".into()));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("SELECT"));
    }

    /// A refused value of megabytes is quoted in part: the whole would make a header the
    /// client drops the connection over.
    #[test]
    fn long_messages_are_cut_keeping_the_field() {
        let quoted = "é".repeat(3 << 20);
        let s = Status::from(Error::invalid("site.name", format!("'{quoted}' is bad")));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().starts_with("site.name: 'éé"), "{}", s.message());
        assert!(s.message().ends_with("é… (cut)"), "{}", s.message());
        assert!(s.message().len() <= MAX_MESSAGE + "… (cut)".len());
    }
}
