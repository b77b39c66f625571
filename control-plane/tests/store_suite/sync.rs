//! A sync's manifest as the store keeps it when the agent compares listings with it:
//! the unchanged objects come as one figure, counted once however often it is applied,
//! and a run replaces the entries of what it recorded, forgets what is gone from both
//! sides, and leaves every other entry as it was.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ferry_control_plane::{
    domain::{
        ids::JobId,
        job::{JobObject, JobState, ObjectStatus},
        sync::{ManifestEntry, SyncRule},
        tier::Tier,
    },
    service::{Migrations, PlanRequest},
    store::Store,
};
use tokio::sync::Notify;

use crate::{
    fixture::{by_name, create_dataset, create_site, new_dataset, Fixture},
    jobs::{list_as, list_task},
};

async fn plan_sync(migrations: &Migrations) -> JobId {
    let (job, created) = migrations
        .plan_sync(
            PlanRequest::new(by_name("d"), by_name("dst")),
            SyncRule::default(),
        )
        .await
        .unwrap();
    assert!(created);
    job.id
}

/// Records `objects` (key, size) as copy task `task`, then reports them verified.
async fn copied(store: &Store, id: JobId, task: &str, objects: &[(&str, u64)]) {
    list_task(store, id, task, objects).await;
    verified(store, id, objects).await;
}

/// Reports `objects` (key, size), recorded already, verified.
async fn verified(store: &Store, id: JobId, objects: &[(&str, u64)]) {
    let verified: Vec<JobObject> = objects
        .iter()
        .map(|(key, size)| JobObject {
            key: (*key).into(),
            size: *size,
            status: ObjectStatus::Verified,
            source_xxh3: Some(format!("xxh3-{key}-{size}")),
            destination_xxh3: None,
            attempts: 1,
            error: None,
            operation: None,
            updated_at: Utc::now(),
            task: None,
            upload: None,
            source_changed: false,
        })
        .collect();
    store
        .upsert_job_objects(id, &verified, Utc::now())
        .await
        .unwrap();
}

/// Ends the sync `id` as the service does: completed, its manifest recorded.
async fn commit(store: &Store, id: JobId) {
    let mut job = store.find_job(id).await.unwrap().unwrap();
    let read_at = job.updated_at;
    job.state = JobState::Completed;
    job.updated_at = Utc::now();
    let synced_at = job.created_at;
    assert!(store
        .commit_sync(&job, read_at, job.updated_at, synced_at)
        .await
        .unwrap());
}

/// The replica's manifest in key order, read `per_page` entries a page.
async fn manifest_entries(store: &Store, id: JobId, per_page: u64) -> Vec<(String, ManifestEntry)> {
    let job = store.find_job(id).await.unwrap().unwrap();
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .manifest_page(&job, after.as_deref(), per_page)
            .await
            .unwrap();
        let Some((last, _)) = page.last() else {
            return entries;
        };
        after = Some(last.clone());
        entries.extend(page);
    }
}

/// The replica's manifest: (key, size, xxh3) in key order, read two entries a page.
async fn manifest(store: &Store, id: JobId) -> Vec<(String, u64, Option<String>)> {
    manifest_entries(store, id, 2)
        .await
        .into_iter()
        .map(|(key, ManifestEntry { size, xxh3, .. })| (key, size, xxh3))
        .collect()
}

/// Sites `src` and `dst` and dataset `d` on `src`: what a sync from `d` to `dst` needs.
async fn sites_and_dataset(f: &Fixture) -> (Migrations, Store) {
    create_site(&f.catalogue, "src", "s3://src", Tier::Hot).await;
    create_site(&f.catalogue, "dst", "s3://dst", Tier::Cold).await;
    create_dataset(&f.catalogue, new_dataset("d", "src", "d", &[])).await;
    let migrations = Migrations::new(f.catalogue.clone(), Arc::new(Notify::new()));
    let store = f.store().clone();
    (migrations, store)
}

fn entry(key: &str, size: u64) -> (String, u64, Option<String>) {
    (key.into(), size, Some(format!("xxh3-{key}-{size}")))
}

pub async fn a_manifest_keeps_the_entries_a_run_found_unchanged(f: &mut Fixture) {
    let (migrations, store) = sites_and_dataset(f).await;

    // The first run records every object.
    let first = plan_sync(&migrations).await;
    copied(
        &store,
        first,
        "copy-0",
        &[("a", 100), ("b", 200), ("c", 300), ("d", 400)],
    )
    .await;
    commit(&store, first).await;
    let all = vec![
        entry("a", 100),
        entry("b", 200),
        entry("c", 300),
        entry("d", 400),
    ];
    assert_eq!(manifest(&store, first).await, all);

    // The next: `b` changed, `a` and `d` unchanged (a count from the agent), `c` gone
    // from both sides.
    let second = plan_sync(&migrations).await;
    copied(&store, second, "copy-0", &[("b", 250)]).await;
    for _ in 0..2 {
        store
            .set_manifest_unchanged(second, 2, 500, Utc::now())
            .await
            .unwrap();
    }
    let c = store.job_counters(second).await.unwrap();
    assert_eq!(
        (c.objects_total, c.objects_done, c.bytes_total, c.bytes_done),
        (3, 3, 750, 750),
        "the unchanged figure counts once, however often it is applied"
    );
    let job = store.find_job(second).await.unwrap().unwrap();
    assert_eq!(job.sync.unchanged, 2);
    let job = store.find_job(second).await.unwrap().unwrap();
    store
        .forget_manifest_keys(&job, &["c".to_owned()])
        .await
        .unwrap();
    commit(&store, second).await;
    assert_eq!(
        manifest(&store, second).await,
        vec![entry("a", 100), entry("b", 250), entry("d", 400)]
    );

    // A figure set again replaces the earlier one rather than adding to it.
    let third = plan_sync(&migrations).await;
    store
        .set_manifest_unchanged(third, 3, 750, Utc::now())
        .await
        .unwrap();
    store
        .set_manifest_unchanged(third, 1, 100, Utc::now())
        .await
        .unwrap();
    let c = store.job_counters(third).await.unwrap();
    assert_eq!(
        (c.objects_total, c.objects_done, c.bytes_total),
        (1, 1, 100)
    );
}

pub async fn a_manifest_gives_back_keys_times_and_etags_as_recorded(f: &mut Fixture) {
    let (migrations, store) = sites_and_dataset(f).await;
    let id = plan_sync(&migrations).await;
    // Keys a JSON page must escape, times to the microsecond, with and without etags.
    let at = |micros: i64| DateTime::from_timestamp_micros(micros);
    let listed = [
        (
            "a \"quoted\" \\ key",
            1,
            at(1_796_590_192_123_456),
            Some("\"etag-1\""),
        ),
        ("b/é/日本", 2, at(1_796_590_192_000_001), None),
        ("c\ttab\nnewline", 3, None, Some("etag-3")),
        ("d", 4, at(0), None),
    ];
    list_as(&store, id, "copy-0", &listed).await;
    let keys: Vec<(&str, u64)> = listed.iter().map(|(k, s, _, _)| (*k, *s)).collect();
    verified(&store, id, &keys).await;
    commit(&store, id).await;

    let expected: Vec<(String, ManifestEntry)> = listed
        .iter()
        .map(|(key, size, modified, etag)| {
            let entry = ManifestEntry {
                size: *size,
                modified: *modified,
                etag: etag.map(str::to_owned),
                xxh3: Some(format!("xxh3-{key}-{size}")),
            };
            ((*key).to_owned(), entry)
        })
        .collect();
    assert_eq!(manifest_entries(&store, id, 3).await, expected);
}
