//! `--json` output: the `ferry.v1` messages as JSON objects.
//!
//! Every field is present, named as in the .proto, keys in alphabetical order; unset
//! messages are `null`. Enums are their short lowercase names ("hot"), or the number for
//! a value this build does not know; timestamps are RFC 3339 in UTC; durations are
//! seconds with an `s` suffix ("600s", "1.5s") as in protobuf's JSON mapping; 64-bit
//! integers are numbers. Streams of updates (`job watch`) print one compact value a line.

mod admin;
mod jobs;
mod recommendations;

use std::collections::HashMap;

use chrono::SecondsFormat;
use ferry_sdk::{pb, DatasetDetails};
use serde_json::{Map, Value};

use crate::enums::{short_name, ProtoEnum};

/// A message that prints as one JSON value.
pub trait ToJson {
    fn to_json(&self) -> Value;
}

/// A list of messages as a JSON array.
pub fn array<T: ToJson>(items: &[T]) -> Value {
    Value::Array(items.iter().map(ToJson::to_json).collect())
}

/// Pretty-printed JSON text; serialising a `Value` cannot fail.
pub fn render(value: &Value) -> String {
    format!("{value:#}")
}

/// Compact JSON text on one line, for JSON-lines output.
pub fn line(value: &Value) -> String {
    value.to_string()
}

/// Builds a JSON object field by field.
struct Object(Map<String, Value>);

impl Object {
    fn new() -> Self {
        Object(Map::new())
    }

    fn field(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn enum_value<E: ProtoEnum>(value: i32) -> Value {
    short_name::<E>(value).map_or_else(|| Value::from(value), Value::from)
}

fn string_map(map: &HashMap<String, String>) -> Value {
    let sorted: Map<String, Value> = map
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    Value::Object(sorted)
}

pub(crate) fn timestamp(value: Option<&prost_types::Timestamp>) -> Value {
    let Some(ts) = value else {
        return Value::Null;
    };
    match ferry_sdk::time::from_timestamp(ts) {
        Some(t) => Value::from(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        // Out of chrono's range: still show what the server sent.
        None => Object::new()
            .field("seconds", ts.seconds)
            .field("nanos", ts.nanos)
            .done(),
    }
}

/// Protobuf's JSON form of a duration: `"600s"`, `"1.5s"`, `"-0.25s"`.
pub fn duration(value: Option<&prost_types::Duration>) -> Value {
    let Some(d) = value else {
        return Value::Null;
    };
    let total = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
    let sign = if total < 0 { "-" } else { "" };
    let magnitude = total.unsigned_abs();
    let (secs, nanos) = (magnitude / 1_000_000_000, magnitude % 1_000_000_000);
    let text = if nanos == 0 {
        format!("{sign}{secs}s")
    } else {
        let fraction = format!("{nanos:09}");
        format!("{sign}{secs}.{}s", fraction.trim_end_matches('0'))
    };
    Value::from(text)
}

impl ToJson for pb::Prices {
    fn to_json(&self) -> Value {
        Object::new()
            .field("storage_per_gb_month", self.storage_per_gb_month)
            .field("retrieval_per_gb", self.retrieval_per_gb)
            .field("egress_per_gb", self.egress_per_gb)
            .field("per_1000_requests", self.per_1000_requests)
            .field("min_storage_days", self.min_storage_days)
            .done()
    }
}

impl ToJson for pb::Site {
    fn to_json(&self) -> Value {
        Object::new()
            .field("id", self.id.as_str())
            .field("name", self.name.as_str())
            .field("uri", self.uri.as_str())
            .field("options", string_map(&self.options))
            .field("tier", enum_value::<pb::Tier>(self.tier))
            .field("default_storage_class", self.default_storage_class.as_str())
            .field("latency_ms", self.latency_ms)
            .field(
                "bandwidth_limit_bytes_per_sec",
                self.bandwidth_limit_bytes_per_sec,
            )
            .field("prices", self.prices.as_ref().map(ToJson::to_json))
            .field("credential_keys", self.credential_keys.clone())
            .field("bytes_stored", self.bytes_stored)
            .field("dataset_count", self.dataset_count)
            .field("create_time", timestamp(self.create_time.as_ref()))
            .field("update_time", timestamp(self.update_time.as_ref()))
            .done()
    }
}

impl ToJson for pb::Dataset {
    fn to_json(&self) -> Value {
        Object::new()
            .field("id", self.id.as_str())
            .field("name", self.name.as_str())
            .field("site", self.site.as_str())
            .field("path", self.path.as_str())
            .field("current_tier", enum_value::<pb::Tier>(self.current_tier))
            .field("latency_slo_ms", self.latency_slo_ms)
            .field("size_bytes", self.size_bytes)
            .field("object_count", self.object_count)
            .field("owner", self.owner.as_str())
            .field("labels", string_map(&self.labels))
            .field(
                "last_access_time",
                timestamp(self.last_access_time.as_ref()),
            )
            .field("create_time", timestamp(self.create_time.as_ref()))
            .field("update_time", timestamp(self.update_time.as_ref()))
            .done()
    }
}

impl ToJson for pb::Replica {
    fn to_json(&self) -> Value {
        Object::new()
            .field("site", self.site.as_str())
            .field("path", self.path.as_str())
            .field("role", enum_value::<pb::ReplicaRole>(self.role))
            .field("state", enum_value::<pb::ReplicaState>(self.state))
            .field("verify_time", timestamp(self.verify_time.as_ref()))
            .field("manifest", self.manifest.as_str())
            .field("sync_time", timestamp(self.sync_time.as_ref()))
            .field("lag", duration(self.lag.as_ref()))
            .done()
    }
}

impl ToJson for DatasetDetails {
    fn to_json(&self) -> Value {
        Object::new()
            .field("dataset", self.dataset.to_json())
            .field("replicas", array(&self.replicas))
            .field(
                "effective_policy",
                self.effective_policy.as_ref().map(ToJson::to_json),
            )
            .done()
    }
}

impl ToJson for pb::TierPlacement {
    fn to_json(&self) -> Value {
        Object::new()
            .field("tier", enum_value::<pb::Tier>(self.tier))
            .field("site", self.site.as_str())
            .done()
    }
}

impl ToJson for pb::ScheduleWindow {
    fn to_json(&self) -> Value {
        Object::new()
            .field("start", self.start.as_str())
            .field("end", self.end.as_str())
            .done()
    }
}

impl ToJson for pb::Policy {
    fn to_json(&self) -> Value {
        Object::new()
            .field("id", self.id.as_str())
            .field("name", self.name.as_str())
            .field("description", self.description.as_str())
            .field("selector", string_map(&self.selector))
            .field("priority", self.priority)
            .field("hot_after", duration(self.hot_after.as_ref()))
            .field("warm_after", duration(self.warm_after.as_ref()))
            .field("placements", array(&self.placements))
            .field("latency_slo_ms", self.latency_slo_ms)
            .field("monthly_cost_target", self.monthly_cost_target)
            .field("min_residency", duration(self.min_residency.as_ref()))
            .field("auto_migrate", self.auto_migrate)
            .field("retire_source", self.retire_source)
            .field(
                "verify_mode",
                enum_value::<pb::VerifyMode>(self.verify_mode),
            )
            .field(
                "schedule_window",
                self.schedule_window.as_ref().map(ToJson::to_json),
            )
            .field(
                "bandwidth_limit_bytes_per_sec",
                self.bandwidth_limit_bytes_per_sec,
            )
            .field("max_concurrent_migrations", self.max_concurrent_migrations)
            .field("cron", self.cron.as_str())
            .field("time_zone", self.time_zone.as_str())
            .field("next_run_time", timestamp(self.next_run_time.as_ref()))
            .field("runs", self.runs)
            .field("skipped_runs", self.skipped_runs)
            .field("last_error", self.last_error.as_str())
            .field("create_time", timestamp(self.create_time.as_ref()))
            .field("update_time", timestamp(self.update_time.as_ref()))
            .done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos })
    }

    #[test]
    fn a_site_prints_with_proto_field_names_and_short_enums() {
        let site = pb::Site {
            id: "0193".into(),
            name: "nvme-a".into(),
            uri: "file:///srv/ferry".into(),
            options: HashMap::from([("region".into(), "eu".into())]),
            tier: pb::Tier::Hot.into(),
            default_storage_class: String::new(),
            latency_ms: 2,
            bandwidth_limit_bytes_per_sec: 100_000_000,
            prices: Some(pb::Prices {
                storage_per_gb_month: 0.1,
                min_storage_days: 30,
                ..Default::default()
            }),
            credential_keys: vec!["access_key_id".into()],
            create_time: ts(1_700_000_000, 0),
            update_time: None,
            bytes_stored: 5_000,
            dataset_count: 2,
        };
        let expected = json!({
            "id": "0193",
            "name": "nvme-a",
            "uri": "file:///srv/ferry",
            "options": {"region": "eu"},
            "tier": "hot",
            "default_storage_class": "",
            "latency_ms": 2,
            "bandwidth_limit_bytes_per_sec": 100_000_000,
            "prices": {
                "storage_per_gb_month": 0.1,
                "retrieval_per_gb": 0.0,
                "egress_per_gb": 0.0,
                "per_1000_requests": 0.0,
                "min_storage_days": 30
            },
            "credential_keys": ["access_key_id"],
            "bytes_stored": 5_000,
            "dataset_count": 2,
            "create_time": "2023-11-14T22:13:20Z",
            "update_time": null
        });
        assert_eq!(site.to_json(), expected);
    }

    #[test]
    fn a_policy_prints_durations_windows_and_placements() {
        let policy = pb::Policy {
            name: "genomics".into(),
            selector: HashMap::from([("team".into(), "genomics".into())]),
            priority: -3,
            hot_after: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            warm_after: Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000,
            }),
            placements: vec![pb::TierPlacement {
                tier: pb::Tier::Cold.into(),
                site: "archive".into(),
            }],
            verify_mode: pb::VerifyMode::Full.into(),
            schedule_window: Some(pb::ScheduleWindow {
                start: "22:00".into(),
                end: "06:00".into(),
            }),
            bandwidth_limit_bytes_per_sec: u64::MAX,
            ..Default::default()
        };
        let value = policy.to_json();
        assert_eq!(value["priority"], json!(-3));
        assert_eq!(value["hot_after"], json!("60s"));
        assert_eq!(value["warm_after"], json!("1.5s"));
        assert_eq!(value["min_residency"], Value::Null);
        assert_eq!(
            value["placements"],
            json!([{"tier": "cold", "site": "archive"}])
        );
        assert_eq!(value["verify_mode"], json!("full"));
        assert_eq!(
            value["schedule_window"],
            json!({"start": "22:00", "end": "06:00"})
        );
        assert_eq!(value["bandwidth_limit_bytes_per_sec"], json!(u64::MAX));
        assert_eq!(value["selector"], json!({"team": "genomics"}));
    }

    #[test]
    fn dataset_details_nest_replicas_and_policy() {
        let details = DatasetDetails {
            dataset: pb::Dataset {
                name: "genome".into(),
                current_tier: 0,
                size_bytes: 5,
                ..Default::default()
            },
            replicas: vec![pb::Replica {
                site: "nvme-a".into(),
                role: pb::ReplicaRole::Primary.into(),
                state: 9,
                verify_time: ts(0, 250_000_000),
                ..Default::default()
            }],
            effective_policy: None,
        };
        let value = details.to_json();
        assert_eq!(value["dataset"]["current_tier"], json!("unspecified"));
        assert_eq!(value["dataset"]["size_bytes"], json!(5));
        assert_eq!(value["replicas"][0]["role"], json!("primary"));
        assert_eq!(value["replicas"][0]["state"], json!(9));
        assert_eq!(
            value["replicas"][0]["verify_time"],
            json!("1970-01-01T00:00:00.250Z")
        );
        assert_eq!(value["effective_policy"], Value::Null);
    }

    #[test]
    fn lists_render_as_arrays() {
        assert_eq!(render(&array::<pb::Site>(&[])), "[]");
        let negative = duration(Some(&prost_types::Duration {
            seconds: 0,
            nanos: -250_000_000,
        }));
        assert_eq!(negative, json!("-0.25s"));
    }
}
