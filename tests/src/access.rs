//! For tests that replay access history: two sites to place data on, recording access
//! events through the API, and waiting until the control plane has folded them in.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_proto::{time::from_timestamp, v1 as pb};

/// Creates a hot site `fast` (2 ms) and a cold site `archive` (200 ms), each a
/// directory under `dirs`, with these prices.
pub async fn fast_and_archive(
    client: &ferry_sdk::Client,
    dirs: &std::path::Path,
    fast: pb::Prices,
    archive: pb::Prices,
) {
    for (name, tier, latency_ms, prices) in [
        ("fast", pb::Tier::Hot, 2, fast),
        ("archive", pb::Tier::Cold, 200, archive),
    ] {
        let site = pb::Site {
            name: name.into(),
            uri: format!("file://{}", dirs.join(name).display()),
            tier: tier.into(),
            latency_ms,
            prices: Some(prices),
            ..Default::default()
        };
        client
            .create_site(site, std::collections::HashMap::new())
            .await
            .unwrap_or_else(|e| panic!("creating site {name}: {e}"));
    }
}

/// Records `events` in requests of at most 2,000, asserting every one is accepted.
pub async fn record(client: &ferry_sdk::Client, events: Vec<pb::AccessEvent>) {
    for chunk in events.chunks(2000) {
        let accepted = client
            .access_events()
            .record_access_events(pb::RecordAccessEventsRequest {
                events: chunk.to_vec(),
            })
            .await
            .unwrap_or_else(|e| panic!("recording access events: {e}"))
            .into_inner()
            .accepted;
        assert_eq!(accepted as usize, chunk.len());
    }
}

/// Waits (up to a minute) until `dataset`'s last access is `last`: the aggregator has
/// folded its events up to there.
pub async fn caught_up(client: &ferry_sdk::Client, dataset: &str, last: DateTime<Utc>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = client
            .get_dataset(dataset)
            .await
            .unwrap_or_else(|e| panic!("getting {dataset}: {e}"))
            .dataset
            .last_access_time
            .as_ref()
            .and_then(from_timestamp);
        if seen == Some(last) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{dataset}: last access {seen:?}, expected {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
