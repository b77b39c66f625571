//! Access events through the real control plane and a private nats-server: validation,
//! folding into hourly aggregates and last access, and exactly-once counting when the
//! stream is delivered again from the start.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use chrono::{DurationRound, TimeDelta, Utc};
use ferry_proto::{time::to_timestamp, v1 as pb};
use ferry_sdk::Client;
use ferry_tests::{control_plane::Options, ControlPlane, NatsServer};
use tonic::Code;

fn event(
    dataset: &str,
    op: pb::AccessOp,
    bytes: i64,
    at: chrono::DateTime<Utc>,
    id: &str,
) -> pb::AccessEvent {
    pb::AccessEvent {
        dataset: dataset.into(),
        op: op.into(),
        bytes,
        latency_ms: 2.5,
        time: Some(to_timestamp(at)),
        client_id: "test-client".into(),
        event_id: id.into(),
    }
}

async fn setup(cp: &ControlPlane) -> Client {
    let client = cp.client().await;
    let site = pb::Site {
        name: "s".into(),
        uri: "memory://".into(),
        tier: pb::Tier::Hot.into(),
        ..Default::default()
    };
    client.create_site(site, HashMap::new()).await.unwrap();
    let d = pb::Dataset {
        name: "d".into(),
        site: "s".into(),
        path: "d".into(),
        ..Default::default()
    };
    client.create_dataset(d).await.unwrap();
    client
}

async fn stats(client: &Client) -> Vec<pb::HourlyAccess> {
    let mut access = client.access_events();
    access
        .get_access_stats(pb::GetAccessStatsRequest {
            dataset: "d".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hours
}

/// Waits until the total reads reach `reads`, then checks they stay there.
async fn settle(client: &Client, reads: u64) -> Vec<pb::HourlyAccess> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hours = stats(client).await;
        let total: u64 = hours.iter().map(|h| h.reads).sum();
        assert!(
            total <= reads,
            "over-counted: {total} reads, expected {reads}: {hours:#?}"
        );
        if total == reads {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let again = stats(client).await;
            assert_eq!(again, hours, "aggregates kept moving after settling");
            return hours;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {total} of {reads} reads aggregated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fold_into_hours_exactly_once_even_when_redelivered() {
    let nats = NatsServer::start().await;
    let data = tempfile::tempdir().unwrap();
    let options = Options {
        nats: Some(nats.access()),
        data_dir: Some(data.path().join("data")),
        ..Default::default()
    };
    let cp = ControlPlane::start_with(options.clone()).await;
    let client = setup(&cp).await;
    let hour = (Utc::now() - TimeDelta::hours(3))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap();
    let first = hour + TimeDelta::minutes(10);
    let mut batch: Vec<_> = (0..30)
        .map(|i| event("d", pb::AccessOp::Read, 100, first, &format!("r{i}")))
        .collect();
    batch.extend((0..10).map(|i| {
        event(
            "d",
            pb::AccessOp::Write,
            50,
            first + TimeDelta::hours(1),
            &format!("w{i}"),
        )
    }));
    let mut access = client.access_events();
    let answer = access
        .record_access_events(pb::RecordAccessEventsRequest {
            events: batch.clone(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().accepted, 40);
    // The same events sent again (a client retry) count once.
    access
        .record_access_events(pb::RecordAccessEventsRequest { events: batch })
        .await
        .unwrap();
    // Client streaming: 20 more reads in two messages.
    let streamed = (0..2).map(move |b| pb::RecordAccessEventsRequest {
        events: (0..10)
            .map(move |i| event("d", pb::AccessOp::Read, 10, first, &format!("s{b}-{i}")))
            .collect(),
    });
    let answer = access
        .stream_access_events(tokio_stream::iter(streamed))
        .await
        .unwrap();
    assert_eq!(answer.into_inner().accepted, 20);

    let hours = settle(&client, 50).await;
    assert_eq!(hours.len(), 2);
    assert_eq!(hours[0].hour, Some(to_timestamp(hour)));
    assert_eq!(
        (hours[0].reads, hours[0].bytes_read, hours[0].writes),
        (50, 3200, 0)
    );
    assert_eq!(
        (hours[1].writes, hours[1].bytes_written, hours[1].reads),
        (10, 500, 0)
    );
    assert!((hours[0].latency_ms_sum - 125.0).abs() < 1e-9);
    let d = client.get_dataset("d").await.unwrap().dataset;
    assert_eq!(
        d.last_access_time,
        Some(to_timestamp(first + TimeDelta::hours(1)))
    );

    // Forget the aggregator's delivery state: the restarted control plane recreates its
    // consumer, which delivers the whole stream again. Nothing may count twice.
    drop(cp);
    let js = async_nats::jetstream::new(nats.access().connect().await);
    js.get_stream("FERRY_EVENTS")
        .await
        .unwrap()
        .delete_consumer("aggregator")
        .await
        .unwrap();
    let cp = ControlPlane::start_with(options).await;
    let client = cp.client().await;
    let mut access = client.access_events();
    let marker = vec![event("d", pb::AccessOp::Read, 1, first, "marker")];
    access
        .record_access_events(pb::RecordAccessEventsRequest { events: marker })
        .await
        .unwrap();
    let hours = settle(&client, 51).await;
    assert_eq!(
        hours[0].bytes_read, 3201,
        "only the marker was added: {hours:#?}"
    );
}

#[tokio::test]
async fn invalid_events_are_refused_naming_the_field() {
    let cp = ControlPlane::start().await;
    let client = setup(&cp).await;
    let access = client.access_events();
    let now = Utc::now();
    let record = |events: Vec<pb::AccessEvent>| {
        let mut access = access.clone();
        async move {
            access
                .record_access_events(pb::RecordAccessEventsRequest { events })
                .await
                .unwrap_err()
        }
    };
    let e = record(vec![event("nope", pb::AccessOp::Read, 1, now, "")]).await;
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "dataset nope not found")
    );
    let e = record(vec![
        event("d", pb::AccessOp::Read, 1, now, ""),
        event("d", pb::AccessOp::Read, -5, now, ""),
    ])
    .await;
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "events[1].bytes: must not be negative, got -5"
        )
    );
    let e = record(vec![event("d", pb::AccessOp::Unspecified, 1, now, "")]).await;
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "events[0].op: must be read or write")
    );
    let e = record(vec![event(
        "d",
        pb::AccessOp::Read,
        1,
        now + TimeDelta::hours(2),
        "",
    )])
    .await;
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("events[0].time: "),
        "{}",
        e.message()
    );
    // Nothing of a refused batch was recorded.
    let hours = stats(&client).await;
    assert!(hours.is_empty(), "{hours:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_deleted_dataset_are_dropped_and_counted() {
    let cp = ControlPlane::start().await;
    let client = setup(&cp).await;
    let gone = pb::Dataset {
        name: "gone".into(),
        site: "s".into(),
        path: "gone".into(),
        ..Default::default()
    };
    let gone_id = client.create_dataset(gone).await.unwrap().id;
    client.delete_dataset("gone").await.unwrap();
    // Events still in the stream when their dataset was deleted, as intake stored them.
    let jetstream = async_nats::jetstream::new(cp.nats_access().connect().await);
    for i in 0..3 {
        let batch = pb::AccessEventBatch {
            dataset_id: gone_id.clone(),
            events: vec![event(
                "",
                pb::AccessOp::Read,
                10,
                Utc::now(),
                &format!("g{i}"),
            )],
        };
        jetstream
            .publish(
                format!("ferry.events.access.{gone_id}"),
                prost::Message::encode_to_vec(&batch).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // The aggregator is not stuck on them: a later event of a live dataset folds.
    client
        .access_events()
        .record_access_events(pb::RecordAccessEventsRequest {
            events: vec![event("d", pb::AccessOp::Read, 10, Utc::now(), "live")],
        })
        .await
        .unwrap();
    settle(&client, 1).await;
    assert_eq!(
        cp.metric(r#"ferry_access_events_dropped_total{reason="dataset_deleted"}"#)
            .await,
        3
    );
    assert_eq!(cp.metric("ferry_access_events_folded_total").await, 1);
    assert_eq!(cp.metric("ferry_access_events_accepted_total").await, 1);
    assert!(
        cp.log()
            .contains("access events of deleted datasets dropped"),
        "the drop is logged"
    );
}
