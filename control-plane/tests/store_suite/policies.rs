//! Policies: selectors and placements, the effective policy of a dataset, validation,
//! updates and deletion.

use std::{collections::BTreeMap, time::Duration};

use ferry_control_plane::domain::{
    name::Ref,
    page::PageRequest,
    policy::{DueRun, PolicyPatch, PolicyRuns, ScheduleWindow},
    schedule::When,
    tier::{Tier, VerifyMode},
};

use crate::fixture::{
    already_exists, by_name, create_dataset, create_site, first_page, invalid_argument, labels,
    name, new_dataset, not_found, policy_names, Fixture,
};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A policy over `team=genomics` that keeps hot data on `fast` and cold data on `deep`.
fn genomics_policy() -> PolicyPatch {
    PolicyPatch {
        description: Some("genomics data ages into the archive".to_owned()),
        selector: Some(labels(&[("team", "genomics")])),
        priority: Some(10),
        hot_after: Some(HOUR),
        warm_after: Some(7 * DAY),
        placements: Some(vec![
            (Tier::Hot, by_name("fast")),
            (Tier::Cold, by_name("deep")),
        ]),
        monthly_cost_target: Some(Some(120.5)),
        min_residency: Some(DAY),
        auto_migrate: Some(true),
        verify_mode: Some(VerifyMode::Full),
        schedule_window: Some(Some(ScheduleWindow::parse("22:00", "06:00").unwrap())),
        bandwidth_limit: Some(Some(50 << 20)),
        max_concurrent_migrations: Some(Some(3)),
        ..PolicyPatch::default()
    }
}

/// A policy with only a selector and a priority.
fn selecting(pairs: &[(&str, &str)], priority: i32) -> PolicyPatch {
    PolicyPatch {
        selector: Some(labels(pairs)),
        priority: Some(priority),
        ..PolicyPatch::default()
    }
}

pub async fn policies_are_created_with_placements(f: &mut Fixture) {
    let c = &f.catalogue;
    let fast = create_site(c, "fast", "file:///srv/fast", Tier::Hot).await;
    let deep = create_site(c, "deep", "s3://ferry-deep", Tier::Cold).await;

    let created = c
        .create_policy(name("genomics-tiering"), &genomics_policy())
        .await
        .unwrap();
    let expected = BTreeMap::from([(Tier::Hot, fast.id), (Tier::Cold, deep.id)]);
    assert_eq!(created.spec.placements, expected);
    assert_eq!(created.spec.selector, labels(&[("team", "genomics")]));
    assert_eq!(created.spec.warm_after, 7 * DAY);

    let read = c.get_policy(&by_name("genomics-tiering")).await.unwrap();
    assert_eq!(read, created);
    assert_eq!(read.spec.placements, expected);
    assert_eq!(c.get_policy(&Ref::Id(created.id)).await.unwrap(), created);

    let duplicate = c
        .create_policy(name("genomics-tiering"), &selecting(&[("a", "b")], 0))
        .await;
    let message = already_exists(duplicate);
    assert!(message.contains("genomics-tiering"), "{message}");

    let (kind, id) = not_found(c.get_policy(&by_name("nothing")).await);
    assert_eq!((kind, id.as_str()), ("policy", "nothing"));
}

pub async fn effective_policy_is_the_highest_priority_match(f: &mut Fixture) {
    let c = &f.catalogue;
    create_site(c, "lab", "file:///srv/lab", Tier::Hot).await;
    let genomics = [("team", "genomics")];
    c.create_policy(name("broad"), &selecting(&genomics, 1))
        .await
        .unwrap();
    let narrow = c
        .create_policy(
            name("narrow"),
            &selecting(&[("team", "genomics"), ("env", "prod")], 5),
        )
        .await
        .unwrap();
    c.create_policy(name("unrelated"), &selecting(&[("team", "physics")], 100))
        .await
        .unwrap();
    create_dataset(
        c,
        new_dataset(
            "prod-data",
            "lab",
            "prod",
            &[("team", "genomics"), ("env", "prod")],
        ),
    )
    .await;
    create_dataset(
        c,
        new_dataset(
            "dev-data",
            "lab",
            "dev",
            &[("team", "genomics"), ("env", "dev")],
        ),
    )
    .await;
    create_dataset(
        c,
        new_dataset("loose", "lab", "loose", &[("team", "chemistry")]),
    )
    .await;

    let effective = |dataset: &'static str| async move {
        let details = c.dataset_details(&by_name(dataset)).await.unwrap();
        details.effective_policy.map(|p| p.name.to_string())
    };
    assert_eq!(effective("prod-data").await.as_deref(), Some("narrow"));
    assert_eq!(effective("dev-data").await.as_deref(), Some("broad"));
    assert_eq!(effective("loose").await, None);
    let details = c.dataset_details(&by_name("prod-data")).await.unwrap();
    assert_eq!(details.effective_policy, Some(narrow));

    let listed = |dataset: Option<&'static str>, page: PageRequest| async move {
        let dataset = dataset.map(by_name);
        let page = c.list_policies(dataset.as_ref(), &page).await.unwrap();
        (policy_names(&page), page.next_token)
    };
    let (all, _) = listed(None, first_page()).await;
    assert_eq!(all, ["broad", "narrow", "unrelated"]);
    let (matching, _) = listed(Some("prod-data"), first_page()).await;
    assert_eq!(matching, ["broad", "narrow"]);
    let (matching, _) = listed(Some("dev-data"), first_page()).await;
    assert_eq!(matching, ["broad"]);
    let (matching, _) = listed(Some("loose"), first_page()).await;
    assert!(matching.is_empty());

    let (first, token) = listed(Some("prod-data"), PageRequest::parse(1, "").unwrap()).await;
    assert_eq!(first, ["broad"]);
    let next = PageRequest::parse(1, &token).unwrap();
    let (second, token) = listed(Some("prod-data"), next).await;
    assert_eq!(second, ["narrow"]);
    assert!(token.is_empty());

    let missing = c
        .list_policies(Some(&by_name("no-such-data")), &first_page())
        .await;
    let reason = invalid_argument(missing, "dataset");
    assert!(reason.contains("no-such-data"), "{reason}");
}

pub async fn invalid_policies_are_refused(f: &mut Fixture) {
    let c = &f.catalogue;
    create_site(c, "fast", "file:///srv/fast", Tier::Hot).await;
    create_site(c, "deep", "file:///srv/deep", Tier::Cold).await;

    let inverted = PolicyPatch {
        hot_after: Some(DAY),
        warm_after: Some(HOUR),
        ..genomics_policy()
    };
    let reason = invalid_argument(c.create_policy(name("p"), &inverted).await, "warm_after");
    assert!(reason.contains("hot_after"), "{reason}");
    let equal = PolicyPatch {
        hot_after: Some(DAY),
        warm_after: Some(DAY),
        ..genomics_policy()
    };
    invalid_argument(c.create_policy(name("p"), &equal).await, "warm_after");

    let misplaced = PolicyPatch {
        placements: Some(vec![
            (Tier::Hot, by_name("nowhere")),
            (Tier::Cold, by_name("deep")),
        ]),
        ..genomics_policy()
    };
    let reason = invalid_argument(
        c.create_policy(name("p"), &misplaced).await,
        "placements[hot].site",
    );
    assert!(reason.contains("nowhere"), "{reason}");

    let twice = PolicyPatch {
        placements: Some(vec![
            (Tier::Hot, by_name("fast")),
            (Tier::Hot, by_name("deep")),
        ]),
        ..genomics_policy()
    };
    invalid_argument(c.create_policy(name("p"), &twice).await, "placements[hot]");

    let no_selector = PolicyPatch {
        selector: None,
        ..genomics_policy()
    };
    invalid_argument(c.create_policy(name("p"), &no_selector).await, "selector");
    let empty_selector = PolicyPatch {
        selector: Some(labels(&[])),
        ..genomics_policy()
    };
    invalid_argument(
        c.create_policy(name("p"), &empty_selector).await,
        "selector",
    );

    let page = c.list_policies(None, &first_page()).await.unwrap();
    assert!(page.items.is_empty(), "nothing refused was stored");
    not_found(c.get_policy(&by_name("p")).await);
}

pub async fn policy_updates_persist_and_deletes_remove(f: &mut Fixture) {
    let c = &f.catalogue;
    let fast = create_site(c, "fast", "file:///srv/fast", Tier::Hot).await;
    let deep = create_site(c, "deep", "file:///srv/deep", Tier::Cold).await;
    let created = c
        .create_policy(name("genomics"), &genomics_policy())
        .await
        .unwrap();

    let patch = PolicyPatch {
        priority: Some(20),
        warm_after: Some(30 * DAY),
        placements: Some(vec![
            (Tier::Hot, Ref::Id(fast.id)),
            (Tier::Warm, by_name("deep")),
        ]),
        schedule_window: Some(None),
        monthly_cost_target: Some(None),
        ..PolicyPatch::default()
    };
    let updated = c.update_policy(&by_name("genomics"), &patch).await.unwrap();
    assert_eq!(updated.spec.priority, 20);
    assert_eq!(updated.spec.warm_after, 30 * DAY);
    assert_eq!(
        updated.spec.placements,
        BTreeMap::from([(Tier::Hot, fast.id), (Tier::Warm, deep.id)])
    );
    assert_eq!(updated.spec.schedule_window, None);
    assert_eq!(updated.spec.monthly_cost_target, None);
    assert_eq!(updated.spec.selector, created.spec.selector);
    assert_eq!(updated.spec.hot_after, created.spec.hot_after);
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(c.get_policy(&Ref::Id(created.id)).await.unwrap(), updated);

    let too_short = PolicyPatch {
        warm_after: Some(Duration::from_secs(1)),
        ..PolicyPatch::default()
    };
    invalid_argument(
        c.update_policy(&by_name("genomics"), &too_short).await,
        "warm_after",
    );
    assert_eq!(
        c.get_policy(&by_name("genomics")).await.unwrap(),
        updated,
        "a refused patch changes nothing"
    );

    c.delete_policy(&by_name("genomics")).await.unwrap();
    let (kind, id) = not_found(c.get_policy(&Ref::Id(created.id)).await);
    assert_eq!((kind, id), ("policy", created.id.to_string()));
    not_found(c.delete_policy(&by_name("genomics")).await);
    let page = c.list_policies(None, &first_page()).await.unwrap();
    assert!(page.items.is_empty());
}

pub async fn a_policy_cron_due_time_is_claimed_once(f: &mut Fixture) {
    let c = &f.catalogue;
    create_site(c, "fast", "file:///srv/fast", Tier::Hot).await;
    create_site(c, "deep", "file:///srv/deep", Tier::Cold).await;
    let nightly = When::parse("0 3 * * *", "Europe/Paris").unwrap();
    let both = PolicyPatch {
        cron: Some(Some(nightly.clone())),
        ..genomics_policy()
    };
    invalid_argument(c.create_policy(name("genomics"), &both).await, "cron");
    let scheduled = PolicyPatch {
        schedule_window: Some(None),
        ..both
    };
    let created = c.create_policy(name("genomics"), &scheduled).await.unwrap();
    let due = created.runs.next_run_at.expect("a next due time");
    assert_eq!(Some(due), nightly.next_after(created.created_at));
    assert_eq!(created.spec.cron.as_ref(), Some(&nightly));

    // The first check of a due time claims it; a second check of it claims nothing.
    let store = f.store().clone();
    let next = nightly.next_after(due);
    assert!(store
        .claim_policy_due(created.id, due, next, DueRun::Run)
        .await
        .unwrap());
    assert!(!store
        .claim_policy_due(created.id, due, next, DueRun::Run)
        .await
        .unwrap());
    assert!(store
        .claim_policy_due(created.id, next.unwrap(), None, DueRun::Skip)
        .await
        .unwrap());
    store
        .set_policy_error(created.id, Some("site deep is gone"))
        .await
        .unwrap();
    let read = c.get_policy(&Ref::Id(created.id)).await.unwrap();
    assert_eq!(
        read.runs,
        PolicyRuns {
            next_run_at: None,
            runs: 1,
            skipped: 1,
            last_error: Some("site deep is gone".to_owned()),
        }
    );
    assert!(!store.policy_has_unfinished_jobs(created.id).await.unwrap());

    // An update that leaves the cron alone leaves its due time alone.
    let unrelated = PolicyPatch {
        priority: Some(3),
        ..PolicyPatch::default()
    };
    let updated = c
        .update_policy(&by_name("genomics"), &unrelated)
        .await
        .unwrap();
    assert_eq!(updated.runs, read.runs);
    // Automatic migrations off: no due time; on again: due from now.
    let off = PolicyPatch {
        auto_migrate: Some(false),
        ..PolicyPatch::default()
    };
    let paused = c.update_policy(&by_name("genomics"), &off).await.unwrap();
    assert_eq!(paused.runs.next_run_at, None);
    assert_eq!(paused.spec.cron.as_ref(), Some(&nightly), "the cron stays");
    let on = PolicyPatch {
        auto_migrate: Some(true),
        ..PolicyPatch::default()
    };
    let resumed = c.update_policy(&by_name("genomics"), &on).await.unwrap();
    assert_eq!(
        resumed.runs.next_run_at,
        nightly.next_after(resumed.updated_at)
    );
    assert_eq!(c.get_policy(&Ref::Id(created.id)).await.unwrap(), resumed);
    // Cleared: no cron, no due time.
    let cleared = PolicyPatch {
        cron: Some(None),
        ..PolicyPatch::default()
    };
    let cleared = c
        .update_policy(&by_name("genomics"), &cleared)
        .await
        .unwrap();
    assert_eq!((cleared.spec.cron, cleared.runs.next_run_at), (None, None));
}
