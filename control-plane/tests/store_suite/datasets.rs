//! Datasets: creation with labels and a primary replica, filtered listings, conflicts,
//! updates and deletion.

use ferry_control_plane::domain::{
    dataset::{DatasetFilter, DatasetPatch, Replica, ReplicaRole, ReplicaState},
    name::Ref,
    tier::Tier,
};

use crate::fixture::{
    already_exists, by_name, create_dataset, create_site, dataset_names, first_page,
    invalid_argument, labels, new_dataset, not_found, Fixture,
};

pub async fn datasets_are_created_with_a_primary_replica(f: &mut Fixture) {
    let c = &f.catalogue;
    let site = create_site(c, "lab", "s3://ferry-lab/root", Tier::Warm).await;
    let created = create_dataset(
        c,
        new_dataset(
            "genome-raw",
            "lab",
            "/genomics/raw/",
            &[("team", "genomics"), ("env", "prod")],
        ),
    )
    .await;
    assert_eq!(created.site_id, site.id);
    assert_eq!(created.path.as_str(), "genomics/raw");
    assert_eq!(
        created.current_tier,
        Tier::Warm,
        "the tier defaults to the site's"
    );
    assert_eq!(
        created.labels,
        labels(&[("team", "genomics"), ("env", "prod")])
    );

    assert_eq!(c.get_dataset(&Ref::Id(created.id)).await.unwrap(), created);
    assert_eq!(
        c.get_dataset(&by_name("genome-raw")).await.unwrap(),
        created
    );

    let details = c.dataset_details(&by_name("genome-raw")).await.unwrap();
    assert_eq!(details.dataset, created);
    assert_eq!(
        details.replicas,
        vec![Replica {
            dataset_id: created.id,
            site_id: site.id,
            path: "genomics/raw".to_owned(),
            role: ReplicaRole::Primary,
            state: ReplicaState::Ready,
            verified_at: None,
            manifest: None,
            synced_at: None,
        }]
    );
    assert!(details.effective_policy.is_none());

    let mut explicit = new_dataset("genome-hot", "lab", "genomics/hot", &[]);
    explicit.current_tier = Some(Tier::Hot);
    let explicit = create_dataset(c, explicit).await;
    assert_eq!(explicit.current_tier, Tier::Hot);
    assert!(explicit.labels.is_empty());
    assert_eq!(
        c.get_dataset(&by_name("genome-hot")).await.unwrap(),
        explicit
    );

    let (kind, id) = not_found(c.get_dataset(&by_name("genome-missing")).await);
    assert_eq!((kind, id.as_str()), ("dataset", "genome-missing"));
}

pub async fn datasets_filter_by_site_tier_owner_and_labels(f: &mut Fixture) {
    let c = &f.catalogue;
    create_site(c, "site-a", "file:///srv/a", Tier::Hot).await;
    create_site(c, "site-b", "file:///srv/b", Tier::Cold).await;
    create_dataset(
        c,
        new_dataset(
            "d1",
            "site-a",
            "d1",
            &[("team", "genomics"), ("env", "prod")],
        ),
    )
    .await;
    let mut d2 = new_dataset(
        "d2",
        "site-a",
        "d2",
        &[("team", "genomics"), ("env", "dev")],
    );
    d2.current_tier = Some(Tier::Cold);
    d2.owner = "bob".to_owned();
    create_dataset(c, d2).await;
    create_dataset(
        c,
        new_dataset(
            "d3",
            "site-b",
            "d3",
            &[("team", "physics"), ("env", "prod")],
        ),
    )
    .await;

    let list = |filter: DatasetFilter| async move {
        let page = c.list_datasets(&filter, &first_page()).await.unwrap();
        dataset_names(&page)
    };
    assert_eq!(list(DatasetFilter::default()).await, ["d1", "d2", "d3"]);
    let by_site = |site: &str| DatasetFilter {
        site: Some(by_name(site)),
        ..DatasetFilter::default()
    };
    assert_eq!(list(by_site("site-a")).await, ["d1", "d2"]);
    assert_eq!(list(by_site("site-b")).await, ["d3"]);
    let cold = DatasetFilter {
        tier: Some(Tier::Cold),
        ..DatasetFilter::default()
    };
    assert_eq!(list(cold).await, ["d2", "d3"]);
    let alice = DatasetFilter {
        owner: Some("alice".to_owned()),
        ..DatasetFilter::default()
    };
    assert_eq!(list(alice).await, ["d1", "d3"]);
    let both_labels = DatasetFilter {
        labels: labels(&[("team", "genomics"), ("env", "prod")]),
        ..DatasetFilter::default()
    };
    assert_eq!(list(both_labels).await, ["d1"], "both labels must match");
    let site_and_tier = DatasetFilter {
        tier: Some(Tier::Cold),
        ..by_site("site-a")
    };
    assert_eq!(list(site_and_tier).await, ["d2"]);
    let named = |text: &str| DatasetFilter {
        name_contains: Some(text.to_owned()),
        ..DatasetFilter::default()
    };
    assert_eq!(list(named("d")).await, ["d1", "d2", "d3"]);
    assert_eq!(list(named("2")).await, ["d2"]);
    // LIKE's wildcards are taken literally.
    assert!(list(named("_")).await.is_empty());
    assert!(list(named("%")).await.is_empty());

    let missing = c.list_datasets(&by_site("site-z"), &first_page()).await;
    let reason = invalid_argument(missing, "site");
    assert!(reason.contains("site-z"), "{reason}");
}

pub async fn dataset_conflicts_and_missing_sites_are_refused(f: &mut Fixture) {
    let c = &f.catalogue;
    create_site(c, "lab", "file:///srv/lab", Tier::Hot).await;
    let first = create_dataset(c, new_dataset("first", "lab", "shared/path", &[])).await;

    let same_place = c
        .create_dataset(new_dataset("second", "lab", "/shared/path/", &[]))
        .await;
    let message = already_exists(same_place);
    assert!(message.contains("shared/path"), "{message}");
    not_found(c.get_dataset(&by_name("second")).await);

    let same_name = c
        .create_dataset(new_dataset("first", "lab", "other/path", &[]))
        .await;
    let message = already_exists(same_name);
    assert!(message.contains("first"), "{message}");

    let nowhere = c
        .create_dataset(new_dataset("orphan", "missing-site", "x", &[]))
        .await;
    let reason = invalid_argument(nowhere, "site");
    assert!(reason.contains("missing-site"), "{reason}");

    let page = c
        .list_datasets(&DatasetFilter::default(), &first_page())
        .await
        .unwrap();
    assert_eq!(page.items, vec![first]);
}

pub async fn dataset_updates_replace_labels_and_deletes_remove(f: &mut Fixture) {
    let c = &f.catalogue;
    create_site(c, "lab", "file:///srv/lab", Tier::Hot).await;
    let created = create_dataset(
        c,
        new_dataset(
            "genome",
            "lab",
            "genome",
            &[("team", "genomics"), ("env", "prod")],
        ),
    )
    .await;

    let patch = DatasetPatch {
        labels: Some(labels(&[("team", "biology")])),
        current_tier: Some(Tier::Cold),
        latency_slo_ms: Some(None),
        size_bytes: Some(42),
        ..DatasetPatch::default()
    };
    let updated = c.update_dataset(&by_name("genome"), &patch).await.unwrap();
    assert_eq!(updated.labels, labels(&[("team", "biology")]));
    assert_eq!(updated.current_tier, Tier::Cold);
    assert_eq!(updated.latency_slo_ms, None);
    assert_eq!(updated.size_bytes, 42);
    assert_eq!(updated.object_count, created.object_count);
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(c.get_dataset(&Ref::Id(created.id)).await.unwrap(), updated);

    let with_labels = |pairs: &[(&str, &str)]| DatasetFilter {
        labels: labels(pairs),
        ..DatasetFilter::default()
    };
    let matching = |filter: DatasetFilter| async move {
        let page = c.list_datasets(&filter, &first_page()).await.unwrap();
        dataset_names(&page)
    };
    assert!(matching(with_labels(&[("env", "prod")])).await.is_empty());
    assert!(matching(with_labels(&[("team", "genomics")]))
        .await
        .is_empty());
    assert_eq!(
        matching(with_labels(&[("team", "biology")])).await,
        ["genome"]
    );

    c.delete_dataset(&by_name("genome")).await.unwrap();
    let (kind, id) = not_found(c.get_dataset(&Ref::Id(created.id)).await);
    assert_eq!((kind, id), ("dataset", created.id.to_string()));
    not_found(
        c.dataset_details(&by_name("genome"))
            .await
            .map(|d| d.dataset),
    );
    not_found(c.delete_dataset(&by_name("genome")).await);
    assert!(matching(with_labels(&[("team", "biology")]))
        .await
        .is_empty());
    assert!(f.store().replicas(created.id).await.unwrap().is_empty());

    // Nothing of the dataset is left to hold its site.
    c.delete_site(&by_name("lab")).await.unwrap();
}
