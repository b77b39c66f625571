//! Test datasets: generated content with the awkward cases (empty objects, spaces and
//! unicode in keys, deep prefixes, objects above the multipart threshold), and
//! independent ways to read them back; waiting on jobs and asking for advice.

use std::{collections::BTreeMap, path::Path, time::Duration};

use ferry_proto::v1 as pb;

/// Keys and contents of the mixed dataset; deterministic for a seed.
pub fn mixed(seed: u64, large_bytes: usize) -> BTreeMap<String, Vec<u8>> {
    let mut objects = BTreeMap::new();
    objects.insert("empty.bin".to_owned(), Vec::new());
    objects.insert("dir with space/naïve 文件.txt".to_owned(), bytes(seed, 777));
    objects.insert("a/b/c/deep.dat".to_owned(), bytes(seed + 1, 4096));
    objects.insert("big/large.bin".to_owned(), bytes(seed + 2, large_bytes));
    for i in 0..12 {
        objects.insert(
            format!("reads/sample-{i:02}.fastq"),
            bytes(seed + 10 + i, 1000 + 313 * i as usize),
        );
    }
    objects
}

/// Pseudo-random bytes from a xorshift generator, eight at a step: fast enough for
/// objects of hundreds of MiB, and every part differs, so a reordered or repeated part
/// changes the hash.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Pseudo-random bytes (xorshift), so no two objects share content.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn write_tree(root: &Path, objects: &BTreeMap<String, Vec<u8>>) {
    for (key, data) in objects {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().expect("object path has a parent"))
            .expect("creating directories");
        std::fs::write(&path, data).expect("writing an object");
    }
}

/// Every file below `root`, by its `/`-separated relative key, read with std::fs. A
/// file gone between the directory's read and its own (a temporary file an agent
/// renamed into place meanwhile) is not there. Temporary files of an agent's writes are
/// left out, as every listing leaves them out: no object of a dataset, they are a write
/// in progress, or an old file a task replaced and removes once its results are stored
/// (`fs_write::replace_file`); tests that look for them use `fs_write::is_partial`.
pub fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if !ferry_storage::fs_write::is_partial(&path.to_string_lossy()) {
                let key = path
                    .strip_prefix(root)
                    .expect("below root")
                    .to_string_lossy()
                    .replace('\\', "/");
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        out.insert(key, bytes);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("reading {}: {e}", path.display()),
                }
            }
        }
    }
    out
}

/// Follows a job with `WatchJob` until it ends; panics after `timeout`.
pub async fn wait_for_end(client: &ferry_sdk::Client, job: &str, timeout: Duration) -> pb::Job {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut stream = client.watch_job(job);
        let mut last = None;
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            match next {
                Err(_) => panic!("job {job} did not end within {timeout:?}; last: {last:#?}"),
                Ok(None) => break,
                Ok(Some(Err(e))) => panic!("watching job {job}: {e}"),
                Ok(Some(Ok(progress))) => {
                    let j = progress.job.expect("progress carries the job");
                    let ended = matches!(
                        pb::JobState::try_from(j.state),
                        Ok(pb::JobState::Completed
                            | pb::JobState::Failed
                            | pb::JobState::Cancelled)
                    );
                    if ended {
                        return j;
                    }
                    last = Some(j);
                }
            }
        }
    }
}

/// Polls until `check` holds for the job's objects; panics after `timeout`.
pub async fn wait_for_objects(
    client: &ferry_sdk::Client,
    job: &str,
    timeout: Duration,
    check: impl Fn(&[pb::JobObject]) -> bool,
) -> Vec<pb::JobObject> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let objects = client
            .list_job_objects(job, None)
            .await
            .expect("listing job objects");
        if check(&objects) {
            return objects;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job} objects never reached the condition: {objects:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fresh advice for one dataset, through `GetRecommendations`; exactly one is expected.
pub async fn advise(client: &ferry_sdk::Client, dataset: &str) -> pb::Recommendation {
    let mut answer = client
        .recommendations()
        .get_recommendations(pb::GetRecommendationsRequest {
            dataset: dataset.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("recommendations for {dataset}: {e}"))
        .into_inner()
        .recommendations;
    assert_eq!(answer.len(), 1, "one recommendation for {dataset}");
    answer.remove(0)
}

/// File-system sites, each `root/<name>`, with their tiers.
pub async fn file_sites(client: &ferry_sdk::Client, root: &Path, sites: &[(&str, pb::Tier)]) {
    for (name, tier) in sites {
        let site = pb::Site {
            name: (*name).into(),
            uri: format!("file://{}", root.join(name).display()),
            tier: (*tier).into(),
            ..Default::default()
        };
        client
            .create_site(site, std::collections::HashMap::new())
            .await
            .unwrap_or_else(|e| panic!("creating site {name}: {e}"));
    }
}

/// File-system sites `fast` (hot) and `dr` (cold) below `root`, and dataset `genome`
/// at `fast:genome`: the setting of the sync tests.
pub async fn genome_on_fast_and_dr(client: &ferry_sdk::Client, root: &Path) {
    file_sites(
        client,
        root,
        &[("fast", pb::Tier::Hot), ("dr", pb::Tier::Cold)],
    )
    .await;
    client
        .create_dataset(pb::Dataset {
            name: "genome".into(),
            site: "fast".into(),
            path: "genome".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("creating dataset genome: {e}"));
}
