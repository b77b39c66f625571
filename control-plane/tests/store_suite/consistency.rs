//! What the catalogue guarantees across operations: referential integrity, optimistic
//! concurrency, and durability across reconnects.

use ferry_control_plane::{
    clock,
    domain::{
        dataset::DatasetFilter,
        name::Ref,
        policy::PolicyPatch,
        site::{Credentials, SitePatch},
        tier::Tier,
    },
    store::CredentialsUpdate,
};
use secrecy::ExposeSecret;

use crate::fixture::{
    by_name, create_dataset, create_site, credentials, failed_precondition, first_page, labels,
    name, new_dataset, new_site, not_found, options, Fixture,
};

const WRITERS: u32 = 8;

pub async fn site_delete_is_refused_while_referenced(f: &mut Fixture) {
    let c = &f.catalogue;
    let holder = create_site(c, "holder", "file:///srv/holder", Tier::Hot).await;
    let target = create_site(c, "target", "file:///srv/target", Tier::Cold).await;
    create_dataset(
        c,
        new_dataset("genome-raw", "holder", "raw", &[("team", "g")]),
    )
    .await;
    let placing = PolicyPatch {
        selector: Some(labels(&[("team", "g")])),
        placements: Some(vec![(Tier::Cold, by_name("target"))]),
        ..PolicyPatch::default()
    };
    c.create_policy(name("archive"), &placing).await.unwrap();

    let message = failed_precondition(c.delete_site(&by_name("holder")).await);
    assert!(message.contains("genome-raw"), "{message}");
    let message = failed_precondition(c.delete_site(&by_name("target")).await);
    assert!(message.contains("archive"), "{message}");
    assert_eq!(c.get_site(&by_name("holder")).await.unwrap(), holder);
    assert_eq!(c.get_site(&by_name("target")).await.unwrap(), target);

    c.delete_dataset(&by_name("genome-raw")).await.unwrap();
    c.delete_site(&by_name("holder")).await.unwrap();
    not_found(c.get_site(&Ref::Id(holder.id)).await);

    // Moving the cold tier elsewhere releases the site as well as deleting would.
    create_site(c, "elsewhere", "file:///srv/elsewhere", Tier::Cold).await;
    let moved = PolicyPatch {
        placements: Some(vec![(Tier::Cold, by_name("elsewhere"))]),
        ..PolicyPatch::default()
    };
    c.update_policy(&by_name("archive"), &moved).await.unwrap();
    c.delete_site(&by_name("target")).await.unwrap();
    not_found(c.get_site(&Ref::Id(target.id)).await);

    let message = failed_precondition(c.delete_site(&by_name("elsewhere")).await);
    assert!(message.contains("archive"), "{message}");
    c.delete_policy(&by_name("archive")).await.unwrap();
    c.delete_site(&by_name("elsewhere")).await.unwrap();
    let page = c.list_sites(None, &first_page()).await.unwrap();
    assert!(page.items.is_empty());
}

pub async fn stale_site_write_is_refused(f: &mut Fixture) {
    let c = &f.catalogue;
    let site = create_site(c, "alpha", "file:///srv/alpha", Tier::Hot).await;
    let stale = c.get_site(&Ref::Id(site.id)).await.unwrap();

    let patch = SitePatch {
        latency_ms: Some(50),
        ..SitePatch::default()
    };
    let current = c.update_site(&Ref::Id(site.id), &patch).await.unwrap();

    let mut lost = stale.clone();
    lost.latency_ms = 99;
    lost.updated_at = clock::SharedClock::system().next_update(stale.updated_at);
    let written = f
        .store()
        .update_site(
            &lost,
            stale.updated_at,
            CredentialsUpdate::Keep,
            "latency_ms",
        )
        .await
        .unwrap();
    assert!(!written, "a write based on a stale read must lose");
    assert_eq!(c.get_site(&Ref::Id(site.id)).await.unwrap(), current);

    let mut fresh = current.clone();
    fresh.latency_ms = 77;
    fresh.updated_at = clock::SharedClock::system().next_update(current.updated_at);
    let written = f
        .store()
        .update_site(
            &fresh,
            current.updated_at,
            CredentialsUpdate::Keep,
            "latency_ms",
        )
        .await
        .unwrap();
    assert!(written, "a write based on the current row lands");
    assert_eq!(c.get_site(&Ref::Id(site.id)).await.unwrap(), fresh);
}

pub async fn concurrent_site_updates_all_land(f: &mut Fixture) {
    let site = create_site(&f.catalogue, "contended", "s3://ferry-contended", Tier::Hot).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let c = f.catalogue.clone();
            let region = format!("region-{i}");
            tokio::spawn(async move {
                let patch = SitePatch {
                    latency_ms: Some(100 + i),
                    options: Some(options(&[("region", &region)])),
                    ..SitePatch::default()
                };
                c.update_site(&Ref::Id(site.id), &patch).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for (i, writer) in (0..WRITERS).zip(writers) {
        let updated = writer
            .await
            .expect("the writer task runs to completion")
            .unwrap_or_else(|e| panic!("update {i} must land: {e}"));
        assert_eq!(updated.latency_ms, 100 + i);
        assert_eq!(updated.options["region"], format!("region-{i}"));
        results.push(updated);
    }

    // Each update was written on top of the one before it: no two share a version.
    let mut versions: Vec<_> = results.iter().map(|s| s.updated_at).collect();
    versions.sort();
    versions.dedup();
    assert_eq!(
        versions.len(),
        results.len(),
        "two updates overwrote the same row"
    );

    let last = results
        .iter()
        .max_by_key(|s| s.updated_at)
        .expect("there were writers");
    let stored = f.catalogue.get_site(&Ref::Id(site.id)).await.unwrap();
    assert_eq!(&stored, last, "the final state is the last update's, whole");
}

pub async fn catalogue_survives_reconnect(f: &mut Fixture) {
    const SECRET: &str = "durable-secret-51";
    let site = f
        .catalogue
        .create_site(
            new_site("durable", "s3://ferry-durable/x", Tier::Warm),
            credentials(&[("access_key_id", "AKIADUR"), ("secret_access_key", SECRET)]),
        )
        .await
        .unwrap();
    let plain = create_site(&f.catalogue, "plain", "file:///srv/plain", Tier::Cold).await;
    let dataset = create_dataset(
        &f.catalogue,
        new_dataset("kept", "durable", "kept/here", &[("team", "ops")]),
    )
    .await;
    let placing = PolicyPatch {
        selector: Some(labels(&[("team", "ops")])),
        placements: Some(vec![(Tier::Cold, by_name("plain"))]),
        ..PolicyPatch::default()
    };
    let policy = f
        .catalogue
        .create_policy(name("ops"), &placing)
        .await
        .unwrap();

    f.reopen().await;
    let c = &f.catalogue;

    assert_eq!(c.get_site(&by_name("durable")).await.unwrap(), site);
    assert_eq!(c.get_site(&by_name("plain")).await.unwrap(), plain);
    let blob = f
        .store()
        .site_credentials(site.id)
        .await
        .unwrap()
        .expect("credentials survive");
    let opened = f.vault().open(site.id, &blob).unwrap();
    assert_eq!(
        opened.entries()["secret_access_key"].expose_secret(),
        SECRET
    );

    let details = c.dataset_details(&by_name("kept")).await.unwrap();
    assert_eq!(details.dataset, dataset);
    assert_eq!(details.replicas.len(), 1);
    assert_eq!(details.effective_policy.as_ref(), Some(&policy));
    let labelled = DatasetFilter {
        labels: labels(&[("team", "ops")]),
        ..DatasetFilter::default()
    };
    let page = c.list_datasets(&labelled, &first_page()).await.unwrap();
    assert_eq!(page.items, vec![dataset]);
    assert_eq!(c.get_policy(&by_name("ops")).await.unwrap(), policy);

    // The reopened store writes too, and the optimistic-concurrency token still matches.
    let patch = SitePatch {
        credentials: Some(Credentials::default()),
        ..SitePatch::default()
    };
    let updated = c.update_site(&by_name("durable"), &patch).await.unwrap();
    assert!(updated.credential_keys.is_empty());
}
