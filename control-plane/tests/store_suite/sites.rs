//! Sites: creation, reads by id and by name, listing and pagination, updates, sealed
//! credentials and deletion.

use ferry_control_plane::domain::{
    name::Ref,
    page::PageRequest,
    site::{Credentials, PricesPatch, SitePatch},
    tier::Tier,
};
use secrecy::ExposeSecret;

use crate::fixture::{
    already_exists, by_name, create_site, credentials, first_page, invalid_argument, new_site,
    not_found, options, site_names, Fixture,
};

/// A secret that must never appear in what the store holds.
const CANARY: &str = "canary-7f3a9c-do-not-store";

pub async fn sites_are_created_and_read_back(f: &mut Fixture) {
    let c = &f.catalogue;
    let alpha = create_site(c, "alpha", "s3://ferry-alpha/data/", Tier::Hot).await;
    assert_eq!(alpha.name.as_str(), "alpha");
    assert_eq!(alpha.uri.to_string(), "s3://ferry-alpha/data");
    assert_eq!(alpha.tier, Tier::Hot);
    assert!(alpha.credential_keys.is_empty());
    assert_eq!(alpha.created_at, alpha.updated_at);
    let beta = create_site(c, "beta", "file:///srv/beta", Tier::Cold).await;

    assert_eq!(c.get_site(&Ref::Id(alpha.id)).await.unwrap(), alpha);
    assert_eq!(c.get_site(&by_name("alpha")).await.unwrap(), alpha);
    assert_eq!(c.get_site(&by_name("beta")).await.unwrap(), beta);

    let page = c.list_sites(None, &first_page()).await.unwrap();
    assert_eq!(page.items, vec![alpha.clone(), beta]);
    assert!(page.next_token.is_empty());

    let duplicate = c
        .create_site(
            new_site("alpha", "file:///srv/other", Tier::Warm),
            Credentials::default(),
        )
        .await;
    let message = already_exists(duplicate);
    assert!(message.contains("alpha"), "{message}");
    assert_eq!(c.get_site(&by_name("alpha")).await.unwrap(), alpha);

    let (kind, id) = not_found(c.get_site(&by_name("gamma")).await);
    assert_eq!((kind, id.as_str()), ("site", "gamma"));
}

pub async fn site_updates_persist(f: &mut Fixture) {
    let c = &f.catalogue;
    let mut new = new_site("alpha", "s3://ferry-alpha", Tier::Hot);
    new.options = options(&[("region", "eu-west-1")]);
    let before = c.create_site(new, Credentials::default()).await.unwrap();

    let patch = SitePatch {
        tier: Some(Tier::Warm),
        prices: PricesPatch {
            egress_per_gb: Some(0.02),
            ..PricesPatch::default()
        },
        options: Some(options(&[
            ("region", "us-east-2"),
            ("endpoint", "https://s3.example.com"),
        ])),
        ..SitePatch::default()
    };
    let updated = c.update_site(&by_name("alpha"), &patch).await.unwrap();
    assert_eq!(updated.tier, Tier::Warm);
    assert_eq!(updated.prices.egress_per_gb, 0.02);
    let mut other_prices = updated.prices;
    other_prices.egress_per_gb = before.prices.egress_per_gb;
    assert_eq!(other_prices, before.prices, "only egress changes");
    assert_eq!(updated.options["region"], "us-east-2");
    assert_eq!(updated.options["endpoint"], "https://s3.example.com");
    assert!(updated.updated_at > before.updated_at);
    assert_eq!(updated.created_at, before.created_at);
    assert_eq!(c.get_site(&Ref::Id(before.id)).await.unwrap(), updated);

    let warm = c.list_sites(Some(Tier::Warm), &first_page()).await.unwrap();
    assert_eq!(warm.items, vec![updated.clone()]);
    let hot = c.list_sites(Some(Tier::Hot), &first_page()).await.unwrap();
    assert!(hot.items.is_empty());

    let bad = SitePatch {
        latency_ms: Some(1),
        options: Some(options(&[("colour", "blue")])),
        ..SitePatch::default()
    };
    let reason = invalid_argument(
        c.update_site(&by_name("alpha"), &bad).await,
        "options[colour]",
    );
    assert!(reason.contains("region"), "{reason}");
    assert_eq!(
        c.get_site(&by_name("alpha")).await.unwrap(),
        updated,
        "a refused patch changes nothing"
    );
}

pub async fn site_credentials_are_sealed(f: &mut Fixture) {
    let c = &f.catalogue;
    let site = c
        .create_site(
            new_site("vaulted", "s3://ferry-vaulted", Tier::Cold),
            credentials(&[
                ("access_key_id", "AKIAFERRY"),
                ("secret_access_key", CANARY),
            ]),
        )
        .await
        .unwrap();
    let keys = vec!["access_key_id".to_owned(), "secret_access_key".to_owned()];
    assert_eq!(site.credential_keys, keys);
    let read = c.get_site(&Ref::Id(site.id)).await.unwrap();
    assert_eq!(read.credential_keys, keys);
    assert!(!format!("{read:?}").contains(CANARY));

    let blob = f
        .store()
        .site_credentials(site.id)
        .await
        .unwrap()
        .expect("the site has sealed credentials");
    assert!(
        !blob.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
        "the stored blob holds the secret in clear"
    );
    let opened = f.vault().open(site.id, &blob).unwrap();
    assert_eq!(opened.keys(), keys);
    assert_eq!(
        opened.entries()["secret_access_key"].expose_secret(),
        CANARY
    );

    // An update that does not mention credentials keeps them.
    let patch = SitePatch {
        latency_ms: Some(99),
        ..SitePatch::default()
    };
    c.update_site(&Ref::Id(site.id), &patch).await.unwrap();
    let kept = f.store().site_credentials(site.id).await.unwrap();
    assert_eq!(kept.as_deref(), Some(blob.as_slice()));

    let clear = SitePatch {
        credentials: Some(Credentials::default()),
        ..SitePatch::default()
    };
    let cleared = c.update_site(&Ref::Id(site.id), &clear).await.unwrap();
    assert!(cleared.credential_keys.is_empty());
    let read = c.get_site(&Ref::Id(site.id)).await.unwrap();
    assert!(read.credential_keys.is_empty());
    assert_eq!(read.latency_ms, 99);
    assert_eq!(f.store().site_credentials(site.id).await.unwrap(), None);
}

pub async fn deleted_site_is_gone(f: &mut Fixture) {
    let c = &f.catalogue;
    let alpha = create_site(c, "alpha", "memory://", Tier::Hot).await;
    let beta = create_site(c, "beta", "memory://", Tier::Hot).await;

    c.delete_site(&by_name("alpha")).await.unwrap();
    let (kind, id) = not_found(c.get_site(&Ref::Id(alpha.id)).await);
    assert_eq!((kind, id), ("site", alpha.id.to_string()));
    let (_, id) = not_found(c.get_site(&by_name("alpha")).await);
    assert_eq!(id, "alpha");
    let (_, id) = not_found(c.delete_site(&by_name("alpha")).await);
    assert_eq!(id, "alpha");
    not_found(f.store().site_credentials(alpha.id).await);

    let page = c.list_sites(None, &first_page()).await.unwrap();
    assert_eq!(page.items, vec![beta]);
}

pub async fn sites_paginate_in_name_order(f: &mut Fixture) {
    let c = &f.catalogue;
    let created = [
        ("golf", Tier::Cold),
        ("alpha", Tier::Hot),
        ("echo", Tier::Cold),
        ("charlie", Tier::Warm),
        ("foxtrot", Tier::Hot),
        ("bravo", Tier::Cold),
        ("delta", Tier::Hot),
    ];
    for (site, tier) in created {
        create_site(c, site, &format!("file:///srv/{site}"), tier).await;
    }

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let request = PageRequest::parse(3, &token).unwrap();
        let page = c.list_sites(None, &request).await.unwrap();
        pages.push(site_names(&page));
        token = page.next_token;
        if token.is_empty() {
            break;
        }
        assert!(pages.len() < 5, "pagination does not end: {pages:?}");
    }
    assert_eq!(
        pages,
        [
            vec!["alpha", "bravo", "charlie"],
            vec!["delta", "echo", "foxtrot"],
            vec!["golf"],
        ]
    );

    let cold = c.list_sites(Some(Tier::Cold), &first_page()).await.unwrap();
    assert_eq!(site_names(&cold), ["bravo", "echo", "golf"]);
    assert!(cold.items.iter().all(|s| s.tier == Tier::Cold));

    let first = c
        .list_sites(Some(Tier::Hot), &PageRequest::parse(2, "").unwrap())
        .await
        .unwrap();
    assert_eq!(site_names(&first), ["alpha", "delta"]);
    let next = PageRequest::parse(2, &first.next_token).unwrap();
    let last = c.list_sites(Some(Tier::Hot), &next).await.unwrap();
    assert_eq!(site_names(&last), ["foxtrot"]);
    assert!(last.next_token.is_empty());
}
