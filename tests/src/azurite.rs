//! A private Azurite blob service (Microsoft's Azure Storage emulator, npm `azurite`)
//! per test, on its own port with its own storage directory, and the Azure SDK client
//! that reads back what landed in it.
//!
//! Azurite serves one account, `devstoreaccount1`, with a key Microsoft publishes;
//! requests are path-style: `http://127.0.0.1:PORT/devstoreaccount1/CONTAINER/BLOB`.
//! It runs with `--loose` (unsupported headers are ignored rather than refused) and
//! `--skipApiVersionCheck` (SDKs newer than the emulator are served).

use std::{
    collections::{BTreeMap, HashMap},
    process::Command,
};

use crate::{
    clients::{Object, SdkClient},
    free_port, site_uri,
    tools::{self, ServerProcess},
};

/// The emulator's one account.
pub const ACCOUNT_NAME: &str = "devstoreaccount1";
/// The well-known key of [`ACCOUNT_NAME`], published with Azurite: not a secret.
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    process: ServerProcess,
    port: u16,
    _temp: tempfile::TempDir,
}

impl Azurite {
    /// Starts the blob service on a free port over a fresh directory and waits until
    /// it answers HTTP. Panics, naming what to install, if Azurite or Node is missing.
    pub async fn start() -> Azurite {
        let main = tools::azurite();
        let temp = tempfile::tempdir().expect("temp dir for Azurite");
        let port = free_port();
        let mut command = Command::new("node");
        command
            .arg(&main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(temp.path().join("data"))
            .args(["--disableTelemetry", "--skipApiVersionCheck", "--loose"])
            .current_dir(temp.path());
        let process = ServerProcess::spawn("Azurite", command, temp.path().join("azurite.log"));
        let mut azurite = Azurite {
            process,
            port,
            _temp: temp,
        };
        // An unsigned listing is refused (403), but any answer means it serves.
        let probe = format!("{}?comp=list", azurite.endpoint());
        azurite.process.wait_until_answered(&probe, |_| true).await;
        azurite
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`: the account's blob endpoint, which
    /// container names follow.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT_NAME}", self.port)
    }

    pub fn account_name(&self) -> &str {
        ACCOUNT_NAME
    }

    pub fn account_key(&self) -> &str {
        ACCOUNT_KEY
    }

    /// Azurite's access log so far, for failure messages.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// A Ferry site named `name` on `container`, below `prefix` (none when empty), and
    /// the credentials that open it: the account key.
    pub fn site(
        &self,
        name: &str,
        container: &str,
        prefix: &str,
        tier: ferry_proto::v1::Tier,
    ) -> (ferry_proto::v1::Site, HashMap<String, String>) {
        let site = ferry_proto::v1::Site {
            name: name.into(),
            uri: site_uri("azblob", container, prefix),
            tier: tier.into(),
            options: HashMap::from([
                ("endpoint".to_owned(), self.endpoint()),
                ("account_name".to_owned(), ACCOUNT_NAME.to_owned()),
            ]),
            ..Default::default()
        };
        let credentials = HashMap::from([("account_key".to_owned(), ACCOUNT_KEY.to_owned())]);
        (site, credentials)
    }

    /// Microsoft's own SDK, aimed at this emulator with the account key: uploads,
    /// deletes and downloads as a user of Azure would make them.
    pub fn client(&self) -> SdkClient {
        SdkClient::new(
            "azblob.py",
            vec![
                "--endpoint".into(),
                self.endpoint(),
                "--account".into(),
                ACCOUNT_NAME.into(),
                "--key".into(),
                ACCOUNT_KEY.into(),
            ],
        )
    }

    /// Creates a container; panics if the emulator refuses (it exists already, say).
    pub async fn create_container(&self, name: &str) {
        self.client().create_bucket(name).await;
    }

    /// An account SAS token (no leading `?`) granting everything on every container
    /// for a day: append it to a URL's query to send a request without signing it.
    pub async fn account_sas(&self) -> String {
        let sas = self.client().run(&["account-sas".into()]).await;
        sas.trim().to_owned()
    }

    /// Every blob of `container` under `prefix`, read back with the Azure SDK.
    pub async fn read_back(&self, container: &str, prefix: &str) -> BTreeMap<String, Object> {
        self.client().read_back(container, prefix).await
    }
}
