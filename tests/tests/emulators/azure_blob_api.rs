//! Azurite's Blob REST API over plain HTTP, as Ferry's Azure code will speak it: block
//! blobs built from Put Block and Put Block List, listing pages, user metadata,
//! content types and ranged reads. Requests carry an account SAS instead of a
//! signature.

use base64::Engine;
use futures::{stream, StreamExt};
use reqwest::{header, StatusCode};

use super::{http, metadata, pattern, MIB};
use ferry_tests::Azurite;

const CONTAINER: &str = "api";
/// The service version Ferry's requests name (Azurite is run to accept any).
const VERSION: &str = "2021-08-06";

struct Api {
    azurite: Azurite,
    sas: String,
    http: reqwest::Client,
}

fn encoded(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Block ids are base64 of equally long strings, as the service requires within a blob.
fn block_id(n: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("block-{n:06}"))
}

/// The text of every `<tag>` element in `xml`, in order.
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once(close.as_str()).map(|(text, _)| text))
        .collect()
}

impl Api {
    async fn start() -> Api {
        let azurite = Azurite::start().await;
        azurite.create_container(CONTAINER).await;
        let sas = azurite.account_sas().await;
        Api {
            azurite,
            sas,
            http: http(),
        }
    }

    /// The URL of `blob` (or of the container when empty) with `query` and the SAS.
    fn url(&self, blob: &str, query: &str) -> String {
        let path = match blob {
            "" => String::new(),
            blob => format!(
                "/{}",
                blob.split('/').map(encoded).collect::<Vec<_>>().join("/")
            ),
        };
        let query = match query {
            "" => String::new(),
            query => format!("{query}&"),
        };
        format!(
            "{}/{CONTAINER}{path}?{query}{}",
            self.azurite.endpoint(),
            self.sas
        )
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("x-ms-version", VERSION)
    }

    async fn put_blob(&self, blob: &str, body: Vec<u8>, content_type: &str) -> reqwest::Response {
        self.request(reqwest::Method::PUT, self.url(blob, ""))
            .header("x-ms-blob-type", "BlockBlob")
            .header(header::CONTENT_TYPE, content_type)
            .header("x-ms-meta-owner", "team-a")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Put Block: block `n` of `blob`; asserts it was taken.
    async fn put_block(&self, blob: &str, n: usize, body: Vec<u8>) {
        let query = format!("comp=block&blockid={}", encoded(&block_id(n)));
        let put = self
            .request(reqwest::Method::PUT, self.url(blob, &query))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = put.status();
        assert_eq!(status, StatusCode::CREATED, "{}", put.text().await.unwrap());
    }

    /// Put Block List: commits blocks `0..count` of `blob`, with `headers` (content
    /// type, metadata) for the blob.
    async fn commit(
        &self,
        blob: &str,
        count: usize,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let list: String = (0..count)
            .map(|n| format!("<Latest>{}</Latest>", block_id(n)))
            .collect();
        let mut request = self.request(reqwest::Method::PUT, self.url(blob, "comp=blocklist"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{list}</BlockList>"
            ))
            .send()
            .await
            .unwrap()
    }

    /// Get Block List of `blob`, committed and uncommitted blocks.
    async fn block_list(&self, blob: &str) -> String {
        let url = self.url(blob, "comp=blocklist&blocklisttype=all");
        let response = self
            .request(reqwest::Method::GET, url)
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    }

    /// One page of List Blobs with `query` (already encoded).
    async fn list(&self, query: &str) -> String {
        let response = self
            .request(
                reqwest::Method::GET,
                self.url("", &format!("restype=container&comp=list&{query}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "listing ?{query}");
        response.text().await.unwrap()
    }
}

#[tokio::test]
async fn put_block_list_commits_blocks_into_one_blob() {
    let api = Api::start().await;
    let blob = "dir/blocks.bin";
    let sizes = [4 * MIB, 4 * MIB, MIB + 3];
    let data = pattern(sizes.iter().sum(), 13);
    let mut offset = 0;
    for (n, size) in sizes.into_iter().enumerate() {
        api.put_block(blob, n, data[offset..offset + size].to_vec())
            .await;
        offset += size;
    }

    // Uncommitted blocks are listed, but the blob does not exist yet.
    let blocks = api.block_list(blob).await;
    let uncommitted = blocks.split("<UncommittedBlocks>").nth(1).unwrap();
    assert_eq!(elements(uncommitted, "Name").len(), 3, "{blocks}");
    assert_eq!(
        elements(uncommitted, "Size"),
        ["4194304", "4194304", "1048579"]
    );
    let missing = api
        .request(reqwest::Method::GET, api.url(blob, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["x-ms-error-code"], "BlobNotFound");

    let commit = api
        .commit(
            blob,
            3,
            &[
                ("x-ms-blob-content-type", "application/x-ferry-test"),
                ("x-ms-meta-owner", "team-a"),
                ("x-ms-meta-MixedCase", "Yes"),
            ],
        )
        .await;
    let etag = commit.headers().get(header::ETAG).cloned();
    assert_eq!(
        commit.status(),
        StatusCode::CREATED,
        "{}",
        commit.text().await.unwrap()
    );

    let get = api
        .request(reqwest::Method::GET, api.url(blob, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    let headers = get.headers().clone();
    assert_eq!(headers.get(header::ETAG), etag.as_ref());
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-ferry-test");
    assert_eq!(headers["x-ms-blob-type"], "BlockBlob");
    assert_eq!(headers["x-ms-meta-owner"], "team-a");
    assert_eq!(headers["x-ms-meta-mixedcase"], "Yes");
    assert_eq!(get.bytes().await.unwrap(), data);
    // As on Azure, a blob committed from blocks has no Content-MD5 unless the commit
    // sets x-ms-blob-content-md5.
    assert!(!headers.contains_key("content-md5"));

    let committed = api.block_list(blob).await;
    assert!(committed.contains("<UncommittedBlocks/>"), "{committed}");

    let sdk = api.azurite.read_back(CONTAINER, blob).await;
    assert_eq!(sdk[blob].bytes, data);
    assert_eq!(
        sdk[blob].content_type.as_deref(),
        Some("application/x-ferry-test")
    );
    // Azure keeps metadata names as sent, and reqwest (so OpenDAL) sends every
    // header name in lowercase: a name's case does not survive.
    assert_eq!(
        sdk[blob].metadata,
        metadata(&[("owner", "team-a"), ("mixedcase", "Yes")])
    );
}

#[tokio::test]
async fn listing_pages_by_maxresults_and_marker() {
    let api = Api::start().await;
    let keys: Vec<String> = (0..1200).map(|i| format!("list/{i:05}")).collect();
    let api = &api;
    stream::iter(&keys)
        .for_each_concurrent(16, |key| async move {
            let put = api
                .put_blob(key, key.as_bytes().to_vec(), "text/plain")
                .await;
            assert_eq!(put.status(), StatusCode::CREATED, "putting {key}");
        })
        .await;

    let mut listed = Vec::new();
    let mut pages = Vec::new();
    let mut marker = String::new();
    loop {
        let page = api
            .list(&format!(
                "prefix=list%2F&maxresults=500&marker={}",
                encoded(&marker)
            ))
            .await;
        let names = elements(&page, "Name");
        pages.push(names.len());
        listed.extend(names.into_iter().map(str::to_owned));
        match elements(&page, "NextMarker").first() {
            Some(next) if !next.is_empty() => marker = (*next).to_owned(),
            _ => break,
        }
    }
    assert_eq!(pages, [500, 500, 200]);
    assert_eq!(listed, keys);

    // Without maxresults a page holds up to 5,000, as Azure's do.
    let all = api.list("prefix=list%2F").await;
    assert_eq!(elements(&all, "Name").len(), 1200);
}

#[tokio::test]
async fn put_blob_keeps_content_type_and_metadata_and_ranges_answer_206() {
    let api = Api::start().await;
    let data = pattern(300_000, 17);
    let put = api.put_blob("one.bin", data.clone(), "image/png").await;
    assert_eq!(put.status(), StatusCode::CREATED);
    assert!(put.headers().contains_key("content-md5"));

    // Metadata names must be C# identifiers, as on Azure: no hyphens.
    let refused = api
        .request(reqwest::Method::PUT, api.url("two.bin", ""))
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-meta-content-owner", "team-a")
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    let code = refused.headers().get("x-ms-error-code").cloned();
    assert_eq!(
        (refused.status(), code),
        (
            StatusCode::BAD_REQUEST,
            Some("InvalidMetadata".parse().unwrap())
        ),
        "{}",
        refused.text().await.unwrap()
    );

    let head = api
        .request(reqwest::Method::HEAD, api.url("one.bin", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[header::CONTENT_TYPE], "image/png");
    assert_eq!(head.headers()[header::CONTENT_LENGTH], "300000");
    assert_eq!(head.headers()["x-ms-meta-owner"], "team-a");

    let listing = api.list("prefix=one&include=metadata").await;
    assert_eq!(elements(&listing, "Content-Type"), ["image/png"]);
    assert_eq!(elements(&listing, "owner"), ["team-a"]);

    let ranged = api
        .request(reqwest::Method::GET, api.url("one.bin", ""))
        .header(header::RANGE, "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        ranged.headers()[header::CONTENT_RANGE],
        "bytes 100-199/300000"
    );
    assert_eq!(ranged.bytes().await.unwrap(), data[100..200]);
}

#[tokio::test]
async fn an_empty_put_blob_needs_an_explicit_content_length() {
    let api = Api::start().await;
    // reqwest sends no Content-Length for an empty body; Azure requires one (411
    // MissingContentLengthHeader), and Azurite answers a bare 400.
    let bare = api.put_blob("empty.bin", Vec::new(), "text/plain").await;
    assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
    assert!(!bare.headers().contains_key("x-ms-error-code"));
    assert_eq!(bare.text().await.unwrap(), "");

    let explicit = api
        .request(reqwest::Method::PUT, api.url("empty.bin", ""))
        .header("x-ms-blob-type", "BlockBlob")
        .header(header::CONTENT_LENGTH, "0")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(explicit.status(), StatusCode::CREATED);
    let read = api.azurite.read_back(CONTAINER, "empty.bin").await;
    assert_eq!(read["empty.bin"].bytes, b"");
}

#[tokio::test]
async fn reads_of_4_mib_or_less_carry_an_md5_the_blob_does_not_have() {
    let api = Api::start().await;
    for (blob, size) in [("small.bin", 4 * MIB), ("large.bin", 4 * MIB + 1)] {
        api.put_block(blob, 0, pattern(size, 1)).await;
        let commit = api.commit(blob, 1, &[]).await;
        assert_eq!(commit.status(), StatusCode::CREATED);
    }
    let md5 = |method: reqwest::Method, blob: &'static str| {
        let request = api.request(method, api.url(blob, "")).send();
        async move { request.await.unwrap().headers().contains_key("content-md5") }
    };
    // Quirk: Azurite computes a Content-MD5 for a whole-blob GET of up to 4 MiB
    // when none is stored; Azure sends one only when the blob has it.
    assert!(md5(reqwest::Method::GET, "small.bin").await);
    assert!(!md5(reqwest::Method::HEAD, "small.bin").await);
    assert!(!md5(reqwest::Method::GET, "large.bin").await);
}
