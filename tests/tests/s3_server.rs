//! The in-process S3 server round-trips what other tests rely on: bytes, content type,
//! user metadata, listings and multipart uploads, from both kinds of test runtime; and
//! what aws-sdk-s3 makes of the answers it can give unlike AWS.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart},
};
use ferry_tests::{
    s3::{error_chain, Answer, ServerSideOp},
    S3Server,
};

const MIB: usize = 1024 * 1024;

/// Deterministic, non-repeating-looking bytes so a misplaced part shows up as a diff.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8 ^ seed)
        .collect()
}

async fn get_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {}", error_chain(&e)));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn put_get_round_trips_bytes_content_type_and_metadata() {
    let server = S3Server::start().await;
    server.create_bucket("roundtrip").await;
    let client = server.client();

    let body = pattern(300_000, 7);
    let key = "dir with space/naïve 文件.txt";
    client
        .put_object()
        .bucket("roundtrip")
        .key(key)
        .content_type("text/plain; charset=utf-8")
        .metadata("owner", "team-a")
        .metadata("origin", "s3-server-test")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put: {}", error_chain(&e)));

    let head = client
        .head_object()
        .bucket("roundtrip")
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head: {}", error_chain(&e)));
    assert_eq!(head.content_length(), Some(body.len() as i64));
    assert_eq!(head.content_type(), Some("text/plain; charset=utf-8"));
    let expected: HashMap<String, String> = [
        ("owner".to_owned(), "team-a".to_owned()),
        ("origin".to_owned(), "s3-server-test".to_owned()),
    ]
    .into_iter()
    .collect();
    assert_eq!(head.metadata(), Some(&expected));

    assert_eq!(get_bytes(&client, "roundtrip", key).await, body);
}

#[tokio::test]
async fn empty_object_round_trips() {
    let server = S3Server::start().await;
    server.create_bucket("empty").await;
    let client = server.client();
    client
        .put_object()
        .bucket("empty")
        .key("zero")
        .body(ByteStream::from(Vec::new()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put: {}", error_chain(&e)));
    assert!(get_bytes(&client, "empty", "zero").await.is_empty());
}

#[tokio::test]
async fn listing_is_recursive_and_paginated() {
    let server = S3Server::start().await;
    server.create_bucket("listing").await;
    let client = server.client();

    let keys = [
        "a/b/c.bin",
        "a/d.bin",
        "top.bin",
        "z/ü/ß.bin",
        "z/ü/space d.bin",
    ];
    for (i, key) in keys.iter().enumerate() {
        client
            .put_object()
            .bucket("listing")
            .key(*key)
            .body(ByteStream::from(vec![b'x'; i + 1]))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {}", error_chain(&e)));
    }

    let mut listed = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket("listing")
        .max_keys(2)
        .into_paginator()
        .send();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("list: {}", error_chain(&e)));
        page_count += 1;
        for object in page.contents() {
            listed.push((
                object.key().unwrap().to_owned(),
                object.size().unwrap() as usize,
            ));
        }
    }
    assert!(
        page_count >= 3,
        "5 keys at 2 per page, got {page_count} pages"
    );
    listed.sort();
    let mut expected: Vec<(String, usize)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| ((*k).to_owned(), i + 1))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);

    let under_z = client
        .list_objects_v2()
        .bucket("listing")
        .prefix("z/")
        .send()
        .await
        .unwrap();
    assert_eq!(under_z.contents().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_round_trips_bytes_and_attributes() {
    let server = S3Server::start().await;
    server.create_bucket("multipart").await;
    let client = server.client();

    let body = pattern(12 * MIB + 12_345, 3);
    let key = "nested/prefix/large object.bin";
    let upload = client
        .create_multipart_upload()
        .bucket("multipart")
        .key(key)
        .content_type("application/octet-stream")
        .metadata("checksum", "none")
        .send()
        .await
        .unwrap_or_else(|e| panic!("create multipart: {}", error_chain(&e)));
    let upload_id = upload.upload_id().unwrap().to_owned();

    let mut parts = Vec::new();
    for (i, chunk) in body.chunks(5 * MIB).enumerate() {
        let number = i as i32 + 1;
        let part = client
            .upload_part()
            .bucket("multipart")
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload part {number}: {}", error_chain(&e)));
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    assert_eq!(parts.len(), 3);
    client
        .complete_multipart_upload()
        .bucket("multipart")
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete multipart: {}", error_chain(&e)));

    let head = client
        .head_object()
        .bucket("multipart")
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(body.len() as i64));
    assert_eq!(head.content_type(), Some("application/octet-stream"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("checksum"))
            .map(String::as_str),
        Some("none")
    );
    assert_eq!(get_bytes(&client, "multipart", key).await, body);
}

#[tokio::test]
async fn missing_object_is_not_found_and_wrong_secret_is_refused() {
    let server = S3Server::start().await;
    server.create_bucket("errors").await;

    let missing = server
        .client()
        .get_object()
        .bucket("errors")
        .key("absent")
        .send()
        .await
        .expect_err("absent key");
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_no_such_key()),
        "{}",
        error_chain(&missing)
    );

    let wrong = aws_sdk_s3::Client::from_conf(
        server
            .client()
            .config()
            .to_builder()
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                server.access_key(),
                "not-the-secret",
                None,
                None,
                "wrong",
            ))
            .build(),
    );
    let refused = wrong
        .list_objects_v2()
        .bucket("errors")
        .send()
        .await
        .expect_err("a wrong secret must be refused");
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{}",
        error_chain(&refused)
    );
}

#[tokio::test]
async fn dropping_the_server_closes_the_port() {
    let server = S3Server::start().await;
    let endpoint = server.endpoint();
    let addr = endpoint.trim_start_matches("http://").to_owned();
    assert!(tokio::net::TcpStream::connect(&addr).await.is_ok());
    drop(server);
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "{endpoint} still accepts connections after drop"
    );
}

// How aws-sdk-s3 takes the answers of S3-compatible servers that are not AWS, and AWS's
// own "200 errors", to the three requests S3 carries out on its side. What the SDK does
// is asserted as observed, so that a change of SDK that changes it fails here first.

/// What one request returned, as a caller of aws-sdk-s3 can tell.
#[derive(Debug)]
struct Outcome {
    /// `SdkError`'s variant, or "Ok".
    variant: &'static str,
    /// The HTTP status of the answer the SDK gave up on (`raw()`).
    status: Option<u16>,
    code: Option<String>,
    message: Option<String>,
    /// [`error_chain`] of the error.
    chain: String,
}

fn outcome<O, E>(result: Result<O, SdkError<E, HttpResponse>>) -> Outcome
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let Err(e) = result else {
        return Outcome {
            variant: "Ok",
            status: None,
            code: None,
            message: None,
            chain: String::new(),
        };
    };
    let variant = match &e {
        SdkError::ConstructionFailure(_) => "ConstructionFailure",
        SdkError::TimeoutError(_) => "TimeoutError",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "ResponseError",
        SdkError::ServiceError(_) => "ServiceError",
        _ => "unknown",
    };
    Outcome {
        variant,
        status: e.raw_response().map(|r| r.status().as_u16()),
        code: e.code().map(str::to_owned),
        message: e.message().map(str::to_owned),
        chain: error_chain(&e),
    }
}

/// Runs `op` once with aws-sdk-s3 against bucket `answers` (which holds `src`, 1000
/// bytes), and tells what it returned and whether the server carried it out: the
/// object is there (by HEAD) or, for UploadPartCopy, the upload holds the part.
async fn run(server: &S3Server, op: ServerSideOp) -> (Outcome, bool) {
    let client = server.client();
    let key = format!("{op:?}");
    let upload = |key: String| {
        let client = client.clone();
        async move {
            let upload = client
                .create_multipart_upload()
                .bucket("answers")
                .key(&key)
                .send()
                .await
                .unwrap();
            upload.upload_id().unwrap().to_owned()
        }
    };
    match op {
        ServerSideOp::CompleteMultipartUpload => {
            let id = upload(key.clone()).await;
            let part = client
                .upload_part()
                .bucket("answers")
                .key(&key)
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from(pattern(100, 1)))
                .send()
                .await
                .unwrap();
            let parts = CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build();
            let sent = client
                .complete_multipart_upload()
                .bucket("answers")
                .key(&key)
                .upload_id(&id)
                .multipart_upload(parts)
                .send()
                .await;
            (outcome(sent), exists(&client, &key).await)
        }
        ServerSideOp::CopyObject => {
            let sent = client
                .copy_object()
                .bucket("answers")
                .key(&key)
                .copy_source("answers/src")
                .send()
                .await;
            (outcome(sent), exists(&client, &key).await)
        }
        ServerSideOp::UploadPartCopy => {
            let id = upload(key.clone()).await;
            let sent = client
                .upload_part_copy()
                .bucket("answers")
                .key(&key)
                .upload_id(&id)
                .part_number(1)
                .copy_source("answers/src")
                .send()
                .await;
            let parts = client
                .list_parts()
                .bucket("answers")
                .key(&key)
                .upload_id(&id)
                .send()
                .await
                .unwrap();
            let copied = parts.parts().iter().any(|p| p.size() == Some(1000));
            (outcome(sent), copied)
        }
    }
}

async fn exists(client: &aws_sdk_s3::Client, key: &str) -> bool {
    match client.head_object().bucket("answers").key(key).send().await {
        Ok(_) => true,
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => false,
        Err(e) => panic!("head {key}: {}", error_chain(&e)),
    }
}

/// A server with bucket `answers` holding `src`, answering every server-side operation
/// as `answer` says.
async fn answering(answer: Answer) -> S3Server {
    let server = S3Server::start().await;
    server.create_bucket("answers").await;
    server
        .client()
        .put_object()
        .bucket("answers")
        .key("src")
        .body(ByteStream::from(pattern(1000, 2)))
        .send()
        .await
        .unwrap();
    server.faults().answer_all(answer);
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_root_fails_each_request_in_the_sdk_though_the_server_carried_it_out() {
    let server = answering(Answer::ForeignRoot).await;
    let expected = [
        (
            ServerSideOp::CompleteMultipartUpload,
            "error parsing XML: encountered invalid XML root: expected \
             CompleteMultipartUploadResult but got StartEl { name: Name { prefix: \"\", \
             local: \"CompleteMultipartUploadResponse\" }",
        ),
        (
            ServerSideOp::CopyObject,
            "error parsing XML: invalid root, expected CopyObjectResult got StartEl { name: \
             Name { prefix: \"\", local: \"CopyObjectResponse\" }",
        ),
        (
            ServerSideOp::UploadPartCopy,
            "error parsing XML: invalid root, expected CopyPartResult got StartEl { name: \
             Name { prefix: \"\", local: \"CopyPartResponse\" }",
        ),
    ];
    for (op, parse_error) in expected {
        let (outcome, carried_out) = run(&server, op).await;
        // A service error (not a ResponseError) of the operation's `Unhandled` kind,
        // with neither code nor message: only its source says what went wrong.
        assert_eq!(outcome.variant, "ServiceError", "{op:?}: {outcome:?}");
        assert_eq!(outcome.status, Some(200), "{op:?}: {outcome:?}");
        assert_eq!(
            (outcome.code.as_deref(), outcome.message.as_deref()),
            (None, None),
            "{op:?}: {outcome:?}"
        );
        assert!(
            outcome
                .chain
                .starts_with(&format!("service error: unhandled error: {parse_error}")),
            "{op:?}: {}",
            outcome.chain
        );
        assert!(carried_out, "{op:?}: the server carried the request out");
    }
    assert_eq!(
        server.faults().foreign_roots(),
        3,
        "the SDK retries none of them"
    );
}

// aws-sdk-s3 (1.157) reads every 200 body whose root is <Error> as an error, for every
// operation but the streaming ones (GetObject, SelectObjectContent, …): a service error
// with the document's code and message, and the answer's status, 200. Its standard
// retry takes InternalError as transient (an S3 customisation) and SlowDown as
// throttling: three attempts in all by default.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_internal_error_is_a_service_error_the_sdk_retries() {
    let message = "We encountered an internal error. Please try again.";
    embedded_error_outcomes("InternalError", message, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_slow_down_is_a_service_error_the_sdk_retries() {
    embedded_error_outcomes("SlowDown", "Please reduce your request rate.", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_access_denied_is_a_service_error_the_sdk_does_not_retry() {
    embedded_error_outcomes("AccessDenied", "Access Denied", 1).await;
}

/// Runs each server-side operation against a server that answers each with a 200
/// whose body is the error `code` (`message`), and checks that the SDK returned it as
/// a service error after `attempts` attempts, and that nothing was done.
async fn embedded_error_outcomes(code: &'static str, message: &str, attempts: usize) {
    let server = answering(Answer::EmbeddedError(code)).await;
    for op in ServerSideOp::ALL {
        let before = server.faults().embedded_errors();
        let (outcome, carried_out) = run(&server, op).await;
        assert_eq!(outcome.variant, "ServiceError", "{op:?}: {outcome:?}");
        assert_eq!(outcome.status, Some(200), "{op:?}: {outcome:?}");
        assert_eq!(outcome.code.as_deref(), Some(code), "{op:?}: {outcome:?}");
        assert_eq!(
            outcome.message.as_deref(),
            Some(message),
            "{op:?}: {outcome:?}"
        );
        assert_eq!(
            outcome.chain,
            format!(
                "service error: unhandled error ({code}): Error {{ code: \"{code}\", \
                 message: \"{message}\" }}"
            ),
            "{op:?}"
        );
        assert!(!carried_out, "{op:?}: as on AWS, nothing was done");
        assert_eq!(
            server.faults().embedded_errors() - before,
            attempts,
            "{op:?}: the SDK's attempts"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_temporary_embedded_error_is_retried_away_by_the_sdk() {
    let server = answering(Answer::Aws).await;
    for op in ServerSideOp::ALL {
        server
            .faults()
            .answer_next(op, 1, Answer::EmbeddedError("InternalError"));
        let (outcome, carried_out) = run(&server, op).await;
        assert_eq!(outcome.variant, "Ok", "{op:?}: {outcome:?}");
        assert!(carried_out, "{op:?}: the SDK's second attempt did it");
    }
    assert_eq!(server.faults().embedded_errors(), 3);
}
