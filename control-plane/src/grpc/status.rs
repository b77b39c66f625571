//! The one place where a control-plane error becomes a gRPC status.

use tonic::{Code, Status};

use crate::error::Error;

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
                Status::unavailable(e.to_string())
            }
            _ => Status::new(code, e.to_string()),
        }
    }
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
}
