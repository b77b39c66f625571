//! Keyset pagination: page sizes and opaque page tokens.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use crate::error::{Error, Result};

pub const DEFAULT_PAGE_SIZE: u64 = 100;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// One page of a listing: how many rows, and the sort key to continue after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u64,
    pub after: Option<String>,
}

impl PageRequest {
    /// `page_size` 0 means the default; larger than the maximum is capped, as AIP-158
    /// recommends. The token is the one a previous page returned.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self> {
        let size = match u64::try_from(page_size) {
            Err(_) => return Err(Error::invalid("page_size", "must not be negative")),
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let raw = URL_SAFE_NO_PAD
                .decode(page_token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("k:").map(str::to_owned))
                .ok_or_else(|| {
                    Error::invalid("page_token", "not a token returned by a previous page")
                })?;
            Some(raw)
        };
        Ok(PageRequest { size, after })
    }

    pub fn first(size: u64) -> Self {
        PageRequest { size, after: None }
    }
}

/// A page of results and the token for the next one (empty on the last page).
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: String,
}

impl<T> Page<T> {
    /// Builds a page from up to `size + 1` rows fetched in key order: the extra row only
    /// tells that another page exists.
    pub fn from_rows(mut rows: Vec<T>, size: u64, key: impl Fn(&T) -> String) -> Self {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let next_token = if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|last| encode_token(&key(last)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Page {
            items: rows,
            next_token,
        }
    }
}

fn encode_token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("k:{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let page = Page::from_rows(vec!["a", "b", "c"], 2, |s| s.to_string());
        assert_eq!(page.items, vec!["a", "b"]);
        let next = PageRequest::parse(2, &page.next_token).unwrap();
        assert_eq!(next.after.as_deref(), Some("b"));
        assert!(PageRequest::parse(10, "garbage!").is_err());
        assert!(PageRequest::parse(-1, "").is_err());
        assert_eq!(PageRequest::parse(0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::parse(5000, "").unwrap().size, MAX_PAGE_SIZE);
        let last = Page::from_rows(vec!["a"], 2, |s| s.to_string());
        assert!(last.next_token.is_empty());
    }
}
