//! `ferry job watch`: follows a job's progress stream until the job ends, drawing a live
//! bar on a terminal or printing one line (one JSON object with `--json`) per update
//! otherwise, and reconnecting when the stream breaks.
//!
//! What is shown is decided in `progress.rs`; this module owns the stream, the
//! reconnection policy and the writing.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use ferry_sdk::{pb, Client, Error};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tonic::Code;

use crate::json::{self, ToJson};
use crate::progress::{self, Tracker};
use crate::{report_error, Outcome};

/// How many times in a row a broken stream is reopened before giving up, and the
/// longest pause between two tries. With the delays doubling from a quarter second,
/// twelve tries span about a minute: long enough for a control plane to restart.
const MAX_RECONNECTS: u32 = 12;
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(8);

/// Bounded exponential back-off between reconnections.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The pause before the next try, or `None` once [`MAX_RECONNECTS`] tries in a row
    /// have failed.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.failures >= MAX_RECONNECTS {
            return None;
        }
        let delay = FIRST_DELAY
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_DELAY);
        self.failures += 1;
        Some(delay)
    }

    /// The number of the try [`Backoff::next_delay`] last granted, from 1.
    pub fn attempt(&self) -> u32 {
        self.failures
    }

    /// Forgets earlier failures once a connection has proved healthy.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Whether a failure of the stream may pass by reconnecting: the connection broke or
/// the server is restarting or overloaded. Errors about the request itself (an unknown
/// job, a permission) are final.
pub fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
    )
}

/// How updates are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A live bar on the terminal, notes printed above it.
    Bar,
    /// One line of text per update.
    Lines,
    /// One JSON object per update.
    JsonLines,
}

impl Mode {
    /// JSON lines with `--json`; else a bar when standard output is a terminal.
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::JsonLines
        } else if io::stdout().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// Writes updates in one [`Mode`].
struct Screen {
    mode: Mode,
    bar: Option<ProgressBar>,
}

/// The reader of standard output went away: stop quietly, as `print` does in `main`.
struct Gone;

impl Screen {
    fn new(mode: Mode) -> Screen {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stdout());
            // The template is a constant, so this only fails if it is edited badly;
            // the default style is a fine fallback.
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {prefix:>9} [{bar:30}] {wide_msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Screen { mode, bar }
    }

    /// Shows one update and the notes it brings.
    fn update(&self, progress: &pb::JobProgress, notes: &[String]) -> Result<(), Gone> {
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                for note in notes {
                    bar.println(note);
                }
                let state = progress::bar_state(progress);
                bar.set_prefix(state.prefix);
                bar.set_length(state.length);
                bar.set_position(state.position);
                bar.set_message(state.message);
                Ok(())
            }
            (None, Mode::JsonLines) => write_line(&json::line(&progress.to_json())),
            (None, _) => {
                for note in notes {
                    write_line(note)?;
                }
                write_line(&progress::status_line(progress))
            }
        }
    }

    /// A diagnostic about the watch itself: above the bar, else on standard error so
    /// standard output keeps only updates.
    fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                // Nothing more can be done if standard error is gone.
                let _ = writeln!(io::stderr(), "{text}");
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        // An error path must not leave a half-drawn bar behind.
        self.finish();
    }
}

/// Writes one line to standard output; a closed pipe ends the watch, any other
/// failure is reported and ends it too.
fn write_line(text: &str) -> Result<(), Gone> {
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Gone),
        Err(e) => {
            report_error(&format!("writing output: {e}"));
            Err(Gone)
        }
    }
}

/// Writes `text` (the plan of a job about to be watched) before the updates.
pub fn preface(text: &str) -> Result<(), Outcome> {
    write_line(text).map_err(|Gone| Outcome::quiet(0))
}

/// Watches `job` until it ends and returns the summary to print, with exit code 0 when
/// the job completed and 1 when it failed or was cancelled.
///
/// A broken stream, or one that ends before the job does, is reopened after a pause
/// (see [`Backoff`]); the first update of the new stream is the job's current
/// progress, so nothing is missed. Errors that reconnecting cannot cure, and the last
/// error once the tries run out, are returned.
pub async fn watch(client: &Client, job: &str, mode: Mode) -> Result<Outcome, Error> {
    let started = Instant::now();
    let screen = Screen::new(mode);
    let mut tracker = Tracker::new();
    let mut backoff = Backoff::default();
    let mut last: Option<pb::Job> = None;
    loop {
        let mut updates = client.watch_job(job);
        let mut received = 0_u32;
        let mut failure = None;
        while let Some(item) = updates.next().await {
            let progress = match item {
                Ok(progress) => progress,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            received = received.saturating_add(1);
            // The first update of every stream is a snapshot; only a change after it
            // shows the connection works, and a server failing right after the
            // snapshot cannot keep the watch going forever.
            if received > 1 {
                backoff.reset();
            }
            let notes = tracker.observe(&progress);
            if screen.update(&progress, &notes).is_err() {
                return Ok(Outcome::quiet(0));
            }
            if let Some(update) = progress.job {
                last = Some(update);
            }
        }
        if let Some(job) = last.as_ref().filter(|j| progress::is_final(j.state)) {
            screen.finish();
            return Ok(finished(job, started.elapsed(), mode));
        }
        let cause = match failure {
            Some(e) if !is_transient(e.code()) => return Err(e),
            Some(e) => e,
            None => Error::Protocol(format!(
                "the progress stream of job {job} ended before the job did"
            )),
        };
        let Some(delay) = backoff.next_delay() else {
            return Err(cause);
        };
        screen.note(&format!(
            "watch interrupted ({cause}); reconnecting in {} (try {} of {MAX_RECONNECTS})",
            crate::duration::format_duration(delay),
            backoff.attempt()
        ));
        tokio::time::sleep(delay).await;
    }
}

/// The summary of a job that ended, in the mode's form, with its exit code.
fn finished(job: &pb::Job, watched: Duration, mode: Mode) -> Outcome {
    let elapsed = progress::elapsed(job, chrono::Utc::now(), watched);
    let text = match mode {
        Mode::JsonLines => json::line(&progress::summary_json(job, elapsed)),
        Mode::Bar | Mode::Lines => progress::summary(job, elapsed),
    };
    Outcome {
        text: Some(text),
        code: progress::exit_code(job.state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_a_cap_then_gives_up() {
        let mut backoff = Backoff::default();
        let mut delays = Vec::new();
        while let Some(delay) = backoff.next_delay() {
            delays.push(delay.as_millis());
        }
        assert_eq!(
            delays,
            [250, 500, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000, 8_000, 8_000, 8_000, 8_000]
        );
        assert_eq!(backoff.attempt(), MAX_RECONNECTS);
        backoff.reset();
        assert_eq!(
            backoff.next_delay().map(|d| d.as_millis()),
            Some(250),
            "a healthy connection starts the count again"
        );
        assert_eq!(backoff.attempt(), 1);
    }

    #[test]
    fn only_connection_failures_are_retried() {
        for code in [
            Code::Unavailable,
            Code::Unknown,
            Code::Internal,
            Code::Cancelled,
        ] {
            assert!(is_transient(code), "{code:?}");
        }
        for code in [
            Code::NotFound,
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
            Code::Unimplemented,
        ] {
            assert!(!is_transient(code), "{code:?}");
        }
    }

    #[test]
    fn json_mode_never_draws_a_bar() {
        assert_eq!(Mode::detect(true), Mode::JsonLines);
        assert!(Screen::new(Mode::Lines).bar.is_none());
    }

    #[test]
    fn the_summary_carries_the_exit_code() {
        let job = |state: pb::JobState| pb::Job {
            id: "j".into(),
            state: state.into(),
            ..Default::default()
        };
        let done = finished(
            &job(pb::JobState::Completed),
            Duration::from_secs(1),
            Mode::Lines,
        );
        assert_eq!(done.code, 0);
        assert!(done.text.is_some_and(|t| t.contains("completed")));
        let failed = finished(&job(pb::JobState::Failed), Duration::ZERO, Mode::JsonLines);
        assert_eq!(failed.code, 1);
        let text = failed.text.unwrap_or_default();
        assert!(text.starts_with("{\"summary\":"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }
}
