//! Migrations to the other object stores Ferry claims, each on its emulator: Azure Blob
//! on Azurite and GCS on fake-gcs-server. Full verification, then every object read
//! back with the service's own SDK (never OpenDAL), and the dataset switched.

use ferry_tests::{azurite::Azurite, clients::Object, gcs::GcsEmulator};

use super::*;

/// A dataset of files on site "fast", and an agent of it started with `settings`.
struct Files {
    agent: Agent,
    client: Client,
    source: BTreeMap<String, Vec<u8>>,
    _dirs: tempfile::TempDir,
    _cp: ControlPlane,
}

impl Files {
    async fn start(source: BTreeMap<String, Vec<u8>>, settings: &[(&str, &str)]) -> Files {
        let cp = ControlPlane::start().await;
        let client = cp.client().await;
        let dirs = tempfile::tempdir().unwrap();
        write_tree(&dirs.path().join("fast/genome"), &source);
        fs_site(&client, "fast", &dirs.path().join("fast"), pb::Tier::Hot).await;
        dataset(&client, "genome", "fast", "genome").await;
        let agent = Agent::start(&cp, "fast", settings).await;
        Files {
            agent,
            client,
            source,
            _dirs: dirs,
            _cp: cp,
        }
    }

    /// Migrates the dataset to `site` with full verification, and waits until it ends.
    async fn migrate_to(&self, site: &str) -> pb::Job {
        let job = plan(&self.client, "genome", site, pb::VerifyMode::Full, site).await;
        self.completes(&job).await;
        job
    }

    async fn completes(&self, job: &pb::Job) {
        assert_completed(&self.client, job, &self.agent).await;
    }

    /// What the destination's own client read back below `prefix` is the source,
    /// object by object.
    fn assert_held(&self, prefix: &str, held: BTreeMap<String, Object>) {
        let bytes: BTreeMap<String, Vec<u8>> = held
            .into_iter()
            .map(|(k, o)| (k.strip_prefix(prefix).unwrap_or(&k).to_owned(), o.bytes))
            .collect();
        assert_eq!(
            bytes.keys().collect::<Vec<_>>(),
            self.source.keys().collect::<Vec<_>>()
        );
        for (key, expected) in &self.source {
            assert!(
                bytes[key] == *expected,
                "{key}: {} bytes read back, {} expected\n{}",
                bytes[key].len(),
                expected.len(),
                self.agent.log()
            );
        }
    }
}

/// 5 MiB parts, so a 20 MiB file goes in four.
const FIVE_MIB_PARTS: [(&str, &str); 1] = [("FERRY_AGENT_PART_SIZE_MIB", "5")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_migrate_to_azure_blob_verified_and_switched() {
    let files = Files::start(mixed(31, LARGE), &FIVE_MIB_PARTS).await;
    let azurite = Azurite::start().await;
    azurite.create_container("archive").await;
    let (site, credentials) = azurite.site("vault", "archive", "ferry", pb::Tier::Cold);
    files.client.create_site(site, credentials).await.unwrap();

    let job = files.migrate_to("vault").await;
    files.assert_held(
        "ferry/genome/",
        azurite.read_back("archive", "ferry/genome/").await,
    );
    transfer::assert_all_verified(&files.client, &job, files.source.len()).await;
    assert_switched(&files.client, "genome", "vault").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_migrate_to_gcs_in_resumable_sessions_verified_and_switched() {
    let files = Files::start(mixed(32, LARGE), &FIVE_MIB_PARTS).await;
    let gcs = GcsEmulator::start().await;
    gcs.create_bucket("archive").await;
    let (site, credentials) = gcs.site("vault", "archive", "ferry", pb::Tier::Cold);
    files.client.create_site(site, credentials).await.unwrap();

    let job = files.migrate_to("vault").await;
    files.assert_held(
        "ferry/genome/",
        gcs.read_back("archive", "ferry/genome/").await,
    );
    transfer::assert_all_verified(&files.client, &job, files.source.len()).await;
    assert_switched(&files.client, "genome", "vault").await;
    assert!(
        files
            .agent
            .log()
            .contains("object uploaded through a resumable session"),
        "the large file went through a session"
    );
}

/// An agent killed in the middle of a GCS session: the restarted agent asks the session
/// how much it holds and sends the rest, and the object arrives whole. On
/// gcp-storage-emulator, which answers that question as GCS does (fake-gcs-server
/// finishes the object instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_session_resumes_the_gcs_upload() {
    const SIZE: usize = 60 << 20;
    const PARTS: usize = SIZE / (5 << 20);
    let settings = [
        ("FERRY_AGENT_PART_SIZE_MIB", "5"),
        ("FERRY_AGENT_FAULTS__PAUSE_AFTER_PART_MS", "300"),
    ];
    let mut files = Files::start(one_large_file(33, SIZE), &settings).await;
    let gcs = GcsEmulator::start_gcp_storage_emulator().await;
    gcs.create_bucket("archive").await;
    let (site, credentials) = gcs.site("vault", "archive", "ferry", pb::Tier::Cold);
    files.client.create_site(site, credentials).await.unwrap();
    let job = plan(
        &files.client,
        "genome",
        "vault",
        pb::VerifyMode::Full,
        "resume",
    )
    .await;

    let journalled = |objects: &[pb::JobObject]| {
        objects
            .first()
            .and_then(|o| o.upload.as_ref())
            .map_or(0, |u| u.parts.len())
    };
    let before = wait_for_objects(&files.client, &job.id, TIMEOUT, |o| journalled(o) >= 3).await;
    files.agent.kill();
    assert!(journalled(&before) < PARTS, "the kill came mid-session");

    files.agent.restart().await;
    files.completes(&job).await;
    files.assert_held(
        "ferry/genome/",
        gcs.read_back("archive", "ferry/genome/").await,
    );
    let log = files.agent.log();
    assert!(
        log.contains("resuming a gcs session"),
        "the restarted agent continued the session:\n{log}"
    );
    assert!(
        !log.contains("cannot be resumed") && !log.contains("cannot be trusted"),
        "and did not start over:\n{log}"
    );
    let object = &files.client.list_job_objects(&job.id, None).await.unwrap()[0];
    assert_eq!(object.status, pb::ObjectStatus::Verified as i32);
    assert!(
        object.upload.is_none(),
        "a finished session is no longer recorded"
    );
}
