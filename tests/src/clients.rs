//! The independent clients tests use to write to and read back from the Azure Blob
//! and GCS emulators: the Python scripts under `tests/clients/`, each on its service's
//! own SDK (`azure-storage-blob`, `google-cloud-storage`). A test that checks what
//! Ferry wrote never reads it with Ferry's or OpenDAL's code.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    path::{Path, PathBuf},
};

use crate::tools;

/// One object as the service's own client read it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub bytes: Vec<u8>,
    /// `None` when the service reports no content type.
    pub content_type: Option<String>,
    /// User metadata (`x-ms-meta-*`, GCS `metadata`), keys as the service returns them.
    pub metadata: BTreeMap<String, String>,
}

/// One object [`SdkClient::download_all`] wrote to a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    pub key: String,
    /// The file holding its bytes (keys need not be valid file names, so files are
    /// numbered).
    pub path: PathBuf,
    pub size: u64,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A service's own client, aimed at one emulator: a script under `tests/clients/` and
/// the arguments that connect it.
#[derive(Clone, Debug)]
pub struct SdkClient {
    script: PathBuf,
    connection: Vec<String>,
}

impl SdkClient {
    pub(crate) fn new(script: &str, connection: Vec<String>) -> Self {
        SdkClient {
            script: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("clients")
                .join(script),
            connection,
        }
    }

    /// Runs one command of the script and returns what it printed. Panics with the
    /// script's error output if it fails.
    pub async fn run(&self, args: &[OsString]) -> String {
        let python = tools::python();
        let output = tokio::process::Command::new(&python)
            .arg(&self.script)
            .args(&self.connection)
            .args(args)
            // Leaves no __pycache__ in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
        let script = self.script.display();
        assert!(
            output.status.success(),
            "{script} {args:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap_or_else(|e| panic!("{script} {args:?} printed non-UTF-8: {e}"))
    }

    /// Creates a bucket (a container on Azure); panics if the service refuses (it
    /// exists already, say).
    pub async fn create_bucket(&self, bucket: &str) {
        self.run(&["create-bucket".into(), bucket.into()]).await;
    }

    /// Uploads `file` as `bucket`/`key` with the content type and user metadata given
    /// (the service's default content type when `None`).
    pub async fn upload_file(
        &self,
        bucket: &str,
        key: &str,
        file: &Path,
        content_type: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) {
        let mut args: Vec<OsString> = vec![
            "upload".into(),
            bucket.into(),
            key.into(),
            file.into(),
            "--metadata".into(),
            serde_json::to_string(metadata)
                .expect("string maps serialize")
                .into(),
        ];
        if let Some(content_type) = content_type {
            args.extend(["--content-type".into(), content_type.into()]);
        }
        self.run(&args).await;
    }

    /// Uploads `bytes` as `bucket`/`key`, as [`SdkClient::upload_file`] does.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        content_type: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) {
        let temp = tempfile::tempdir().expect("temp dir for an upload");
        let file = temp.path().join("object");
        std::fs::write(&file, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        self.upload_file(bucket, key, &file, content_type, metadata)
            .await;
    }

    /// Deletes `bucket`/`key`; panics if it does not exist.
    pub async fn delete(&self, bucket: &str, key: &str) {
        self.run(&["delete".into(), bucket.into(), key.into()])
            .await;
    }

    /// Downloads every object whose key starts with `prefix` into `into` (an existing
    /// directory), in key order.
    pub async fn download_all(&self, bucket: &str, prefix: &str, into: &Path) -> Vec<Downloaded> {
        self.run(&[
            "download-all".into(),
            bucket.into(),
            prefix.into(),
            into.into(),
        ])
        .await;
        let manifest_path = into.join("manifest.json");
        let manifest = std::fs::read(&manifest_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", manifest_path.display()));
        let manifest: serde_json::Value = serde_json::from_slice(&manifest)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", manifest_path.display()));
        let entries = manifest.as_array().map(Vec::as_slice).unwrap_or_default();
        entries
            .iter()
            .map(|entry| downloaded(entry, into))
            .collect()
    }

    /// Every object under `prefix`, by key, with its bytes, content type and metadata.
    pub async fn read_back(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Object> {
        let temp = tempfile::tempdir().expect("temp dir for a read-back");
        let listed = self.download_all(bucket, prefix, temp.path()).await;
        listed
            .into_iter()
            .map(|d| {
                let bytes = std::fs::read(&d.path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", d.path.display()));
                assert_eq!(
                    bytes.len() as u64,
                    d.size,
                    "{bucket}/{}: the download's length differs from the listed size",
                    d.key
                );
                let object = Object {
                    bytes,
                    content_type: d.content_type,
                    metadata: d.metadata,
                };
                (d.key, object)
            })
            .collect()
    }
}

/// One entry of the manifest `download-all` writes.
fn downloaded(entry: &serde_json::Value, dir: &Path) -> Downloaded {
    let text = |field: &str| entry.get(field).and_then(|v| v.as_str());
    let key = text("key").unwrap_or_else(|| panic!("manifest entry without a key: {entry}"));
    let file = text("file").unwrap_or_else(|| panic!("manifest entry without a file: {entry}"));
    let metadata = entry
        .get("metadata")
        .and_then(|m| m.as_object())
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    Downloaded {
        key: key.to_owned(),
        path: dir.join(file),
        size: entry
            .get("size")
            .and_then(|s| s.as_u64())
            .unwrap_or_default(),
        content_type: text("content_type").map(str::to_owned),
        metadata,
    }
}
