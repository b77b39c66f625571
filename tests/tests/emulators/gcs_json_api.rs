//! fake-gcs-server's JSON API over plain HTTP, as Ferry's GCS code will speak it:
//! resumable uploads (and where the emulator departs from GCS there), listing pages,
//! metadata and ranged reads. Each test names the behaviour it pins.

use futures::{stream, StreamExt};
use reqwest::{header, StatusCode};
use serde_json::Value;

use super::{http, metadata, pattern, KIB};
use ferry_tests::GcsEmulator;

const CHUNK: usize = 256 * KIB;
const BUCKET: &str = "api";

/// A started emulator with bucket [`BUCKET`], and a plain HTTP client.
struct Api {
    gcs: GcsEmulator,
    http: reqwest::Client,
}

fn query_value(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Api {
    async fn start() -> Api {
        let gcs = GcsEmulator::start().await;
        gcs.create_bucket(BUCKET).await;
        Api { gcs, http: http() }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.gcs.endpoint())
    }

    /// Starts a resumable upload of `key` and returns the session URI.
    async fn start_upload(&self, key: &str, object: Value) -> String {
        let response = self
            .http
            .post(self.url(&format!(
                "/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable&name={}",
                query_value(key)
            )))
            .header(header::CONTENT_TYPE, "application/json")
            .body(object.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        location.to_owned()
    }

    /// PUTs `body` to an upload session with `Content-Range: bytes {range}`.
    async fn put_chunk(&self, session: &str, range: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .put(session)
            .header(header::CONTENT_RANGE, format!("bytes {range}"))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// A single-request upload (`uploadType=media`); returns the object resource.
    async fn simple_upload(&self, key: &str, body: Vec<u8>) -> Value {
        let response = self
            .http
            .post(self.url(&format!(
                "/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={}",
                query_value(key)
            )))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "uploading {key}");
        response.json_value().await
    }

    /// The object resource of `key`, or the status when there is none.
    async fn object(&self, key: &str) -> Result<Value, StatusCode> {
        let response = self
            .http
            .get(self.url(&format!("/storage/v1/b/{BUCKET}/o/{}", query_value(key))))
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::OK => Ok(response.json_value().await),
            status => Err(status),
        }
    }

    /// One page of `objects.list` with `query` (already encoded).
    async fn list(&self, query: &str) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/storage/v1/b/{BUCKET}/o?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "listing ?{query}");
        response.json_value().await
    }
}

trait JsonBody {
    async fn json_value(self) -> Value;
}

impl JsonBody for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

fn range_header(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn resumable_upload_takes_256_kib_chunks_then_a_final_one_with_the_total() {
    let api = Api::start().await;
    let data = pattern(2 * CHUNK + 100_000, 3);
    let total = data.len();
    let session = api
        .start_upload(
            "dir/big.bin",
            serde_json::json!({"contentType": "application/x-ferry-test", "metadata": {"owner": "team-a"}}),
        )
        .await;
    let expected = format!(
        "{}/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable&name=dir%2Fbig.bin&upload_id=",
        api.gcs.endpoint()
    );
    assert!(session.starts_with(&expected), "session URI {session}");

    let first = api
        .put_chunk(&session, "0-262143/*", data[..CHUNK].to_vec())
        .await;
    assert_eq!(first.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(range_header(&first), Some("bytes=0-262143"));
    let second = api
        .put_chunk(&session, "262144-524287/*", data[CHUNK..2 * CHUNK].to_vec())
        .await;
    assert_eq!(second.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(range_header(&second), Some("bytes=0-524287"));
    let last = api
        .put_chunk(
            &session,
            &format!("524288-{}/{total}", total - 1),
            data[2 * CHUNK..].to_vec(),
        )
        .await;
    assert_eq!(last.status(), StatusCode::OK);
    let object = last.json_value().await;
    assert_eq!(object["name"], "dir/big.bin");
    assert_eq!(object["size"], total.to_string());
    assert_eq!(object["contentType"], "application/x-ferry-test");
    assert_eq!(object["metadata"]["owner"], "team-a");
    for field in ["etag", "md5Hash", "crc32c", "generation"] {
        let value = object[field].as_str().unwrap_or_default();
        assert!(!value.is_empty(), "{field} missing from {object}");
    }
    // The checksums are those of the whole object, as a one-request upload gets.
    let simple = api.simple_upload("dir/simple.bin", data.clone()).await;
    assert_eq!(object["md5Hash"], simple["md5Hash"]);
    assert_eq!(object["crc32c"], simple["crc32c"]);
    assert_eq!(object["etag"], object["md5Hash"], "the etag is the MD5");

    let stored = api.object("dir/big.bin").await.unwrap();
    assert_eq!(stored["contentType"], "application/x-ferry-test");
    assert_eq!(stored["metadata"], serde_json::json!({"owner": "team-a"}));
    assert_eq!(stored["generation"], object["generation"]);
    let read = api.gcs.read_back(BUCKET, "dir/big.bin").await;
    assert_eq!(read["dir/big.bin"].bytes, data);
}

#[tokio::test]
async fn resumable_upload_of_unknown_size_ends_with_an_empty_put_of_the_total() {
    let api = Api::start().await;
    let data = pattern(CHUNK + 10, 5);
    let session = api.start_upload("stream.bin", serde_json::json!({})).await;
    let first = api
        .put_chunk(&session, "0-262143/*", data[..CHUNK].to_vec())
        .await;
    assert_eq!(first.status(), StatusCode::PERMANENT_REDIRECT);
    let tail = api
        .put_chunk(&session, "262144-262153/*", data[CHUNK..].to_vec())
        .await;
    assert_eq!(tail.status(), StatusCode::PERMANENT_REDIRECT);
    let end = api
        .put_chunk(&session, &format!("*/{}", data.len()), Vec::new())
        .await;
    assert_eq!(end.status(), StatusCode::OK);
    // Quirk: after a `*/TOTAL` request the Range header counts bytes, one past the
    // last index GCS would give.
    assert_eq!(range_header(&end), Some("bytes=0-262154"));
    let object = end.json_value().await;
    assert_eq!(object["size"], data.len().to_string());
    // Quirk: with no content type at the start, the object gets the chunk requests'
    // (none here: the default).
    assert_eq!(object["contentType"], "application/octet-stream");
    let read = api.gcs.read_back(BUCKET, "stream.bin").await;
    assert_eq!(read["stream.bin"].bytes, data);
}

#[tokio::test]
async fn a_status_query_commits_the_upload_instead_of_answering_308() {
    let api = Api::start().await;
    let data = pattern(2 * CHUNK, 9);
    let session = api.start_upload("status.bin", serde_json::json!({})).await;
    let first = api
        .put_chunk(&session, "0-262143/*", data[..CHUNK].to_vec())
        .await;
    assert_eq!(first.status(), StatusCode::PERMANENT_REDIRECT);

    // GCS answers 308 with `Range: bytes=0-262143`; fake-gcs-server takes any range
    // without a start and end as the last request and creates the object.
    let status = api.put_chunk(&session, "*/*", Vec::new()).await;
    assert_eq!(status.status(), StatusCode::OK);
    assert_eq!(range_header(&status), Some("bytes=0-262144"));
    let object = api.object("status.bin").await.unwrap();
    assert_eq!(object["size"], CHUNK.to_string());

    // The session is gone: the rest of the data cannot follow.
    let rest = api
        .put_chunk(&session, "262144-524287/524288", data[CHUNK..].to_vec())
        .await;
    assert_eq!(rest.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn chunks_are_appended_whatever_their_size_or_offset() {
    let api = Api::start().await;
    let session = api.start_upload("loose.bin", serde_json::json!({})).await;
    // Not a multiple of 256 KiB: GCS refuses this for any chunk but the last.
    let odd = api.put_chunk(&session, "0-99/*", pattern(100, 1)).await;
    assert_eq!(odd.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(range_header(&odd), Some("bytes=0-99"));
    // The same chunk again, as a retry would send it: GCS would keep one copy.
    let again = api.put_chunk(&session, "0-99/*", pattern(100, 1)).await;
    assert_eq!(again.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(range_header(&again), Some("bytes=0-99"));
    let last = api
        .put_chunk(&session, "100-199/200", pattern(100, 2))
        .await;
    assert_eq!(last.status(), StatusCode::OK);
    let object = last.json_value().await;
    assert_eq!(
        object["size"], "300",
        "both copies of the first chunk were kept"
    );
}

#[tokio::test]
async fn a_chunk_content_type_replaces_the_one_given_at_the_start() {
    let api = Api::start().await;
    let session = api
        .start_upload("typed.bin", serde_json::json!({"contentType": "text/csv"}))
        .await;
    let last = api
        .http
        .put(&session)
        .header(header::CONTENT_RANGE, "bytes 0-2/3")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(b"a,b".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(last.status(), StatusCode::OK);
    let object = last.json_value().await;
    assert_eq!(object["contentType"], "application/octet-stream");
}

#[tokio::test]
async fn delete_answers_499_but_leaves_the_session_open() {
    let api = Api::start().await;
    let session = api.start_upload("cancel.bin", serde_json::json!({})).await;
    let first = api
        .put_chunk(&session, "0-262143/*", pattern(CHUNK, 4))
        .await;
    assert_eq!(first.status(), StatusCode::PERMANENT_REDIRECT);

    let cancel = api.http.delete(&session).send().await.unwrap();
    assert_eq!(cancel.status().as_u16(), 499, "GCS's answer to a cancel");

    // GCS answers 404 from now on; fake-gcs-server still takes chunks and commits.
    let last = api
        .put_chunk(&session, "262144-262153/262154", pattern(10, 4))
        .await;
    assert_eq!(last.status(), StatusCode::OK);
    assert_eq!(
        api.object("cancel.bin").await.unwrap()["size"],
        (CHUNK + 10).to_string()
    );
}

#[tokio::test]
async fn listing_pages_by_max_results_and_page_token() {
    let api = Api::start().await;
    let keys: Vec<String> = (0..2600).map(|i| format!("list/{i:05}")).collect();
    let api = &api;
    stream::iter(&keys)
        .for_each_concurrent(16, |key| async move {
            api.simple_upload(key, key.as_bytes().to_vec()).await;
        })
        .await;

    let mut listed = Vec::new();
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = "prefix=list%2F&maxResults=1000".to_owned();
        if let Some(token) = &token {
            query.push_str(&format!("&pageToken={}", query_value(token)));
        }
        let page = api.list(&query).await;
        let items = page["items"].as_array().unwrap();
        pages.push(items.len());
        listed.extend(items.iter().map(|o| o["name"].as_str().unwrap().to_owned()));
        match page["nextPageToken"].as_str() {
            Some(next) => {
                // Quirk: the token is the next page's first key, in the clear.
                assert_eq!(next, keys[listed.len()]);
                token = Some(next.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, [1000, 1000, 600]);
    assert_eq!(listed, keys);

    // Quirk: without maxResults everything comes in one page (GCS stops at 1,000),
    // and maxResults above 1,000 is honoured too.
    let all = api.list("prefix=list%2F").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2600);
    assert!(all.get("nextPageToken").is_none());
    let big = api.list("prefix=list%2F&maxResults=5000").await;
    assert_eq!(big["items"].as_array().unwrap().len(), 2600);
}

#[tokio::test]
async fn prefixes_do_not_count_towards_max_results() {
    let api = Api::start().await;
    for key in ["dirs/a/1", "dirs/b/1", "dirs/c", "dirs/d"] {
        api.simple_upload(key, Vec::new()).await;
    }
    let page = api.list("prefix=dirs%2F&delimiter=%2F&maxResults=1").await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dirs/c"]);
    // GCS counts prefixes and objects together; here every page carries the
    // prefixes at or after its token.
    assert_eq!(page["prefixes"], serde_json::json!(["dirs/a/", "dirs/b/"]));
    assert_eq!(page["nextPageToken"], "dirs/d");
    let next = api
        .list("prefix=dirs%2F&delimiter=%2F&maxResults=1&pageToken=dirs%2Fd")
        .await;
    assert_eq!(next["items"][0]["name"], "dirs/d");
    assert!(next.get("nextPageToken").is_none());
}

#[tokio::test]
async fn metadata_survives_and_ranged_reads_answer_206() {
    let api = Api::start().await;
    let data = pattern(600_000, 11);
    let session = api
        .start_upload(
            "ranged.bin",
            serde_json::json!({"contentType": "image/png", "metadata": {"a": "1", "Mixed-Case": "Yes"}}),
        )
        .await;
    let put = api
        .put_chunk(&session, "0-599999/600000", data.clone())
        .await;
    assert_eq!(put.status(), StatusCode::OK);
    let object = api.object("ranged.bin").await.unwrap();
    assert_eq!(object["contentType"], "image/png");
    assert_eq!(
        object["metadata"],
        serde_json::json!({"a": "1", "Mixed-Case": "Yes"})
    );

    let media = api.url("/storage/v1/b/api/o/ranged.bin?alt=media");
    let get = |range: &'static str| {
        let request = api.http.get(&media).header(header::RANGE, range).send();
        async move { request.await.unwrap() }
    };
    let middle = get("bytes=100-199").await;
    assert_eq!(middle.status(), StatusCode::PARTIAL_CONTENT);
    let headers = middle.headers().clone();
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 100-199/600000");
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(
        headers["x-goog-generation"],
        object["generation"].as_str().unwrap()
    );
    let hash = headers["x-goog-hash"].to_str().unwrap();
    assert!(
        hash.contains("crc32c=") && hash.contains("md5="),
        "x-goog-hash: {hash}"
    );
    assert_eq!(headers["x-goog-meta-a"], "1");
    assert_eq!(middle.bytes().await.unwrap(), data[100..200]);

    let open_ended = get("bytes=599990-").await;
    assert_eq!(open_ended.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(open_ended.bytes().await.unwrap(), data[599_990..]);
    let suffix = get("bytes=-10").await;
    assert_eq!(suffix.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(suffix.bytes().await.unwrap(), data[599_990..]);
    let beyond = get("bytes=600000-").await;
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    let sdk = api.gcs.read_back(BUCKET, "ranged.bin").await;
    assert_eq!(
        sdk["ranged.bin"].metadata,
        metadata(&[("a", "1"), ("Mixed-Case", "Yes")])
    );
}
