//! Demand models: versions saved per training run, the latest read back with its
//! forecast, older ones pruned.

use chrono::{DateTime, TimeDelta, Utc};
use ferry_control_plane::domain::{
    forecast::{version, Errors, Forecast, Model, ModelKind},
    ids::DatasetId,
    page::PageRequest,
    tier::Tier,
};

use crate::fixture::{create_dataset, create_site, new_dataset, Fixture};

fn model(dataset: DatasetId, at: DateTime<Utc>, in_use: bool) -> Model {
    Model {
        dataset_id: dataset,
        version: version(ModelKind::MstlEts, at),
        kind: ModelKind::MstlEts,
        periods: vec![24, 168],
        errors: Some(Errors {
            model: 1.25,
            seasonal_naive: 2.5,
            heuristic: 4.0,
        }),
        in_use,
        note: "n".into(),
        history_hours: 672,
        trained_at: at,
        forecast: in_use.then(|| Forecast {
            start: at,
            reads: vec![0.5, 12.25, 3.0],
            bytes_per_read: 1e6,
        }),
    }
}

pub async fn models_keep_versions_and_the_latest_forecast(f: &mut Fixture) {
    create_site(&f.catalogue, "s", "memory://", Tier::Hot).await;
    let a = create_dataset(&f.catalogue, new_dataset("a", "s", "a", &[])).await;
    let b = create_dataset(&f.catalogue, new_dataset("b", "s", "b", &[])).await;
    let t = DateTime::parse_from_rfc3339("2026-11-20T06:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(f.store().last_training().await.unwrap(), None);
    assert_eq!(f.store().latest_model(a.id).await.unwrap(), None);

    // Seven daily runs; only the last five versions are kept.
    for day in 0..7 {
        let at = t + TimeDelta::days(day);
        f.store()
            .save_models(&[model(a.id, at, true), model(b.id, at, false)])
            .await
            .unwrap();
    }
    let last = t + TimeDelta::days(6);
    assert_eq!(f.store().last_training().await.unwrap(), Some(last));
    let latest = f.store().latest_model(a.id).await.unwrap().unwrap();
    assert_eq!(latest, model(a.id, last, true));
    let versions = f.store().model_versions(a.id).await.unwrap();
    assert_eq!(versions.len(), 5);
    assert_eq!(versions[0].version, "mstl+ets/1@20261126T060000.000Z");
    assert_eq!(versions[4].version, "mstl+ets/1@20261122T060000.000Z");
    // Only the latest keeps its forecast.
    assert!(versions[1..].iter().all(|m| m.forecast.is_none()));
    assert!(versions.iter().all(|m| m.errors == latest.errors));

    // Saving the same version again replaces it rather than adding one.
    let mut again = model(a.id, last, false);
    again.note = "retrained".into();
    f.store().save_models(&[again]).await.unwrap();
    let versions = f.store().model_versions(a.id).await.unwrap();
    assert_eq!(versions.len(), 5);
    assert_eq!(
        (versions[0].in_use, versions[0].note.as_str()),
        (false, "retrained")
    );

    let all = f
        .store()
        .latest_models(&PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1);
    assert!(!all.next_token.is_empty());
    let rest = f
        .store()
        .latest_models(&PageRequest::parse(1, &all.next_token).unwrap())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    let mut ids = vec![all.items[0].dataset_id, rest.items[0].dataset_id];
    ids.sort();
    let mut expected = vec![a.id, b.id];
    expected.sort();
    assert_eq!(ids, expected);
}
