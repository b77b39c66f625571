//! Listings s3s-fs 0.14 answers unlike AWS, answered or rewritten here: multipart
//! uploads in progress (which it does not list at all) and object listings with each
//! object's ETag (which it leaves out).

use std::path::Path;

/// `ListMultipartUploads` (`GET /bucket?uploads&prefix=…`), which s3s-fs 0.14 does
/// not implement, answered from the files s3s-fs keeps: each upload in progress has
/// one named `.bucket-<bucket>.object-<key>.upload-<id>.metadata.json` (base64url,
/// unpadded) in its root from CreateMultipartUpload until it completes or aborts.
pub(super) fn list_multipart_uploads(
    root: &Path,
    req: &http::Request<hyper::body::Incoming>,
) -> Option<s3s::HttpResponse> {
    let query = req.uri().query()?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let bucket = req.uri().path().trim_matches('/');
    if req.method() != http::Method::GET
        || bucket.is_empty()
        || bucket.contains('/')
        || !params.iter().any(|(k, _)| k == "uploads")
    {
        return None;
    }
    let prefix = params
        .iter()
        .find(|(k, _)| k == "prefix")
        .map_or("", |(_, v)| v.as_str());
    let decode = |s: &str| {
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).ok()?;
        String::from_utf8(bytes).ok()
    };
    let mut uploads = Vec::new();
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(".bucket-")
            .and_then(|r| r.strip_suffix(".metadata.json"))
        else {
            continue;
        };
        let Some((encoded_bucket, rest)) = rest.split_once(".object-") else {
            continue;
        };
        let Some((encoded_key, upload_id)) = rest.split_once(".upload-") else {
            continue;
        };
        let (Some(b), Some(key)) = (decode(encoded_bucket), decode(encoded_key)) else {
            continue;
        };
        if b != bucket || !key.starts_with(prefix) {
            continue;
        }
        let initiated = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_else(|_| chrono::Utc::now());
        uploads.push((key, upload_id.to_owned(), initiated));
    }
    uploads.sort();
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Bucket>{}</Bucket><Prefix>{}</Prefix><MaxUploads>1000</MaxUploads>\
         <IsTruncated>false</IsTruncated>",
        escape(bucket),
        escape(prefix)
    );
    for (key, upload_id, initiated) in &uploads {
        body.push_str(&format!(
            "<Upload><Key>{}</Key><UploadId>{upload_id}</UploadId>\
             <Initiated>{}</Initiated><StorageClass>STANDARD</StorageClass></Upload>",
            escape(key),
            initiated.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ));
    }
    body.push_str("</ListMultipartUploadsResult>");
    let response = http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/xml")
        .body(s3s::Body::from(body))
        .expect("a well-formed listing");
    Some(response)
}

/// The bucket `req` lists the objects of, if it is such a listing. Listings of
/// multipart uploads never get here: [`list_multipart_uploads`] answers them.
pub(super) fn listed_bucket(req: &http::Request<hyper::body::Incoming>) -> Option<String> {
    let bucket = req.uri().path().trim_matches('/');
    (req.method() == http::Method::GET && !bucket.is_empty() && !bucket.contains('/'))
        .then(|| bucket.to_owned())
}

/// The object listing `body` of `bucket` with an `ETag` in each `Contents`, read from the
/// file where s3s-fs (storing under `root`) keeps each object's etag
/// (`.bucket-<bucket>.object-<key>.internal.json`, base64url, unpadded). An object
/// without that file is left without one.
pub(super) fn with_etags(root: &Path, bucket: &str, body: &str) -> String {
    let encode =
        |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let unescape = |s: &str| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    };
    let etag_of = |key: &str| -> Option<String> {
        let file = root.join(format!(
            ".bucket-{}.object-{}.internal.json",
            encode(bucket),
            encode(key)
        ));
        let info: serde_json::Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        info.get("e_tag")?.as_str().map(str::to_owned)
    };
    let mut parts = body.split("<Contents>");
    let mut out = parts.next().unwrap_or_default().to_owned();
    for contents in parts {
        out.push_str("<Contents>");
        let keyed = contents.split_once("</Key>").and_then(|(before, after)| {
            let key = unescape(before.split_once("<Key>")?.1);
            Some((before, etag_of(&key)?, after))
        });
        match keyed {
            Some((before, etag, after)) => {
                out.push_str(before);
                out.push_str(&format!("</Key><ETag>&quot;{etag}&quot;</ETag>"));
                out.push_str(after);
            }
            None => out.push_str(contents),
        }
    }
    out
}
