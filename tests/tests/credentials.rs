//! A site's credentials never leave the control plane through its API or its log, and
//! are not stored in clear: a canary secret is searched for everywhere it could leak.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use ferry_proto::v1 as pb;
use ferry_tests::ControlPlane;

const CANARY: &str = "canary-7f3e9b2c-do-not-leak";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn canary_secret_never_appears_in_answers_logs_or_storage() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let credentials: HashMap<String, String> = [
        ("access_key_id".to_string(), "AKIAFERRYTEST".to_string()),
        ("secret_access_key".to_string(), CANARY.to_string()),
    ]
    .into_iter()
    .collect();
    let site = pb::Site {
        name: "bucket".into(),
        uri: "s3://ferry-data/prefix".into(),
        options: [("endpoint".to_string(), "http://127.0.0.1:9000".to_string())]
            .into_iter()
            .collect(),
        tier: pb::Tier::Warm.into(),
        ..Default::default()
    };

    let mut answers = Vec::new();
    let created = client.create_site(site, credentials.clone()).await.unwrap();
    assert_eq!(
        created.credential_keys,
        ["access_key_id", "secret_access_key"]
    );
    answers.push(format!("{created:?}"));
    answers.push(format!("{:?}", client.get_site("bucket").await.unwrap()));
    answers.push(format!("{:?}", client.list_sites(None).await.unwrap()));
    let rotated: HashMap<String, String> = [
        ("access_key_id".to_string(), "AKIAROTATED".to_string()),
        ("secret_access_key".to_string(), format!("{CANARY}-2")),
    ]
    .into_iter()
    .collect();
    let updated = client
        .update_site(
            pb::Site {
                name: "bucket".into(),
                ..Default::default()
            },
            Vec::<String>::new(),
            Some(rotated),
        )
        .await
        .unwrap();
    answers.push(format!("{updated:?}"));
    // A rejected request must not echo the secret back in its error either.
    let bad: HashMap<String, String> = [("password".to_string(), CANARY.to_string())]
        .into_iter()
        .collect();
    let err = client
        .update_site(
            pb::Site {
                name: "bucket".into(),
                ..Default::default()
            },
            Vec::<String>::new(),
            Some(bad),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    answers.push(err.to_string());
    for answer in &answers {
        assert!(
            !answer.contains(CANARY),
            "an RPC answer leaked the secret: {answer}"
        );
        assert!(
            !answer.contains("AKIA"),
            "an RPC answer leaked the key id: {answer}"
        );
    }

    let log = cp.log();
    assert!(
        log.contains("site created"),
        "the log is captured at debug level:\n{log}"
    );
    assert!(!log.contains(CANARY), "the log leaked the secret:\n{log}");

    // At rest: neither the database nor its WAL holds the secret in clear.
    let mut stored = 0;
    for entry in std::fs::read_dir(cp.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        stored += bytes.len();
        assert!(
            !contains(&bytes, CANARY),
            "{} holds the secret in clear",
            path.display()
        );
    }
    assert!(stored > 0);
}
