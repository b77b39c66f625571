//! What `job watch` shows of a job's progress, as plain text and values: the notes printed
//! once (state changes, new attempts, new object errors), the progress bar's numbers and
//! message, the one-line form used when the output is not a terminal, and the summary.
//!
//! Nothing here touches a terminal or the network, so any sequence of `JobProgress`
//! messages can be rendered in tests.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_sdk::pb;
use serde_json::{json, Value};

use crate::duration::format_duration;
use crate::enums::{display, short_name};
use crate::json;
use crate::output::{self, Fields};

/// Whether a job in this state has finished: no further progress will come.
pub fn is_final(state: i32) -> bool {
    matches!(
        pb::JobState::try_from(state),
        Ok(pb::JobState::Completed | pb::JobState::Failed | pb::JobState::Cancelled)
    )
}

/// The exit code of a watch that saw the job end in `state`: 0 when it completed, 1
/// otherwise (failed or cancelled).
pub fn exit_code(state: i32) -> u8 {
    if state == i32::from(pb::JobState::Completed) {
        0
    } else {
        1
    }
}

/// Remembers what was already shown across all updates of one watch (reconnections
/// included), so each note is printed once.
#[derive(Debug, Default)]
pub struct Tracker {
    state: Option<i32>,
    attempt: Option<u32>,
    error: String,
    seen_errors: HashSet<ErrorKey>,
}

/// An object error as reported: a later failure of the same object has a higher attempt
/// count, so it is new.
#[derive(Debug, Hash, PartialEq, Eq)]
struct ErrorKey {
    key: String,
    operation: String,
    message: String,
    attempts: u32,
}

impl Tracker {
    pub fn new() -> Self {
        Tracker::default()
    }

    /// The notes `progress` brings, in order: the state when first seen or changed, a new
    /// attempt after a retry, the job's error when it changes, and each object error not
    /// shown before. An update without its job brings only object errors.
    pub fn observe(&mut self, progress: &pb::JobProgress) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(job) = &progress.job {
            if let Some(previous) = self.attempt.filter(|a| *a != job.attempt) {
                notes.push(format!("attempt {} started (was {previous})", job.attempt));
                // A new attempt starts from a clean slate: its errors are its own.
                self.error.clear();
            }
            self.attempt = Some(job.attempt);
            match self.state {
                None => notes.push(format!("state: {}", display::<pb::JobState>(job.state))),
                Some(previous) if previous != job.state => notes.push(format!(
                    "state: {} -> {}",
                    display::<pb::JobState>(previous),
                    display::<pb::JobState>(job.state)
                )),
                Some(_) => {}
            }
            self.state = Some(job.state);
            if job.error != self.error {
                if !job.error.is_empty() {
                    notes.push(format!("job error: {}", job.error));
                }
                self.error.clone_from(&job.error);
            }
        }
        for error in &progress.recent_errors {
            let key = ErrorKey {
                key: error.key.clone(),
                operation: error.operation.clone(),
                message: error.message.clone(),
                attempts: error.attempts,
            };
            if self.seen_errors.insert(key) {
                notes.push(object_error(error));
            }
        }
        notes
    }
}

/// One object error as a line: `object error: raw/a.bam: copy: connection reset (3
/// attempts)`.
pub fn object_error(error: &pb::ObjectError) -> String {
    let mut line = format!("object error: {}", error.key);
    if !error.operation.is_empty() {
        line.push_str(&format!(": {}", error.operation));
    }
    line.push_str(&format!(": {}", error.message));
    match error.attempts {
        0 => {}
        1 => line.push_str(" (1 attempt)"),
        n => line.push_str(&format!(" ({n} attempts)")),
    }
    line
}

/// What the progress bar shows for one update.
#[derive(Debug, PartialEq, Eq)]
pub struct BarState {
    /// The job's state, left of the bar.
    pub prefix: String,
    /// Filled part of the bar: bytes done, or 0/1 when the size is not known yet.
    pub position: u64,
    pub length: u64,
    /// Right of the bar: percentage, bytes, objects, rate and ETA.
    pub message: String,
}

/// The bar for `job` with the measured rate and ETA of its update.
pub fn bar_state(progress: &pb::JobProgress) -> BarState {
    let Some(job) = &progress.job else {
        return BarState {
            prefix: output::NONE.to_owned(),
            position: 0,
            length: 1,
            message: String::new(),
        };
    };
    let (position, length) = if job.bytes_total > 0 {
        (job.bytes_done.min(job.bytes_total), job.bytes_total)
    } else {
        // Nothing to measure yet (still listing), or nothing to move at all.
        (
            u64::from(job.state == i32::from(pb::JobState::Completed)),
            1,
        )
    };
    BarState {
        prefix: display::<pb::JobState>(job.state),
        position,
        length,
        message: progress_message(progress),
    }
}

/// The update as one line, for output that is not a terminal:
/// `copying 25% 1.0 GiB/4.0 GiB, 12/40 objects, 19.1 MiB/s, ETA 2m40s`.
pub fn status_line(progress: &pb::JobProgress) -> String {
    match &progress.job {
        Some(job) => format!(
            "{} {}",
            display::<pb::JobState>(job.state),
            progress_message(progress)
        ),
        None => "no job in update".to_owned(),
    }
}

/// Percentage, bytes and objects, then the rate and ETA while the job is still running
/// and they are known.
fn progress_message(progress: &pb::JobProgress) -> String {
    let Some(job) = &progress.job else {
        return String::new();
    };
    let mut parts = vec![
        format!(
            "{} {}/{}",
            percent(job),
            output::bytes(job.bytes_done),
            output::bytes(job.bytes_total)
        ),
        objects(job),
    ];
    if !is_final(job.state) {
        let rate = output::rate(progress.bytes_per_sec);
        if rate != output::NONE {
            parts.push(rate);
        }
        if let Some(eta) = progress
            .eta
            .as_ref()
            .and_then(ferry_sdk::time::from_duration)
        {
            parts.push(format!("ETA {}", format_duration(rounded(eta))));
        }
    }
    parts.join(", ")
}

/// `12/40 objects`, with the failed ones when there are any.
pub fn objects(job: &pb::Job) -> String {
    let mut text = format!("{}/{} objects", job.objects_done, job.objects_total);
    if job.objects_failed > 0 {
        text.push_str(&format!(", {} failed", job.objects_failed));
    }
    text
}

/// The objects in a block: `12 of 40 done`, with the failed ones when there are any.
pub fn objects_block(job: &pb::Job) -> String {
    let mut text = format!("{} of {} done", job.objects_done, job.objects_total);
    if job.objects_failed > 0 {
        text.push_str(&format!(", {} failed", job.objects_failed));
    }
    text
}

/// How far the job is, by bytes when their total is known, else by objects; rounded
/// down so 100% means done.
pub fn percent(job: &pb::Job) -> String {
    let (done, total) = if job.bytes_total > 0 {
        (job.bytes_done, job.bytes_total)
    } else {
        (job.objects_done, job.objects_total)
    };
    let value = if total == 0 {
        if job.state == i32::from(pb::JobState::Completed) {
            100
        } else {
            0
        }
    } else {
        (u128::from(done.min(total)) * 100 / u128::from(total)) as u64
    };
    format!("{value}%")
}

/// Whole seconds from a second up, milliseconds below: `1m23s`, not `1m22s587ms`.
fn rounded(duration: Duration) -> Duration {
    if duration < Duration::from_secs(1) {
        Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    } else {
        let half_up = duration.saturating_add(Duration::from_millis(500));
        Duration::from_secs(half_up.as_secs())
    }
}

/// How long the job ran: from its start (or creation) to its end, or to `now` when it
/// has not ended. `watched`, the time spent watching, stands in when the job's
/// timestamps are missing or out of order.
pub fn elapsed(job: &pb::Job, now: DateTime<Utc>, watched: Duration) -> Duration {
    let at = |ts: Option<&prost_types::Timestamp>| ts.and_then(ferry_sdk::time::from_timestamp);
    let start = at(job.start_time.as_ref()).or_else(|| at(job.create_time.as_ref()));
    let end = at(job.end_time.as_ref()).unwrap_or(now);
    start
        .and_then(|start| (end - start).to_std().ok())
        .unwrap_or(watched)
}

/// Bytes moved per second over `elapsed`; 0 when no time passed.
pub fn average_rate(job: &pb::Job, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        job.bytes_done as f64 / seconds
    } else {
        0.0
    }
}

/// The closing block of a watch: final state, objects, bytes, elapsed time, average
/// rate, and the job's error when it has one.
pub fn summary(job: &pb::Job, elapsed: Duration) -> String {
    let mut fields = Fields::new();
    fields
        .add("job", &job.id)
        .add("state", display::<pb::JobState>(job.state))
        .add("objects", objects_block(job))
        .add(
            "bytes",
            format!(
                "{} of {}",
                output::bytes(job.bytes_done),
                output::bytes(job.bytes_total)
            ),
        )
        .add("elapsed", format_duration(rounded(elapsed)))
        .add("average rate", output::rate(average_rate(job, elapsed)));
    if !job.error.is_empty() {
        fields.add("error", &job.error);
    }
    fields.render()
}

/// The summary as the last line of `--json` output: one object under the key "summary",
/// so it cannot be mistaken for a progress update.
pub fn summary_json(job: &pb::Job, elapsed: Duration) -> Value {
    let state = short_name::<pb::JobState>(job.state).map_or_else(|| json!(job.state), Value::from);
    json!({
        "summary": {
            "job": job.id,
            "state": state,
            "objects_total": job.objects_total,
            "objects_done": job.objects_done,
            "objects_failed": job.objects_failed,
            "bytes_total": job.bytes_total,
            "bytes_done": job.bytes_done,
            "elapsed": json::duration(Some(&ferry_sdk::time::to_duration(elapsed))),
            "average_bytes_per_sec": average_rate(job, elapsed),
            "error": job.error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn job(state: pb::JobState, objects_done: u64, bytes_done: u64) -> pb::Job {
        pb::Job {
            id: "job-1".into(),
            state: state.into(),
            attempt: 1,
            objects_total: 40,
            objects_done,
            bytes_total: 4 * GIB,
            bytes_done,
            ..Default::default()
        }
    }

    fn update(job: pb::Job, bytes_per_sec: f64, eta_secs: Option<i64>) -> pb::JobProgress {
        pb::JobProgress {
            job: Some(job),
            bytes_per_sec,
            eta: eta_secs.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
            recent_errors: Vec::new(),
        }
    }

    fn error(key: &str, attempts: u32) -> pb::ObjectError {
        pb::ObjectError {
            key: key.into(),
            operation: "copy".into(),
            message: "connection reset".into(),
            attempts,
        }
    }

    #[test]
    fn a_sequence_of_updates_notes_each_change_once() {
        let mut tracker = Tracker::new();
        let queued = update(job(pb::JobState::Queued, 0, 0), 0.0, None);
        assert_eq!(tracker.observe(&queued), ["state: queued"]);
        assert!(tracker.observe(&queued).is_empty(), "nothing changed");

        let mut copying = update(job(pb::JobState::Copying, 5, GIB), 2e7, Some(160));
        copying.recent_errors = vec![error("raw/a.bam", 1)];
        assert_eq!(
            tracker.observe(&copying),
            [
                "state: queued -> copying",
                "object error: raw/a.bam: copy: connection reset (1 attempt)"
            ]
        );

        // The same error again is not new; the same object failing again is.
        copying.recent_errors = vec![error("raw/a.bam", 1), error("raw/a.bam", 2)];
        assert_eq!(
            tracker.observe(&copying),
            ["object error: raw/a.bam: copy: connection reset (2 attempts)"]
        );

        let mut failed = job(pb::JobState::Failed, 39, 4 * GIB - 1);
        failed.error = "1 object failed verification".into();
        assert_eq!(
            tracker.observe(&update(failed.clone(), 0.0, None)),
            [
                "state: copying -> failed",
                "job error: 1 object failed verification"
            ]
        );

        // A retry: new attempt, back to copying, the old error is gone.
        failed.attempt = 2;
        failed.state = pb::JobState::Copying.into();
        failed.error.clear();
        assert_eq!(
            tracker.observe(&update(failed, 0.0, None)),
            ["attempt 2 started (was 1)", "state: failed -> copying"]
        );
    }

    #[test]
    fn a_reconnection_repeats_nothing() {
        let mut tracker = Tracker::new();
        let mut copying = update(job(pb::JobState::Copying, 5, GIB), 2e7, Some(160));
        copying.recent_errors = vec![error("k", 3)];
        assert_eq!(tracker.observe(&copying).len(), 2);
        // The first message of a new stream is the current state, already shown.
        assert!(tracker.observe(&copying).is_empty());
    }

    #[test]
    fn the_bar_follows_bytes_and_shows_rate_and_eta() {
        let copying = update(job(pb::JobState::Copying, 12, GIB), 20_000_000.0, Some(160));
        assert_eq!(
            bar_state(&copying),
            BarState {
                prefix: "copying".into(),
                position: GIB,
                length: 4 * GIB,
                message: "25% 1.0 GiB/4.0 GiB, 12/40 objects, 19.1 MiB/s, ETA 2m40s".into(),
            }
        );
        assert_eq!(
            status_line(&copying),
            "copying 25% 1.0 GiB/4.0 GiB, 12/40 objects, 19.1 MiB/s, ETA 2m40s"
        );
    }

    #[test]
    fn unknown_sizes_and_final_states_render_sensibly() {
        let mut listing = job(pb::JobState::Queued, 0, 0);
        listing.bytes_total = 0;
        listing.objects_total = 0;
        let bar = bar_state(&update(listing.clone(), 0.0, None));
        assert_eq!((bar.position, bar.length), (0, 1));
        assert_eq!(bar.message, "0% 0 B/0 B, 0/0 objects");

        listing.state = pb::JobState::Completed.into();
        let bar = bar_state(&update(listing, 0.0, None));
        assert_eq!((bar.position, bar.length), (1, 1));
        assert!(bar.message.starts_with("100% "), "{}", bar.message);

        // Once final, rate and ETA are no longer shown; failures are.
        let mut done = job(pb::JobState::Failed, 39, 4 * GIB);
        done.objects_failed = 1;
        assert_eq!(
            status_line(&update(done, 1e6, Some(0))),
            "failed 100% 4.0 GiB/4.0 GiB, 39/40 objects, 1 failed"
        );
        let bare = pb::JobProgress::default();
        assert_eq!(bar_state(&bare).message, "");
        assert_eq!(status_line(&bare), "no job in update");
    }

    #[test]
    fn percentages_round_down_and_fall_back_to_objects() {
        let mut almost = job(pb::JobState::Copying, 0, 4 * GIB - 1);
        assert_eq!(percent(&almost), "99%");
        almost.bytes_total = 0;
        almost.objects_done = 10;
        assert_eq!(percent(&almost), "25%");
        almost.bytes_done = u64::MAX;
        almost.bytes_total = u64::MAX;
        assert_eq!(percent(&almost), "100%");
    }

    #[test]
    fn final_states_decide_the_exit_code() {
        assert!(is_final(pb::JobState::Completed.into()));
        assert!(is_final(pb::JobState::Failed.into()));
        assert!(is_final(pb::JobState::Cancelled.into()));
        assert!(!is_final(pb::JobState::Switching.into()));
        assert!(!is_final(0));
        assert!(!is_final(42));
        assert_eq!(exit_code(pb::JobState::Completed.into()), 0);
        assert_eq!(exit_code(pb::JobState::Failed.into()), 1);
        assert_eq!(exit_code(pb::JobState::Cancelled.into()), 1);
    }

    #[test]
    fn elapsed_time_comes_from_the_job_when_it_can() {
        let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        let now = DateTime::from_timestamp(1_000, 0).unwrap_or_default();
        let watched = Duration::from_secs(7);
        let mut ran = job(pb::JobState::Completed, 40, 4 * GIB);
        ran.create_time = at(100);
        ran.start_time = at(110);
        ran.end_time = at(192);
        assert_eq!(elapsed(&ran, now, watched), Duration::from_secs(82));
        ran.end_time = None;
        assert_eq!(elapsed(&ran, now, watched), Duration::from_secs(890));
        ran.start_time = None;
        assert_eq!(elapsed(&ran, now, watched), Duration::from_secs(900));
        ran.create_time = at(2_000);
        assert_eq!(elapsed(&ran, now, watched), watched, "clock skew");
        ran.create_time = None;
        assert_eq!(elapsed(&ran, now, watched), watched);
    }

    #[test]
    fn the_summary_reads_as_a_block() {
        let mut done = job(pb::JobState::Completed, 40, 4 * GIB);
        done.bytes_done = 4 * GIB;
        let text = summary(&done, Duration::from_millis(81_600));
        assert_eq!(
            text,
            "job            job-1\n\
             state          completed\n\
             objects        40 of 40 done\n\
             bytes          4.0 GiB of 4.0 GiB\n\
             elapsed        1m22s\n\
             average rate   50.2 MiB/s"
        );
        let mut failed = done.clone();
        failed.state = pb::JobState::Failed.into();
        failed.error = "verification failed".into();
        let text = summary(&failed, Duration::ZERO);
        assert!(text.contains("average rate   -"), "{text}");
        assert!(
            text.ends_with("error          verification failed"),
            "{text}"
        );
    }

    #[test]
    fn the_json_summary_is_one_tagged_object() {
        let mut done = job(pb::JobState::Cancelled, 10, GIB);
        done.error = "cancelled by user".into();
        let value = summary_json(&done, Duration::from_millis(12_500));
        assert_eq!(
            value,
            json!({"summary": {
                "job": "job-1",
                "state": "cancelled",
                "objects_total": 40,
                "objects_done": 10,
                "objects_failed": 0,
                "bytes_total": 4 * GIB,
                "bytes_done": GIB,
                "elapsed": "12.5s",
                "average_bytes_per_sec": GIB as f64 / 12.5,
                "error": "cancelled by user"
            }})
        );
    }
}
