//! The store conformance suite: the catalogue's use cases and the store port, exercised
//! the same way against every database backend. SQLite always runs. The PostgreSQL cases
//! are ignored unless asked for, so that without a server they are reported as skipped
//! rather than passed; asked for, they need `FERRY_TEST_DATABASE_URL` to name an admin
//! URL (each test makes a database of its own) and fail when it does not:
//!
//! ```text
//! FERRY_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo nextest run -p ferry-control-plane --test store_suite --run-ignored all
//! ```

#![allow(clippy::unwrap_used)]

#[path = "store_suite/access.rs"]
mod access;
#[path = "store_suite/agents.rs"]
mod agents;
#[path = "store_suite/audit.rs"]
mod audit;
#[path = "store_suite/consistency.rs"]
mod consistency;
#[path = "store_suite/datasets.rs"]
mod datasets;
#[path = "store_suite/fixture.rs"]
mod fixture;
#[path = "store_suite/jobs.rs"]
mod jobs;
#[path = "store_suite/models.rs"]
mod models;
#[path = "store_suite/policies.rs"]
mod policies;
#[path = "store_suite/schedules.rs"]
mod schedules;
#[path = "store_suite/sites.rs"]
mod sites;
#[path = "store_suite/sync.rs"]
mod sync;

/// Generates `sqlite::<test>` and `postgres::<test>` for each `module::test` listed, in
/// the manner of quickwit's `metastore_test_suite!`. A test is an
/// `async fn(&mut Fixture)`; the fixture is torn down even when it panics.
macro_rules! store_test_suite {
    (@run $fixture:ident, $module:ident :: $test:ident) => {
        let mut $fixture = $fixture;
        let outcome = ::futures::FutureExt::catch_unwind(::std::panic::AssertUnwindSafe(
            crate::$module::$test(&mut $fixture),
        ))
        .await;
        $fixture.finish(outcome).await;
    };
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let fixture = crate::fixture::Fixture::sqlite().await;
                    store_test_suite!(@run fixture, $module::$test);
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set FERRY_TEST_DATABASE_URL"]
                async fn $test() {
                    let fixture = crate::fixture::Fixture::postgres().await;
                    store_test_suite!(@run fixture, $module::$test);
                }
            )*
        }
    };
}

store_test_suite!(
    sites::sites_are_created_and_read_back,
    sites::site_updates_persist,
    sites::site_credentials_are_sealed,
    sites::deleted_site_is_gone,
    sites::sites_paginate_in_name_order,
    datasets::datasets_are_created_with_a_primary_replica,
    datasets::datasets_filter_by_site_tier_owner_and_labels,
    datasets::dataset_conflicts_and_missing_sites_are_refused,
    datasets::dataset_updates_replace_labels_and_deletes_remove,
    policies::policies_are_created_with_placements,
    policies::effective_policy_is_the_highest_priority_match,
    policies::invalid_policies_are_refused,
    policies::policy_updates_persist_and_deletes_remove,
    policies::a_policy_cron_due_time_is_claimed_once,
    consistency::site_delete_is_refused_while_referenced,
    consistency::stale_site_write_is_refused,
    consistency::concurrent_site_updates_all_land,
    consistency::catalogue_survives_reconnect,
    access::access_folds_add_up_and_commit_with_their_cursor,
    agents::heartbeats_record_the_jobs_each_agent_runs,
    jobs::job_counters_follow_object_reports,
    jobs::concurrent_reports_count_each_object_once,
    jobs::objects_deleted_at_the_source_leave_the_totals_and_wait_for_deletion,
    jobs::a_task_is_a_first_dispatch_only_when_none_of_its_objects_was_recorded,
    jobs::a_migrations_manifest_holds_the_objects_it_copied_as_listed,
    audit::a_change_and_its_record_land_together_or_not_at_all,
    models::models_keep_versions_and_the_latest_forecast,
    schedules::reported_changes_wait_until_a_run_takes_them,
    sync::a_manifest_keeps_the_entries_a_run_found_unchanged,
    sync::a_manifest_gives_back_keys_times_and_etags_as_recorded,
);
