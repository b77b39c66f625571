//! The in-process S3 server round-trips what other tests rely on: bytes, content type,
//! user metadata, listings and multipart uploads, from both kinds of test runtime.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use aws_sdk_s3::{
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart},
};
use ferry_tests::{s3::error_chain, S3Server};

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
