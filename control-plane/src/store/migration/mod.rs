//! Schema migrations, applied in order at start-up. A migration, once released, is never
//! edited: changes come as new migrations.

use sea_orm_migration::prelude::*;

mod m20261122_000001_catalogue;
mod m20261122_000002_jobs;
mod m20261122_000003_access;
mod m20261122_000004_recommendations;
mod m20261123_000005_site_bandwidth;
mod m20261123_000006_copy_tasks;
mod m20261201_000007_job_progress;
mod m20261202_000008_agent_jobs;
mod m20261204_000009_access_control;
mod m20261205_000010_demand_models;
mod m20261205_000011_trace_context;
mod m20261206_000012_sync;
mod m20261206_000013_final_pass;
mod m20261206_000014_sync_schedules;
mod m20261207_000015_sync_changes;
mod m20261208_000016_policy_cron;
mod m20261209_000017_manifest_compare;
mod m20261210_000018_task_key_index;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_catalogue::Migration),
            Box::new(m20261122_000002_jobs::Migration),
            Box::new(m20261122_000003_access::Migration),
            Box::new(m20261122_000004_recommendations::Migration),
            Box::new(m20261123_000005_site_bandwidth::Migration),
            Box::new(m20261123_000006_copy_tasks::Migration),
            Box::new(m20261201_000007_job_progress::Migration),
            Box::new(m20261202_000008_agent_jobs::Migration),
            Box::new(m20261204_000009_access_control::Migration),
            Box::new(m20261205_000010_demand_models::Migration),
            Box::new(m20261205_000011_trace_context::Migration),
            Box::new(m20261206_000012_sync::Migration),
            Box::new(m20261206_000013_final_pass::Migration),
            Box::new(m20261206_000014_sync_schedules::Migration),
            Box::new(m20261207_000015_sync_changes::Migration),
            Box::new(m20261208_000016_policy_cron::Migration),
            Box::new(m20261209_000017_manifest_compare::Migration),
            Box::new(m20261210_000018_task_key_index::Migration),
        ]
    }
}
