//! The audit record of a change is written in the change's own transaction: a change
//! that does not land leaves no record, one that lands leaves exactly one, and work no
//! caller asked for (the lifecycle the agents' reports drive) leaves none.

use chrono::Utc;
use ferry_control_plane::{
    call::Call,
    clock,
    domain::{
        audit::AuditFilter,
        name::Ref,
        principal::{Principal, Role, Who},
        site::SitePatch,
        tier::Tier,
    },
    store::CredentialsUpdate,
};

use crate::fixture::{create_site, first_page, Fixture};

fn operator() -> Principal {
    Principal {
        who: Who::Token("ops".into()),
        role: Role::Admin,
        ..Principal::anonymous()
    }
}

pub async fn a_change_and_its_record_land_together_or_not_at_all(f: &mut Fixture) {
    let c = f.catalogue.clone();
    // Outside a call: nothing is recorded.
    let site = create_site(&c, "alpha", "file:///srv/alpha", Tier::Hot).await;
    let records = |f: &Fixture| {
        let store = f.store().clone();
        async move {
            store
                .list_audit_events(&AuditFilter::default(), &first_page())
                .await
                .unwrap()
                .items
        }
    };
    assert!(records(f).await.is_empty());

    // A write that loses its race to another changes nothing, and records nothing.
    let stale = c.get_site(&Ref::Id(site.id)).await.unwrap();
    c.update_site(
        &Ref::Id(site.id),
        &SitePatch {
            latency_ms: Some(5),
            ..SitePatch::default()
        },
    )
    .await
    .unwrap();
    let mut lost = stale.clone();
    lost.latency_ms = 99;
    lost.updated_at = clock::SharedClock::system().next_update(stale.updated_at);
    let store = f.store().clone();
    let call = Call::new(operator(), "ferry.v1.SiteService/UpdateSite", Utc::now());
    let written = call
        .clone()
        .scope(store.update_site(
            &lost,
            stale.updated_at,
            CredentialsUpdate::Keep,
            "latency_ms=99",
        ))
        .await
        .unwrap();
    assert!(!written);
    assert!(!call.recorded());
    assert!(records(f).await.is_empty());

    // One that lands is recorded once, as the call's.
    let call = Call::new(operator(), "ferry.v1.SiteService/UpdateSite", Utc::now());
    let updated = call
        .clone()
        .scope(c.update_site(
            &Ref::Id(site.id),
            &SitePatch {
                latency_ms: Some(7),
                ..SitePatch::default()
            },
        ))
        .await
        .unwrap();
    assert_eq!(updated.latency_ms, 7);
    assert!(call.recorded());
    let events = records(f).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].principal, "token:ops");
    assert_eq!(events[0].resource, "site:alpha");
    assert_eq!(events[0].summary, "updated: latency_ms=7");
    assert_eq!(events[0].outcome, "ok");

    // A change refused by the catalogue's rules rolls its record back with it.
    let call = Call::new(operator(), "ferry.v1.SiteService/DeleteSite", Utc::now());
    create_site(&c, "beta", "file:///srv/beta", Tier::Warm).await;
    c.create_dataset(crate::fixture::new_dataset("d", "beta", "d", &[]))
        .await
        .unwrap();
    let beta = c.get_site(&crate::fixture::by_name("beta")).await.unwrap();
    let refused = call.clone().scope(f.store().delete_site(&beta)).await;
    assert!(refused.is_err());
    assert!(!call.recorded());
    assert_eq!(records(f).await.len(), 1);
}
