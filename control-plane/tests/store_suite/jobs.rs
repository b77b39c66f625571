//! A job's counters as the store keeps them while reports arrive: every object counted
//! once whatever order, repetition or concurrency its reports come in.

use std::sync::Arc;

use chrono::Utc;
use ferry_control_plane::{
    domain::{
        ids::JobId,
        job::{JobObject, ObjectStatus},
        tier::Tier,
    },
    service::{Migrations, PlanRequest},
    store::{ListedRecord, OutboxMessage, Store},
};
use tokio::sync::Notify;

use crate::fixture::{by_name, create_dataset, create_site, new_dataset, Fixture};

/// A job, as planned, of a dataset on a new pair of sites.
async fn queued_job(f: &Fixture) -> JobId {
    create_site(&f.catalogue, "src", "s3://src", Tier::Hot).await;
    create_site(&f.catalogue, "dst", "s3://dst", Tier::Cold).await;
    create_dataset(&f.catalogue, new_dataset("d", "src", "d", &[])).await;
    let migrations = Migrations::new(f.catalogue.clone(), Arc::new(Notify::new()));
    let (job, _) = migrations
        .plan(PlanRequest::new(by_name("d"), by_name("dst")))
        .await
        .unwrap();
    job.id
}

pub(crate) fn dispatch(task: &str) -> impl FnOnce(&[(String, u64)], bool) -> OutboxMessage + '_ {
    move |_, _| OutboxMessage {
        subject: "ferry.test.dispatch".into(),
        message_id: format!("dispatch-{task}"),
        payload: Vec::new(),
        trace_parent: None,
    }
}

/// An object as a listing found it: key, size, modification time and etag.
pub(crate) type Listed<'a> = (&'a str, u64, Option<chrono::DateTime<Utc>>, Option<&'a str>);

/// Records `listed` as copy task `task`.
pub(crate) async fn list_as(store: &Store, id: JobId, task: &str, listed: &[Listed<'_>]) {
    let records: Vec<ListedRecord> = listed
        .iter()
        .map(|(key, size, modified, etag)| ListedRecord {
            key: (*key).into(),
            size: *size,
            modified: *modified,
            etag: etag.map(str::to_owned),
            ..Default::default()
        })
        .collect();
    store
        .record_listed_task(id, task, &records, Utc::now(), dispatch(task))
        .await
        .unwrap();
}

/// Records `objects` (key, size) as copy task `task`.
pub(crate) async fn list_task(store: &Store, id: JobId, task: &str, objects: &[(&str, u64)]) {
    dispatched(store, id, task, objects).await;
}

fn report(key: &str, size: u64, status: ObjectStatus) -> JobObject {
    JobObject {
        key: key.into(),
        size,
        status,
        source_xxh3: None,
        destination_xxh3: None,
        attempts: 1,
        error: (status == ObjectStatus::Failed).then(|| "refused".into()),
        operation: None,
        updated_at: Utc::now(),
        task: None,
        upload: None,
        source_changed: false,
    }
}

/// (objects done, objects failed, bytes done) as the job reports them.
async fn counted(store: &Store, id: JobId) -> (u64, u64, u64) {
    let c = store.job_counters(id).await.unwrap();
    (c.objects_done, c.objects_failed, c.bytes_done)
}

pub async fn job_counters_follow_object_reports(f: &mut Fixture) {
    use ObjectStatus::*;
    let store = f.store().clone();
    let id = queued_job(f).await;
    let sizes = [
        ("a", 100),
        ("b", 200),
        ("c", 300),
        ("d", 400),
        ("e", 500),
        ("f", 600),
    ];
    list_task(&store, id, "t1", &sizes).await;
    assert_eq!(counted(&store, id).await, (0, 0, 0), "all pending");
    let c = store.job_counters(id).await.unwrap();
    assert_eq!((c.objects_total, c.bytes_total), (6, 2100));

    let batch = [
        report("a", 100, Verified),
        report("b", 200, Verified),
        report("c", 300, Copied),
        report("d", 400, Failed),
        report("e", 500, Skipped),
    ];
    store
        .upsert_job_objects(id, &batch, Utc::now())
        .await
        .unwrap();
    // Copied bytes count as done bytes; copied objects are not done yet.
    assert_eq!(counted(&store, id).await, (3, 1, 100 + 200 + 300 + 500));
    store
        .upsert_job_objects(id, &batch, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        counted(&store, id).await,
        (3, 1, 1100),
        "a batch applied twice (redelivered) counts once"
    );

    // One key twice in a batch: the last report wins.
    let twice = [report("f", 600, Copying), report("f", 600, Verified)];
    store
        .upsert_job_objects(id, &twice, Utc::now())
        .await
        .unwrap();
    assert_eq!(counted(&store, id).await, (4, 1, 1700));

    // A failed object that a later try of the same attempt copies.
    store
        .upsert_job_objects(id, &[report("d", 400, Verified)], Utc::now())
        .await
        .unwrap();
    assert_eq!(counted(&store, id).await, (5, 0, 2100));

    // The task's agent gives up: its unfinished objects (c, copied) fail, and their
    // bytes are no longer done.
    let failed = store
        .fail_task_objects(id, "t1", "the agent gave up", Utc::now())
        .await
        .unwrap();
    assert_eq!(failed, 1);
    assert_eq!(counted(&store, id).await, (5, 1, 1800));

    // A later listing finds `a` grown: it is pending again and no longer done.
    list_task(&store, id, "t2", &[("a", 150), ("b", 200)]).await;
    assert_eq!(counted(&store, id).await, (4, 1, 1700));
    let c = store.job_counters(id).await.unwrap();
    assert_eq!((c.objects_total, c.bytes_total), (6, 2150));
    store
        .upsert_job_objects(id, &[report("a", 150, Verified)], Utc::now())
        .await
        .unwrap();
    assert_eq!(counted(&store, id).await, (5, 1, 1850));
}

pub async fn concurrent_reports_count_each_object_once(f: &mut Fixture) {
    const OBJECTS: u64 = 400;
    const WRITERS: u64 = 8;
    let store = f.store().clone();
    let id = queued_job(f).await;
    let keys: Vec<String> = (0..OBJECTS).map(|i| format!("k{i:04}")).collect();
    let listed: Vec<(&str, u64)> = keys.iter().map(|k| (k.as_str(), 10)).collect();
    list_task(&store, id, "t1", &listed).await;

    // Every writer reports every object verified, in the same order but batched its
    // own way, as redelivered and duplicated reports would: the writers race for the
    // same objects all along.
    let keys = Arc::new(keys);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, keys) = (store.clone(), keys.clone());
            tokio::spawn(async move {
                for batch in keys.chunks(10 + w as usize) {
                    let reports: Vec<JobObject> = batch
                        .iter()
                        .map(|k| report(k, 10, ObjectStatus::Verified))
                        .collect();
                    store
                        .upsert_job_objects(id, &reports, Utc::now())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(counted(&store, id).await, (OBJECTS, 0, OBJECTS * 10));
}

pub async fn objects_deleted_at_the_source_leave_the_totals_and_wait_for_deletion(f: &mut Fixture) {
    use ObjectStatus::*;
    let store = f.store().clone();
    let id = queued_job(f).await;
    list_task(&store, id, "copy-0", &[("a", 100), ("b", 200), ("c", 300)]).await;
    let batch = [
        report("a", 100, Verified),
        report("b", 200, Skipped),
        report("c", 300, Copied),
    ];
    store
        .upsert_job_objects(id, &batch, Utc::now())
        .await
        .unwrap();
    assert_eq!(counted(&store, id).await, (2, 0, 600));

    // The final pass finds a, b and c at the destination only, and `own` too, which
    // the migration never wrote: only what it wrote and finished is recorded.
    let keys = ["a", "b", "c", "own"].map(String::from);
    let vanished = store.record_vanished(id, &keys, Utc::now()).await.unwrap();
    assert_eq!(vanished, 2);
    assert_eq!(
        counted(&store, id).await,
        (0, 0, 300),
        "c's copy is done bytes"
    );
    let c = store.job_counters(id).await.unwrap();
    assert_eq!((c.objects_total, c.bytes_total), (1, 300));
    let mut extras = store.extras(id).await.unwrap();
    extras.sort();
    assert_eq!(extras, [("a".to_owned(), 100), ("b".to_owned(), 200)]);
    assert_eq!(
        store.record_vanished(id, &keys, Utc::now()).await.unwrap(),
        0,
        "recorded once"
    );

    // `b` is back at the source by the next listing: counted again, to copy.
    list_task(&store, id, "final-0", &[("b", 200)]).await;
    let c = store.job_counters(id).await.unwrap();
    assert_eq!((c.objects_total, c.bytes_total), (2, 500));
    assert_eq!(store.extras(id).await.unwrap(), [("a".to_owned(), 100)]);
}

/// Records `objects` (key, size) as copy task `task`: what it dispatched, and whether
/// the store called it the task's first dispatch.
async fn dispatched(
    store: &Store,
    id: JobId,
    task: &str,
    objects: &[(&str, u64)],
) -> (Vec<(String, u64)>, bool) {
    let records: Vec<ListedRecord> = objects
        .iter()
        .map(|(k, s)| ListedRecord {
            key: (*k).into(),
            size: *s,
            ..Default::default()
        })
        .collect();
    let seen = std::sync::Mutex::new(None);
    store
        .record_listed_task(id, task, &records, Utc::now(), |todo, first| {
            *seen.lock().unwrap() = Some((todo.to_vec(), first));
            dispatch(task)(todo, first)
        })
        .await
        .unwrap();
    seen.into_inner().unwrap().unwrap_or_default()
}

pub async fn a_task_is_a_first_dispatch_only_when_none_of_its_objects_was_recorded(
    f: &mut Fixture,
) {
    let store = f.store().clone();
    let id = queued_job(f).await;
    let (todo, first) = dispatched(&store, id, "copy-0", &[("a", 1), ("b", 2)]).await;
    assert_eq!(todo, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
    assert!(first, "nothing of the task was recorded before");

    // A new page of new keys is a first dispatch too.
    let (_, first) = dispatched(&store, id, "copy-1", &[("c", 3)]).await;
    assert!(first);

    // `a` verified; `b` listed again at another size, beside a new key: `b` may have
    // been reported under its first dispatch, so this one is not a first.
    store
        .upsert_job_objects(id, &[report("a", 1, ObjectStatus::Verified)], Utc::now())
        .await
        .unwrap();
    let (todo, first) = dispatched(&store, id, "final-0", &[("a", 1), ("b", 5), ("d", 4)]).await;
    assert_eq!(
        todo,
        [("b".to_owned(), 5), ("d".to_owned(), 4)],
        "a is done"
    );
    assert!(!first, "b was recorded before");
}

pub async fn a_migrations_manifest_holds_the_objects_it_copied_as_listed(f: &mut Fixture) {
    let store = f.store().clone();
    let id = queued_job(f).await;
    let at = |micros: i64| chrono::DateTime::from_timestamp_micros(micros);
    let listed = [
        ("a", 1, at(1_796_590_192_123_456), Some("etag-a")),
        ("b", 2, at(1_796_590_192_000_001), None),
        ("c", 3, None, Some("etag-c")),
        ("d", 4, None, None),
        ("e", 5, at(7), None),
    ];
    list_as(&store, id, "copy-0", &listed).await;
    // `a` and `c` verified, `e` found in place; `b` failed and `d` still pending.
    let reports = [
        report("a", 1, ObjectStatus::Verified),
        report("b", 2, ObjectStatus::Failed),
        report("c", 3, ObjectStatus::Verified),
        report("e", 5, ObjectStatus::Skipped),
    ];
    store
        .upsert_job_objects(id, &reports, Utc::now())
        .await
        .unwrap();

    let job = store.find_job(id).await.unwrap().unwrap();
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    // A page at a time, one entry a page.
    while let Some((key, entry)) = store
        .manifest_page(&job, after.as_deref(), 1)
        .await
        .unwrap()
        .pop()
    {
        after = Some(key.clone());
        entries.push((key, entry.size, entry.modified, entry.etag));
    }
    let expected: Vec<_> = listed
        .iter()
        .filter(|(key, ..)| ["a", "c", "e"].contains(key))
        .map(|(key, size, modified, etag)| {
            ((*key).to_owned(), *size, *modified, etag.map(str::to_owned))
        })
        .collect();
    assert_eq!(
        entries, expected,
        "only what is done, each as its source was listed, in key order"
    );
}
