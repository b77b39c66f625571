//! The bearer token a [`Client`](crate::Client) sends on every call, as the
//! `authorization` metadata the control plane requires.

use std::sync::Arc;

use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::Channel,
    Request, Status,
};

use crate::Error;

/// The transport every stub of a [`Client`](crate::Client) uses: its channel, with the
/// client's token added to each call.
pub type Transport = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to each call, when the client has a token.
#[derive(Clone, Default)]
pub struct Bearer {
    /// Marked sensitive: tonic and hyper never print it.
    value: Option<Arc<MetadataValue<Ascii>>>,
}

impl Bearer {
    /// A token as given by the user (`fy_…`); surrounding whitespace is ignored.
    pub fn new(token: &str) -> Result<Bearer, Error> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::InvalidInput("the token is empty".into()));
        }
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}").parse().map_err(|_| {
            Error::InvalidInput("the token holds characters a header cannot".into())
        })?;
        value.set_sensitive(true);
        Ok(Bearer {
            value: Some(Arc::new(value)),
        })
    }

    pub fn is_set(&self) -> bool {
        self.value.is_some()
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_set() { "Bearer(…)" } else { "None" })
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.value {
            request
                .metadata_mut()
                .insert("authorization", MetadataValue::clone(value));
        }
        // The caller's span becomes the parent of the control plane's.
        ferry_telemetry::propagation::inject_grpc(request.metadata_mut());
        Ok(request)
    }
}

/// Reads a token from a file: its first line, trimmed (as `ferry-control-plane` writes
/// `admin.token`).
pub fn read_token_file(path: &std::path::Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidInput(format!("token file {}: {e}", path.display())))?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(Error::InvalidInput(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_in_the_authorization_metadata_and_never_prints() {
        let mut bearer = Bearer::new(" fy_secret-canary\n").unwrap();
        assert_eq!(format!("{bearer:?}"), "Bearer(…)");
        let request = bearer.call(Request::new(())).unwrap();
        let value = request.metadata().get("authorization").unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer fy_secret-canary");
        assert!(!format!("{value:?}").contains("canary"));
        assert!(Bearer::new("  ").is_err());
        assert!(Bearer::new("fy_\u{7f}x").is_err());
        let mut none = Bearer::default();
        assert!(none.call(Request::new(())).unwrap().metadata().is_empty());
    }

    #[test]
    fn a_token_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "fy_abc\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "fy_abc");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_token_file(&path).is_err());
        assert!(read_token_file(&dir.path().join("missing")).is_err());
    }
}
