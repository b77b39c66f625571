//! Checking what a copy left at the destination, and the forms of xxh3-128 digests
//! Ferry stores and reports.

use ferry_storage::{ObjectError, Operation};
use opendal::Operator;

use super::read::{hash_streamed, stat_file};

/// How thoroughly [`verify_object`] checks the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// The destination's size equals the expected size and, where the copy noted the
    /// etag the store gave it, so does its etag. One stat (or one listing for many
    /// objects); tells the object the copy wrote from any other written over it, but
    /// does not catch corruption that keeps the size in a store without etags.
    Quick,
    /// The destination is read back in full and its xxh3-128 compared.
    Full,
}

/// The answer of [`verify_object`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The destination's size.
    pub destination_size: u64,
    /// xxh3-128 of the destination's bytes; `None` in [`VerifyMode::Quick`].
    pub destination_xxh3: Option<u128>,
    /// The destination's etag, as its stat gave it; `None` in [`VerifyMode::Full`].
    pub destination_etag: Option<String>,
    /// Whether the destination holds what was expected, as far as the mode checks.
    pub matches: bool,
}

/// Checks that `key` at `dst` holds `expected_size` bytes and, in
/// [`VerifyMode::Quick`], the etag `expected_etag` where one is given and the store
/// has etags; in [`VerifyMode::Full`], that their xxh3-128 is `expected_xxh3`. A
/// mismatch is an answer (`matches: false`), not an error; a missing destination object
/// is an error (not found).
pub async fn verify_object(
    dst: &Operator,
    key: &str,
    expected_size: u64,
    expected_xxh3: u128,
    expected_etag: Option<&str>,
    mode: VerifyMode,
) -> Result<Verified, ObjectError> {
    match mode {
        VerifyMode::Quick => {
            let metadata = stat_file(dst, key).await?;
            let (size, etag) = (metadata.content_length(), metadata.etag());
            Ok(Verified {
                destination_size: size,
                destination_xxh3: None,
                destination_etag: etag.map(str::to_owned),
                matches: size == expected_size && etags_agree(expected_etag, etag),
            })
        }
        VerifyMode::Full => {
            let (size, xxh3) = hash_streamed(dst, key).await?;
            Ok(Verified {
                destination_size: size,
                destination_xxh3: Some(xxh3),
                destination_etag: None,
                matches: size == expected_size && xxh3 == expected_xxh3,
            })
        }
    }
}

/// Deletes `key` (source retirement). Deleting an object that does not exist
/// succeeds, so a retried retirement is harmless.
pub async fn delete_object(op: &Operator, key: &str) -> Result<(), ObjectError> {
    op.delete(key)
        .await
        .map_err(|e| ObjectError::from_opendal(op, key, Operation::Delete, e))
}

/// Whether Ferry checks the etags of what it writes to `op`: S3 lists and stats an
/// object with the etag its write returned, so a later, different one means another
/// object took its place. Other stores are left to sizes: only S3's etags are tested
/// against a real server here, and a store whose listing gave the same etag in another
/// form would make every copy look replaced and fail it after one re-copy.
pub(crate) fn keeps_etags(op: &Operator) -> bool {
    op.info().scheme() == "s3"
}

/// Whether an etag found at the destination agrees with the one `expected` of it; an
/// unknown one on either side agrees. S3 quotes etags, and some services leave the
/// quotes out of listings, so they are compared without.
pub(crate) fn etags_agree(expected: Option<&str>, found: Option<&str>) -> bool {
    fn bare(etag: &str) -> &str {
        etag.trim_start_matches("W/").trim_matches('"')
    }
    match (expected, found) {
        (Some(expected), Some(found)) => bare(expected) == bare(found),
        _ => true,
    }
}

/// The MD5 an etag states: S3 names an object written in one request (unencrypted, or
/// encrypted with S3's own keys) by the MD5 of its bytes, 32 hex digits in quotes.
/// `None` for any other form: a multipart upload's (`…-N`), a weak tag, or a service's
/// own kind. An etag of 32 hex digits that is not an MD5 (some services, objects
/// encrypted with the customer's keys) only fails to match, never matches falsely.
pub(crate) fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let hex = etag.strip_prefix('"')?.strip_suffix('"')?;
    hex_128(hex).map(u128::to_be_bytes)
}

/// An xxh3-128 digest as 32 lowercase hex digits, the form Ferry stores and reports.
pub fn xxh3_hex(digest: u128) -> String {
    format!("{digest:032x}")
}

/// A digest string that is not 32 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid xxh3-128 digest {input:?}: expected 32 hex digits")]
pub struct InvalidXxh3 {
    pub input: String,
}

/// Parses the form [`xxh3_hex`] writes (upper-case digits are accepted too).
pub fn parse_xxh3_hex(input: &str) -> Result<u128, InvalidXxh3> {
    hex_128(input).ok_or_else(|| InvalidXxh3 {
        input: input.to_owned(),
    })
}

/// A 128-bit digest written as exactly 32 hex digits (no sign, either case), its first
/// digits the most significant.
fn hex_128(input: &str) -> Option<u128> {
    if input.len() != 32 || !input.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(input, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh3_hex_round_trips() {
        for digest in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        ] {
            let hex = xxh3_hex(digest);
            assert_eq!(hex.len(), 32);
            assert_eq!(hex, hex.to_lowercase());
            assert_eq!(parse_xxh3_hex(&hex).unwrap(), digest);
        }
        assert_eq!(xxh3_hex(1), "00000000000000000000000000000001");
        assert_eq!(
            parse_xxh3_hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF").unwrap(),
            u128::MAX
        );
    }

    #[test]
    fn parse_xxh3_hex_refuses_anything_else() {
        for bad in [
            "",
            "0",
            "+0000000000000000000000000000001",
            "0000000000000000000000000000000g",
            "000000000000000000000000000000001",
            " 0000000000000000000000000000001",
        ] {
            assert!(parse_xxh3_hex(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_etag_states_an_md5_only_in_the_form_of_a_single_request_upload() {
        let md5 = etag_md5("\"9b2cf535f27731c974343645a3985328\"").expect("an MD5 etag");
        assert_eq!(md5[0], 0x9b);
        assert_eq!(md5[15], 0x28);
        for other in [
            "9b2cf535f27731c974343645a3985328",
            "W/\"9b2cf535f27731c974343645a3985328\"",
            "\"9b2cf535f27731c974343645a3985328-2\"",
            "\"9b2cf535f27731c974343645a398532\"",
            "\"9b2cf535f27731c974343645a398532g\"",
            "\"+b2cf535f27731c974343645a3985328\"",
            "\"\"",
        ] {
            assert_eq!(etag_md5(other), None, "{other}");
        }
    }

    #[test]
    fn etags_agree_without_their_quotes_and_when_either_is_unknown() {
        let md5 = "\"9b2cf535f27731c974343645a3985328\"";
        assert!(etags_agree(Some(md5), Some(md5)));
        assert!(etags_agree(
            Some(md5),
            Some("9b2cf535f27731c974343645a3985328")
        ));
        assert!(etags_agree(Some("W/\"abc-2\""), Some("\"abc-2\"")));
        assert!(etags_agree(None, Some(md5)));
        assert!(etags_agree(Some(md5), None));
        assert!(!etags_agree(
            Some(md5),
            Some("\"9b2cf535f27731c974343645a3985329\"")
        ));
        assert!(!etags_agree(Some("\"abc-2\""), Some("\"abc-3\"")));
    }
}
