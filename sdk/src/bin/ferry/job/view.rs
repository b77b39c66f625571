//! How jobs read for people: the key/value block of one job, the tables of jobs and of
//! their objects, and the report of a dry run.

use std::collections::HashMap;

use ferry_sdk::pb;

use crate::enums::display;
use crate::output::{self, Fields};
use crate::policy::verify_mode;
use crate::progress;
use crate::site;

/// Names to show for the ids jobs and recommendations refer to; an id without a known
/// name shows as is.
#[derive(Debug, Default)]
pub struct Names {
    pub sites: HashMap<String, String>,
    pub datasets: HashMap<String, String>,
}

impl Names {
    /// The name of the site `reference` (an id or a name) when known, else `reference`.
    pub fn site(&self, reference: &str) -> String {
        site::name_of(&self.sites, reference)
    }

    /// The name of the dataset `reference` (an id or a name) when known, else
    /// `reference`.
    pub fn dataset(&self, reference: &str) -> String {
        site::name_of(&self.datasets, reference)
    }
}

/// A planned job, saying so when the idempotency key returned an earlier one.
pub fn planned(job: &pb::Job, created: bool, names: &Names) -> String {
    let block = fields(job, names).render();
    if created {
        block
    } else {
        format!("created: no (existing job for this key)\n\n{block}")
    }
}

/// A job as a key/value block.
pub fn fields(job: &pb::Job, names: &Names) -> Fields {
    let mut fields = Fields::new();
    fields
        .add("id", &job.id)
        .add("dataset", names.dataset(&job.dataset))
        .add(
            "from",
            location(&names.site(&job.source_site), &job.source_path),
        )
        .add(
            "to",
            location(&names.site(&job.destination_site), &job.destination_path),
        )
        .add("executing site", names.site(&job.executing_site))
        .add("state", display::<pb::JobState>(job.state))
        .add("attempt", job.attempt.to_string())
        .add("error", output::or_none(&job.error))
        .add("objects", progress::objects_block(job))
        .add(
            "bytes",
            format!(
                "{} of {} ({})",
                output::bytes(job.bytes_done),
                output::bytes(job.bytes_total),
                progress::percent(job)
            ),
        )
        .add(
            "bandwidth limit",
            output::bandwidth(job.bandwidth_limit_bytes_per_sec),
        )
        .add("filter", filter(job.filter.as_ref()))
        .add("verify", verify_mode(job.verify_mode))
        .add(
            "storage class",
            if job.storage_class.is_empty() {
                "default".to_owned()
            } else {
                job.storage_class.clone()
            },
        )
        .add("retire source", retire_source(job))
        .add("idempotency key", output::or_none(&job.idempotency_key))
        .add("created", output::timestamp(job.create_time.as_ref()))
        .add("started", output::timestamp(job.start_time.as_ref()))
        .add("updated", output::timestamp(job.update_time.as_ref()))
        .add("ended", output::timestamp(job.end_time.as_ref()));
    if job.final_pass || job.source_changes > 0 {
        fields.add(
            "source changes",
            format!(
                "{} (copied again{})",
                job.source_changes,
                if job.final_pass {
                    "; final pass before the switch"
                } else {
                    ""
                }
            ),
        );
    }
    if let Some(sync) = &job.sync {
        fields
            .add("kind", "sync")
            .add("deletion", deletion(sync))
            .add(
                "checked",
                match sync.changed_keys {
                    0 => "every object (a full listing)".to_owned(),
                    n => format!("{n} changed key(s) a watcher reported"),
                },
            )
            .add("unchanged", sync.objects_unchanged.to_string())
            .add(
                "extras",
                format!(
                    "{} found, {} deleted",
                    sync.extras_found, sync.extras_deleted
                ),
            );
    }
    fields
}

/// A sync's deletion rule in words.
fn deletion(sync: &pb::SyncSettings) -> String {
    match (pb::DeletionRule::try_from(sync.deletion), sync.max_delete) {
        (Ok(pb::DeletionRule::Delete), 0) => "delete extras".to_owned(),
        (Ok(pb::DeletionRule::Delete), cap) => format!("delete extras, at most {cap} per run"),
        _ => "keep extras".to_owned(),
    }
}

/// `site:path`, or the site alone when the path is empty.
fn location(site: &str, path: &str) -> String {
    if path.is_empty() {
        site.to_owned()
    } else {
        format!("{site}:{path}")
    }
}

fn retire_source(job: &pb::Job) -> String {
    match (job.retire_source, job.source_retired) {
        (false, _) => "no".to_owned(),
        (true, false) => "yes".to_owned(),
        (true, true) => "yes (retired)".to_owned(),
    }
}

/// The object filter in words; `all objects` when there is none.
fn filter(filter: Option<&pb::ObjectFilter>) -> String {
    let Some(f) = filter else {
        return "all objects".to_owned();
    };
    let mut parts = Vec::new();
    if !f.prefix.is_empty() {
        parts.push(format!("prefix {}", f.prefix));
    }
    if !f.include.is_empty() {
        parts.push(format!("include {}", f.include.join(", ")));
    }
    if !f.exclude.is_empty() {
        parts.push(format!("exclude {}", f.exclude.join(", ")));
    }
    if f.min_size > 0 {
        parts.push(format!("min size {}", output::bytes(f.min_size)));
    }
    if f.max_size > 0 {
        parts.push(format!("max size {}", output::bytes(f.max_size)));
    }
    if f.modified_after.is_some() {
        parts.push(format!(
            "modified after {}",
            output::timestamp(f.modified_after.as_ref())
        ));
    }
    if f.modified_before.is_some() {
        parts.push(format!(
            "modified before {}",
            output::timestamp(f.modified_before.as_ref())
        ));
    }
    if parts.is_empty() {
        "all objects".to_owned()
    } else {
        parts.join("; ")
    }
}

/// What a dry run found: counts, cost and the sample of objects.
pub fn dry_run_report(report: &pb::DryRunReport) -> String {
    let mut fields = Fields::new();
    fields
        .add("objects", report.objects.to_string())
        .add(
            "bytes",
            format!("{} ({} bytes)", output::bytes(report.bytes), report.bytes),
        )
        .add("estimated cost", output::dollars(report.estimated_cost));
    let mut text = format!("dry run: nothing was planned\n\n{}", fields.render());
    if report.sample.is_empty() {
        return text;
    }
    let rows = report
        .sample
        .iter()
        .map(|object| vec![object.key.clone(), output::bytes(object.size)])
        .collect();
    text.push_str(&format!(
        "\n\nsample, the first {} of {} objects:\n{}",
        report.sample.len(),
        report.objects,
        output::table(&["KEY", "SIZE"], rows)
    ));
    text
}

pub fn jobs_table(jobs: &[pb::Job], names: &Names) -> String {
    let rows = jobs
        .iter()
        .map(|job| {
            vec![
                job.id.clone(),
                names.dataset(&job.dataset),
                format!(
                    "{} → {}",
                    names.site(&job.source_site),
                    names.site(&job.destination_site)
                ),
                display::<pb::JobState>(job.state),
                format!(
                    "{}/{}, {}/{}",
                    job.objects_done,
                    job.objects_total,
                    output::bytes(job.bytes_done),
                    output::bytes(job.bytes_total)
                ),
                job.attempt.to_string(),
                output::timestamp(job.create_time.as_ref()),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "DATASET",
            "FROM → TO",
            "STATE",
            "PROGRESS",
            "ATTEMPT",
            "CREATED",
        ],
        rows,
    )
}

pub fn objects_table(objects: &[pb::JobObject]) -> String {
    if objects.is_empty() {
        return "no objects".to_owned();
    }
    let rows = objects
        .iter()
        .map(|object| {
            vec![
                object.key.clone(),
                output::bytes(object.size),
                display::<pb::ObjectStatus>(object.status),
                output::or_none(&object.source_xxh3),
                output::or_none(&object.destination_xxh3),
                object.attempts.to_string(),
                output::or_none(&object.error),
            ]
        })
        .collect();
    output::table(
        &[
            "KEY",
            "SIZE",
            "STATUS",
            "SOURCE XXH3",
            "DEST XXH3",
            "ATTEMPTS",
            "ERROR",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            sites: HashMap::from([
                ("s-1".to_owned(), "nvme-a".to_owned()),
                ("s-2".to_owned(), "archive".to_owned()),
            ]),
            datasets: HashMap::from([("ds-1".to_owned(), "genome".to_owned())]),
        }
    }

    fn job() -> pb::Job {
        pb::Job {
            id: "job-1".into(),
            dataset: "ds-1".into(),
            source_site: "s-1".into(),
            source_path: "projects/genome".into(),
            destination_site: "s-2".into(),
            state: pb::JobState::Copying.into(),
            attempt: 2,
            objects_total: 40,
            objects_done: 12,
            bytes_total: 4 << 30,
            bytes_done: 1 << 30,
            create_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_job_list_shows_names_progress_and_attempts() {
        let rendered = jobs_table(&[job()], &names());
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines.len(), 2, "{rendered}");
        let header = lines[0];
        for column in [
            "ID",
            "DATASET",
            "FROM → TO",
            "STATE",
            "PROGRESS",
            "ATTEMPT",
            "CREATED",
        ] {
            assert!(header.contains(column), "{header}");
        }
        let row = lines[1];
        for cell in [
            "job-1",
            "genome",
            "nvme-a → archive",
            "copying",
            "12/40, 1.0 GiB/4.0 GiB",
            "2",
            "2023-11-14T22:13:20Z",
        ] {
            assert!(row.contains(cell), "{cell:?} missing in {row}");
        }
    }

    #[test]
    fn a_job_block_reads_naturally() {
        let mut planned_job = job();
        planned_job.retire_source = true;
        planned_job.bandwidth_limit_bytes_per_sec = 20_000_000;
        let text = planned(&planned_job, false, &names());
        assert!(
            text.starts_with("created: no (existing job for this key)\n\n"),
            "{text}"
        );
        for line in [
            "dataset           genome",
            "from              nvme-a:projects/genome",
            "to                archive",
            "state             copying",
            "objects           12 of 40 done",
            "bytes             1.0 GiB of 4.0 GiB (25%)",
            "bandwidth limit   19.1 MiB/s (20000000 bytes/s)",
            "filter            all objects",
            "verify            default",
            "retire source     yes",
            "ended             -",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        let fresh = planned(&planned_job, true, &names());
        assert!(fresh.starts_with("id "), "{fresh}");
    }

    #[test]
    fn filters_are_described_in_words() {
        assert_eq!(filter(None), "all objects");
        assert_eq!(filter(Some(&pb::ObjectFilter::default())), "all objects");
        let given = pb::ObjectFilter {
            prefix: "raw/".into(),
            include: vec!["*.bam".into(), "*.cram".into()],
            min_size: 65_536,
            ..Default::default()
        };
        assert_eq!(
            filter(Some(&given)),
            "prefix raw/; include *.bam, *.cram; min size 64.0 KiB"
        );
    }

    #[test]
    fn a_dry_run_shows_counts_cost_and_sample() {
        let report = pb::DryRunReport {
            objects: 40,
            bytes: 4 << 30,
            sample: vec![pb::PlannedObject {
                key: "raw/a.bam".into(),
                size: 1 << 20,
            }],
            estimated_cost: 0.125,
        };
        let text = dry_run_report(&report);
        assert!(
            text.starts_with("dry run: nothing was planned\n\n"),
            "{text}"
        );
        assert!(text.contains("objects          40\n"), "{text}");
        assert!(
            text.contains("bytes            4.0 GiB (4294967296 bytes)"),
            "{text}"
        );
        assert!(text.contains("estimated cost   $0.125"), "{text}");
        assert!(
            text.contains("sample, the first 1 of 40 objects:\nKEY"),
            "{text}"
        );
        assert!(text.ends_with("raw/a.bam   1.0 MiB"), "{text}");
        let empty = dry_run_report(&pb::DryRunReport::default());
        assert!(!empty.contains("sample"), "{empty}");
    }

    #[test]
    fn objects_show_status_checksums_and_errors() {
        let object = pb::JobObject {
            key: "raw/x.bam".into(),
            size: 300,
            status: pb::ObjectStatus::Failed.into(),
            source_xxh3: "0123456789abcdef0123456789abcdef".into(),
            destination_xxh3: String::new(),
            attempts: 3,
            error: "copy: connection reset".into(),
            ..Default::default()
        };
        let rendered = objects_table(&[object]);
        let row = rendered.lines().nth(1).unwrap_or_default();
        let cells: Vec<&str> = row
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "raw/x.bam",
                "300 B",
                "failed",
                "0123456789abcdef0123456789abcdef",
                "-",
                "3",
                "copy: connection reset"
            ]
        );
        assert_eq!(objects_table(&[]), "no objects");
    }
}
