//! Hourly access aggregates and the event cursor.

use chrono::{DateTime, TimeDelta, Utc};
use ferry_control_plane::domain::{
    access::{hour_of, AccessEvent, AccessOp, Fold},
    ids::DatasetId,
    tier::Tier,
};

use crate::fixture::{create_dataset, create_site, new_dataset, Fixture};

fn event(dataset: DatasetId, op: AccessOp, bytes: u64, time: DateTime<Utc>) -> AccessEvent {
    AccessEvent {
        dataset_id: dataset,
        op,
        bytes,
        latency_ms: 1.5,
        time,
        client_id: "c".into(),
        event_id: "e".into(),
    }
}

pub async fn access_folds_add_up_and_commit_with_their_cursor(f: &mut Fixture) {
    create_site(&f.catalogue, "s", "memory://", Tier::Hot).await;
    let d = create_dataset(&f.catalogue, new_dataset("d", "s", "d", &[])).await;
    let t = DateTime::parse_from_rfc3339("2026-11-20T08:30:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(f.store().event_cursor("agg").await.unwrap(), 0);

    let mut fold = Fold::default();
    fold.add(&event(d.id, AccessOp::Read, 100, t));
    fold.add(&event(d.id, AccessOp::Write, 40, t + TimeDelta::minutes(5)));
    f.store().apply_access("agg", 2, &fold).await.unwrap();
    // A second fold into the same hour adds to it rather than replacing it.
    let mut fold = Fold::default();
    fold.add(&event(d.id, AccessOp::Read, 1, t - TimeDelta::minutes(20)));
    fold.add(&event(d.id, AccessOp::Read, 7, t + TimeDelta::hours(1)));
    f.store().apply_access("agg", 5, &fold).await.unwrap();

    assert_eq!(f.store().event_cursor("agg").await.unwrap(), 5);
    let stats = f.store().access_stats(d.id, None, None).await.unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].0, hour_of(t));
    assert_eq!(
        (stats[0].1.reads, stats[0].1.writes, stats[0].1.bytes_read),
        (2, 1, 101)
    );
    assert!((stats[0].1.latency_ms_sum - 4.5).abs() < 1e-9);
    assert_eq!(stats[1].1.bytes_read, 7);
    let later = f
        .store()
        .access_stats(d.id, Some(hour_of(t) + TimeDelta::hours(1)), None)
        .await
        .unwrap();
    assert_eq!(later.len(), 1);

    // The last access only moves forward.
    let read = f
        .catalogue
        .get_dataset(&ferry_control_plane::domain::name::Ref::Id(d.id))
        .await
        .unwrap();
    assert_eq!(read.last_access_at, Some(t + TimeDelta::hours(1)));
    let existing = f
        .store()
        .existing_datasets(&[d.id, DatasetId::new()])
        .await
        .unwrap();
    assert_eq!(existing.into_iter().collect::<Vec<_>>(), vec![d.id]);
}
