//! The transfer suite's sites: a mixed dataset, and a dataset on a fresh site of each
//! kind with an independent way in (std::fs for file sites, aws-sdk-s3 for S3 sites).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use aws_sdk_s3::primitives::ByteStream;
use ferry_storage::{SiteAccess, Store};
use ferry_tests::{dataset::noise, s3::error_chain, S3Server};
use secrecy::SecretString;

const MIB: usize = 1024 * 1024;
/// Above the 8 MiB chunk size, so it goes as a 3-part multipart upload.
pub const LARGE: usize = 20 * MIB;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fs,
    Memory,
    S3,
}

pub struct TestObject {
    pub key: &'static str,
    pub bytes: Vec<u8>,
    pub content_type: Option<&'static str>,
    pub metadata: BTreeMap<String, String>,
}

pub fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn dataset() -> Vec<TestObject> {
    vec![
        TestObject {
            key: "empty.bin",
            bytes: Vec::new(),
            content_type: None,
            metadata: BTreeMap::new(),
        },
        TestObject {
            key: "dir with space/naïve 文件.txt",
            bytes: "grüße, 世界\n".repeat(1000).into_bytes(),
            content_type: Some("text/plain; charset=utf-8"),
            metadata: meta(&[("owner", "team-a")]),
        },
        TestObject {
            key: "a/b/c/deep.json",
            bytes: br#"{"nested": true}"#.to_vec(),
            content_type: Some("application/json"),
            metadata: meta(&[("origin", "suite"), ("schema", "v2")]),
        },
        TestObject {
            key: "top.txt",
            bytes: noise(4097, 1),
            content_type: None,
            metadata: BTreeMap::new(),
        },
        TestObject {
            key: "large/blob.bin",
            bytes: noise(LARGE, 2),
            content_type: Some("application/octet-stream"),
            metadata: meta(&[("kind", "large")]),
        },
    ]
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", UNIQUE.fetch_add(1, Ordering::Relaxed))
}

/// A dataset `ds` on a fresh site of one kind, with an independent way in.
pub struct Site {
    pub kind: Kind,
    pub store: Store,
    /// File sites: the dataset directory.
    pub dir: Option<PathBuf>,
    /// S3 sites: the server, bucket and the key prefix of the dataset.
    pub s3: Option<(Arc<S3Server>, String, String)>,
    _temp: Option<tempfile::TempDir>,
}

impl Site {
    pub async fn new(kind: Kind, server: Option<&Arc<S3Server>>) -> Site {
        Site::with_class(kind, server, None).await
    }

    /// A site whose writes get the storage `class`.
    pub async fn with_class(
        kind: Kind,
        server: Option<&Arc<S3Server>>,
        class: Option<&str>,
    ) -> Site {
        let path = "datasets/ds".to_owned();
        match kind {
            Kind::Fs => {
                let temp = tempfile::tempdir().unwrap();
                let root = std::fs::canonicalize(temp.path()).unwrap();
                let access = SiteAccess {
                    uri: format!("file://{}/site root", root.display()),
                    options: BTreeMap::new(),
                    credentials: BTreeMap::new(),
                    path,
                };
                let store = Store::open_with_class(&access, class).unwrap();
                Site {
                    kind,
                    dir: Some(root.join("site root/datasets/ds")),
                    store,
                    s3: None,
                    _temp: Some(temp),
                }
            }
            Kind::Memory => {
                let access = SiteAccess {
                    uri: format!("memory://{}", unique("suite")),
                    options: BTreeMap::new(),
                    credentials: BTreeMap::new(),
                    path,
                };
                let store = Store::open_with_class(&access, class).unwrap();
                Site {
                    kind,
                    store,
                    dir: None,
                    s3: None,
                    _temp: None,
                }
            }
            Kind::S3 => {
                let server = server.expect("an S3 site needs the server").clone();
                let bucket = unique("bucket");
                server.create_bucket(&bucket).await;
                let mut options = BTreeMap::new();
                options.insert("endpoint".into(), server.endpoint());
                options.insert("region".into(), server.region().into());
                options.insert("force_path_style".into(), "true".into());
                let credentials = [
                    ("access_key_id", server.access_key()),
                    ("secret_access_key", server.secret_key()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), SecretString::from(v.to_owned())))
                .collect();
                let access = SiteAccess {
                    uri: format!("s3://{bucket}/site-prefix"),
                    options,
                    credentials,
                    path,
                };
                let store = Store::open_with_class(&access, class).unwrap();
                Site {
                    kind,
                    store,
                    dir: None,
                    s3: Some((server, bucket, "site-prefix/datasets/ds/".to_owned())),
                    _temp: None,
                }
            }
        }
    }

    pub fn file(&self, key: &str) -> PathBuf {
        self.dir.as_deref().unwrap().join(key)
    }

    /// Writes an object without going through the code under test where the backend
    /// allows it (memory has no other way in). Stores what the backend can hold: S3
    /// content type and user metadata, memory the content type, files neither.
    pub async fn seed(&self, object: &TestObject) {
        match self.kind {
            Kind::Fs => {
                let path = self.file(object.key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, &object.bytes).unwrap();
            }
            Kind::Memory => {
                let mut write = self.store.op().write_with(object.key, object.bytes.clone());
                if let Some(content_type) = object.content_type {
                    write = write.content_type(content_type);
                }
                write.await.unwrap();
            }
            Kind::S3 => {
                let (server, bucket, prefix) = self.s3.as_ref().unwrap();
                server
                    .put_object(
                        bucket,
                        &format!("{prefix}{}", object.key),
                        object.bytes.clone(),
                        object.content_type,
                        &object.metadata,
                    )
                    .await;
            }
        }
    }

    /// Reads an object back independently of the code under test (except memory).
    pub async fn read_back(&self, key: &str) -> Vec<u8> {
        match self.kind {
            Kind::Fs => std::fs::read(self.file(key)).unwrap(),
            Kind::Memory => self.store.op().read(key).await.unwrap().to_vec(),
            Kind::S3 => {
                let (server, bucket, prefix) = self.s3.as_ref().unwrap();
                let out = server
                    .client()
                    .get_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("reading back {key}: {}", error_chain(&e)));
                out.body.collect().await.unwrap().into_bytes().to_vec()
            }
        }
    }

    /// Flips one byte in the middle of the object, keeping its size.
    pub async fn corrupt(&self, key: &str) {
        let mut bytes = self.read_back(key).await;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        match self.kind {
            Kind::Fs => std::fs::write(self.file(key), &bytes).unwrap(),
            Kind::Memory => self.store.op().write(key, bytes).await.map(|_| ()).unwrap(),
            Kind::S3 => {
                let (server, bucket, prefix) = self.s3.as_ref().unwrap();
                server
                    .client()
                    .put_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .body(ByteStream::from(bytes))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("corrupting {key}: {}", error_chain(&e)));
            }
        }
    }
}
