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

/// Page sizes and tokens come from clients: any pair is a page or an error naming the
/// field, never a panic; sizes land in 1..=1000; every token a page hands out leads on.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn token_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,40}",
            "\\PC{0,20}".prop_map(|k| URL_SAFE_NO_PAD.encode(k)),
            "\\PC{0,20}".prop_map(|k| encode_token(&k)),
        ]
    }

    proptest! {
        #[test]
        fn any_size_and_token_is_a_page_or_an_error_naming_the_field(
            size in any::<i32>(),
            token in token_like(),
        ) {
            match PageRequest::parse(size, &token) {
                Ok(page) => {
                    prop_assert!((1..=MAX_PAGE_SIZE).contains(&page.size));
                    let expected = if size == 0 { DEFAULT_PAGE_SIZE } else { (size as u64).min(MAX_PAGE_SIZE) };
                    prop_assert_eq!(page.size, expected);
                    prop_assert_eq!(page.after.is_none(), token.is_empty());
                }
                Err(Error::InvalidArgument { field, .. }) => {
                    prop_assert_eq!(field == "page_size", size < 0);
                    prop_assert!(field == "page_size" || field == "page_token");
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn every_next_token_leads_on_from_its_last_row(
            keys in prop::collection::vec("\\PC{0,40}", 2..20),
            size in 1..10u64,
        ) {
            let page = Page::from_rows(keys.clone(), size, Clone::clone);
            if keys.len() as u64 > size {
                let next = PageRequest::parse(size as i32, &page.next_token)?;
                prop_assert_eq!(next.after.as_ref(), page.items.last());
            } else {
                prop_assert!(page.next_token.is_empty());
            }
        }
    }
}
