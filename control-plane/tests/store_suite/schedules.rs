//! What continuous syncs' watchers report, as the store keeps it: changed keys wait
//! until a run takes them, a key reported again after a run read them waits for the
//! next, and the agents of a dataset's site are told which directories to watch.

use ferry_control_plane::domain::{
    ids::{JobId, ScheduleId},
    name::Ref,
    schedule::{SyncSchedule, When},
    tier::Tier,
};

use crate::fixture::{create_dataset, create_site, name, new_dataset, Fixture};

fn schedule(dataset: &ferry_control_plane::domain::dataset::Dataset) -> SyncSchedule {
    let now = chrono::Utc::now();
    SyncSchedule {
        id: ScheduleId::new(),
        name: name("genome-live"),
        dataset_id: dataset.id,
        sync: Vec::new(),
        when: When::parse("0 3 * * *", "UTC").unwrap(),
        next_run_at: now,
        last_job: None,
        runs: 0,
        skipped: 0,
        last_error: None,
        created_at: now,
        continuous: true,
        pending_changes: 0,
    }
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|k| (*k).to_owned()).collect()
}

pub async fn reported_changes_wait_until_a_run_takes_them(f: &mut Fixture) {
    let fast = create_site(&f.catalogue, "fast", "file:///srv/fast", Tier::Hot).await;
    create_site(&f.catalogue, "dr", "file:///srv/dr", Tier::Cold).await;
    let genome = create_dataset(&f.catalogue, new_dataset("genome", "fast", "genome", &[])).await;
    let live = schedule(&genome);
    let store = f.store().clone();
    store.insert_schedule(&live).await.unwrap();
    assert_eq!(store.pending_changes(live.id, 10).await.unwrap(), None);

    store
        .record_changes(live.id, &keys(&["b", "a", "b"]), false)
        .await
        .unwrap();
    let read = store.pending_changes(live.id, 10).await.unwrap().unwrap();
    assert_eq!(read.keys(), Some(&keys(&["a", "b"])[..]));
    // Reported again after the run read them: it waits for the next run.
    store
        .record_changes(live.id, &keys(&["b", "c"]), false)
        .await
        .unwrap();
    assert_eq!(store.count_pending_changes(live.id).await.unwrap(), 3);
    let job = JobId::new();
    store
        .record_changes_planned(live.id, read.up_to, job)
        .await
        .unwrap();
    let next = store.pending_changes(live.id, 10).await.unwrap().unwrap();
    assert_eq!(next.keys(), Some(&keys(&["b", "c"])[..]));
    let recorded = store
        .find_schedule(&Ref::Id(live.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((recorded.last_job, recorded.runs), (Some(job), 1));
    assert_eq!(recorded.pending_changes, 2);

    // A watcher that may have missed changes makes the next run list everything.
    store.record_changes(live.id, &[], true).await.unwrap();
    let rescan = store.pending_changes(live.id, 10).await.unwrap().unwrap();
    assert_eq!(rescan.keys(), None);
    assert_eq!(store.count_pending_changes(live.id).await.unwrap(), 2);
    assert_eq!(store.schedules_with_changes().await.unwrap(), [live.id]);

    // The agents of the dataset's site watch its directory, under the schedule's
    // stored sync (its filter); the other site's none.
    assert_eq!(
        store.watches_at(fast.id).await.unwrap(),
        [(live.id, "genome".to_owned(), live.sync.clone())]
    );
    let dr = f.catalogue.get_site(&Ref::Name(name("dr"))).await.unwrap();
    assert!(store.watches_at(dr.id).await.unwrap().is_empty());

    // Deleting the schedule forgets its changes.
    store.delete_schedule(&live).await.unwrap();
    assert!(store.schedules_with_changes().await.unwrap().is_empty());
}
