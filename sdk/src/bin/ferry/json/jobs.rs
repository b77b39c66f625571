//! `--json` forms of migration jobs, their progress and objects, dry-run reports and
//! agents, in the conventions of the parent module.

use ferry_sdk::pb;
use serde_json::Value;

use super::{array, duration, enum_value, timestamp, Object, ToJson};

impl ToJson for pb::ObjectFilter {
    fn to_json(&self) -> Value {
        Object::new()
            .field("prefix", self.prefix.as_str())
            .field("include", self.include.clone())
            .field("exclude", self.exclude.clone())
            .field("min_size", self.min_size)
            .field("max_size", self.max_size)
            .field("modified_before", timestamp(self.modified_before.as_ref()))
            .field("modified_after", timestamp(self.modified_after.as_ref()))
            .done()
    }
}

impl ToJson for pb::Job {
    fn to_json(&self) -> Value {
        Object::new()
            .field("id", self.id.as_str())
            .field("idempotency_key", self.idempotency_key.as_str())
            .field("dataset", self.dataset.as_str())
            .field("source_site", self.source_site.as_str())
            .field("source_path", self.source_path.as_str())
            .field("destination_site", self.destination_site.as_str())
            .field("destination_path", self.destination_path.as_str())
            .field("executing_site", self.executing_site.as_str())
            .field("storage_class", self.storage_class.as_str())
            .field(
                "verify_mode",
                enum_value::<pb::VerifyMode>(self.verify_mode),
            )
            .field("retire_source", self.retire_source)
            .field("filter", self.filter.as_ref().map(ToJson::to_json))
            .field("state", enum_value::<pb::JobState>(self.state))
            .field("attempt", self.attempt)
            .field("error", self.error.as_str())
            .field("objects_total", self.objects_total)
            .field("objects_done", self.objects_done)
            .field("objects_failed", self.objects_failed)
            .field("bytes_total", self.bytes_total)
            .field("bytes_done", self.bytes_done)
            .field(
                "bandwidth_limit_bytes_per_sec",
                self.bandwidth_limit_bytes_per_sec,
            )
            .field("source_retired", self.source_retired)
            .field("create_time", timestamp(self.create_time.as_ref()))
            .field("start_time", timestamp(self.start_time.as_ref()))
            .field("update_time", timestamp(self.update_time.as_ref()))
            .field("end_time", timestamp(self.end_time.as_ref()))
            .field("kind", enum_value::<pb::JobKind>(self.kind))
            .field("sync", self.sync.as_ref().map(ToJson::to_json))
            .field("final_pass", self.final_pass)
            .field("source_changes", self.source_changes)
            .field("schedule", self.schedule.as_str())
            .field("policy", self.policy.as_str())
            .done()
    }
}

impl ToJson for pb::SyncSettings {
    fn to_json(&self) -> Value {
        Object::new()
            .field("deletion", enum_value::<pb::DeletionRule>(self.deletion))
            .field("max_delete", self.max_delete)
            .field("objects_unchanged", self.objects_unchanged)
            .field("extras_found", self.extras_found)
            .field("extras_deleted", self.extras_deleted)
            .field("changed_keys", self.changed_keys)
            .done()
    }
}

impl ToJson for pb::ObjectError {
    fn to_json(&self) -> Value {
        Object::new()
            .field("key", self.key.as_str())
            .field("operation", self.operation.as_str())
            .field("message", self.message.as_str())
            .field("attempts", self.attempts)
            .done()
    }
}

impl ToJson for pb::JobProgress {
    fn to_json(&self) -> Value {
        // A rate that is not a number has no JSON form; it means nothing was measured.
        let rate = if self.bytes_per_sec.is_finite() {
            self.bytes_per_sec
        } else {
            0.0
        };
        Object::new()
            .field("job", self.job.as_ref().map(ToJson::to_json))
            .field("bytes_per_sec", rate)
            .field("eta", duration(self.eta.as_ref()))
            .field("recent_errors", array(&self.recent_errors))
            .done()
    }
}

impl ToJson for pb::JobObject {
    fn to_json(&self) -> Value {
        Object::new()
            .field("key", self.key.as_str())
            .field("size", self.size)
            .field("status", enum_value::<pb::ObjectStatus>(self.status))
            .field("source_xxh3", self.source_xxh3.as_str())
            .field("destination_xxh3", self.destination_xxh3.as_str())
            .field("attempts", self.attempts)
            .field("operation", self.operation.as_str())
            .field("error", self.error.as_str())
            .field("source_changed", self.source_changed)
            .done()
    }
}

impl ToJson for pb::PlannedObject {
    fn to_json(&self) -> Value {
        Object::new()
            .field("key", self.key.as_str())
            .field("size", self.size)
            .done()
    }
}

impl ToJson for pb::DryRunReport {
    fn to_json(&self) -> Value {
        Object::new()
            .field("objects", self.objects)
            .field("bytes", self.bytes)
            .field("sample", array(&self.sample))
            .field("estimated_cost", self.estimated_cost)
            .done()
    }
}

impl ToJson for pb::PlanMigrationResponse {
    fn to_json(&self) -> Value {
        Object::new()
            .field("job", self.job.as_ref().map(ToJson::to_json))
            .field("created", self.created)
            .field("dry_run", self.dry_run.as_ref().map(ToJson::to_json))
            .done()
    }
}

impl ToJson for pb::PlanSyncResponse {
    fn to_json(&self) -> Value {
        Object::new()
            .field("job", self.job.as_ref().map(ToJson::to_json))
            .field("created", self.created)
            .done()
    }
}

impl ToJson for pb::Agent {
    fn to_json(&self) -> Value {
        Object::new()
            .field("id", self.id.as_str())
            .field("site", self.site.as_str())
            .field("version", self.version.as_str())
            .field("hostname", self.hostname.as_str())
            .field("state", enum_value::<pb::AgentState>(self.state))
            .field("concurrency", self.concurrency)
            .field(
                "last_heartbeat_time",
                timestamp(self.last_heartbeat_time.as_ref()),
            )
            .field("register_time", timestamp(self.register_time.as_ref()))
            .field("jobs", self.jobs.clone())
            .done()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn a_job_prints_every_field_with_short_enums() {
        let job = pb::Job {
            id: "0193a".into(),
            idempotency_key: "nightly-1".into(),
            dataset: "genome".into(),
            source_site: "nvme-a".into(),
            source_path: "projects/genome".into(),
            destination_site: "archive".into(),
            destination_path: "genome".into(),
            executing_site: "nvme-a".into(),
            storage_class: "GLACIER_IR".into(),
            verify_mode: pb::VerifyMode::Full.into(),
            retire_source: true,
            filter: Some(pb::ObjectFilter {
                prefix: "raw/".into(),
                include: vec!["*.bam".into()],
                exclude: vec![],
                min_size: 65_536,
                max_size: 0,
                modified_before: ts(1_700_000_000),
                modified_after: None,
            }),
            state: pb::JobState::Copying.into(),
            attempt: 2,
            error: String::new(),
            objects_total: 40,
            objects_done: 12,
            objects_failed: 1,
            bytes_total: 4 << 30,
            bytes_done: 1 << 30,
            bandwidth_limit_bytes_per_sec: 20_000_000,
            source_retired: false,
            create_time: ts(1_700_000_000),
            start_time: ts(1_700_000_060),
            update_time: None,
            end_time: None,
            kind: pb::JobKind::Sync.into(),
            sync: Some(pb::SyncSettings {
                deletion: pb::DeletionRule::Delete.into(),
                max_delete: 10,
                objects_unchanged: 28,
                extras_found: 3,
                extras_deleted: 0,
                changed_keys: 7,
            }),
            final_pass: true,
            source_changes: 2,
            schedule: "0193b".into(),
            policy: "0193c".into(),
        };
        let expected = json!({
            "id": "0193a",
            "idempotency_key": "nightly-1",
            "dataset": "genome",
            "source_site": "nvme-a",
            "source_path": "projects/genome",
            "destination_site": "archive",
            "destination_path": "genome",
            "executing_site": "nvme-a",
            "storage_class": "GLACIER_IR",
            "verify_mode": "full",
            "retire_source": true,
            "filter": {
                "prefix": "raw/",
                "include": ["*.bam"],
                "exclude": [],
                "min_size": 65536,
                "max_size": 0,
                "modified_before": "2023-11-14T22:13:20Z",
                "modified_after": null
            },
            "state": "copying",
            "attempt": 2,
            "error": "",
            "objects_total": 40,
            "objects_done": 12,
            "objects_failed": 1,
            "bytes_total": 4_294_967_296_u64,
            "bytes_done": 1_073_741_824,
            "bandwidth_limit_bytes_per_sec": 20_000_000,
            "source_retired": false,
            "create_time": "2023-11-14T22:13:20Z",
            "start_time": "2023-11-14T22:14:20Z",
            "update_time": null,
            "end_time": null,
            "kind": "sync",
            "sync": {
                "deletion": "delete",
                "max_delete": 10,
                "objects_unchanged": 28,
                "extras_found": 3,
                "extras_deleted": 0,
                "changed_keys": 7
            },
            "final_pass": true,
            "source_changes": 2,
            "schedule": "0193b",
            "policy": "0193c"
        });
        assert_eq!(job.to_json(), expected);
    }

    #[test]
    fn progress_prints_the_rate_the_eta_and_errors() {
        let progress = pb::JobProgress {
            job: Some(pb::Job {
                state: pb::JobState::Verifying.into(),
                ..Default::default()
            }),
            bytes_per_sec: 1_500_000.5,
            eta: Some(prost_types::Duration {
                seconds: 12,
                nanos: 500_000_000,
            }),
            recent_errors: vec![pb::ObjectError {
                key: "raw/a.bam".into(),
                operation: "copy".into(),
                message: "connection reset".into(),
                attempts: 3,
            }],
        };
        let value = progress.to_json();
        assert_eq!(value["job"]["state"], json!("verifying"));
        assert_eq!(value["bytes_per_sec"], json!(1_500_000.5));
        assert_eq!(value["eta"], json!("12.5s"));
        assert_eq!(
            value["recent_errors"],
            json!([{
                "key": "raw/a.bam",
                "operation": "copy",
                "message": "connection reset",
                "attempts": 3
            }])
        );
        let unmeasured = pb::JobProgress {
            bytes_per_sec: f64::NAN,
            ..Default::default()
        };
        let value = unmeasured.to_json();
        assert_eq!(value["bytes_per_sec"], json!(0.0));
        assert_eq!(value["job"], Value::Null);
        assert_eq!(value["eta"], Value::Null);
    }

    #[test]
    fn objects_print_status_and_checksums() {
        let object = pb::JobObject {
            key: "raw/a.bam".into(),
            size: 42,
            status: pb::ObjectStatus::Failed.into(),
            source_xxh3: "0123456789abcdef0123456789abcdef".into(),
            destination_xxh3: String::new(),
            attempts: 3,
            error: "copy: temporary (Transport): copying server-side to s3://b/raw/a.bam: connection reset".into(),
            operation: "copy".into(),
            ..Default::default()
        };
        let expected = json!({
            "key": "raw/a.bam",
            "size": 42,
            "status": "failed",
            "source_xxh3": "0123456789abcdef0123456789abcdef",
            "destination_xxh3": "",
            "attempts": 3,
            "operation": "copy",
            "error": "copy: temporary (Transport): copying server-side to s3://b/raw/a.bam: connection reset",
            "source_changed": false
        });
        assert_eq!(object.to_json(), expected);
    }

    #[test]
    fn a_dry_run_answer_has_a_report_and_no_job() {
        let answer = pb::PlanMigrationResponse {
            job: None,
            created: false,
            dry_run: Some(pb::DryRunReport {
                objects: 2,
                bytes: 300,
                sample: vec![
                    pb::PlannedObject {
                        key: "a".into(),
                        size: 100,
                    },
                    pb::PlannedObject {
                        key: "b".into(),
                        size: 200,
                    },
                ],
                estimated_cost: 0.25,
            }),
        };
        let expected = json!({
            "job": null,
            "created": false,
            "dry_run": {
                "objects": 2,
                "bytes": 300,
                "sample": [{"key": "a", "size": 100}, {"key": "b", "size": 200}],
                "estimated_cost": 0.25
            }
        });
        assert_eq!(answer.to_json(), expected);
    }

    #[test]
    fn an_agent_prints_its_state_and_heartbeat() {
        let agent = pb::Agent {
            id: "agt-1".into(),
            site: "0193".into(),
            version: "0.1.0".into(),
            hostname: "worker-3".into(),
            state: pb::AgentState::Alive.into(),
            concurrency: 8,
            last_heartbeat_time: ts(1_700_000_000),
            register_time: None,
            jobs: vec!["job-1".into()],
        };
        let expected = json!({
            "id": "agt-1",
            "site": "0193",
            "version": "0.1.0",
            "hostname": "worker-3",
            "state": "alive",
            "concurrency": 8,
            "last_heartbeat_time": "2023-11-14T22:13:20Z",
            "register_time": null,
            "jobs": ["job-1"]
        });
        assert_eq!(agent.to_json(), expected);
    }
}
