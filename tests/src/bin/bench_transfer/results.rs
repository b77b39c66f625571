//! Timed runs, their medians and ratios, and the targets judged on them.

use super::*;

/// One timed run.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub(crate) seconds: f64,
    pub(crate) cpu_seconds: f64,
    pub(crate) peak_rss_kib: u64,
    /// CPU seconds of the S3 server ([`Server::cpu_seconds`]); none on W4.
    pub(crate) server_cpu_seconds: f64,
    /// CPU seconds the host took from this machine while the run went on (`steal` in
    /// /proc/stat, both cores): the host's own load, which slows every process here.
    pub(crate) steal_seconds: f64,
}

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Runs of one workload, by contender.
pub(crate) struct Results {
    pub(crate) objects: usize,
    pub(crate) bytes: u64,
    pub(crate) runs: BTreeMap<String, Vec<Run>>,
}

impl Results {
    pub(crate) fn new(objects: usize, bytes: u64) -> Self {
        Results {
            objects,
            bytes,
            runs: BTreeMap::new(),
        }
    }

    pub(crate) fn add(&mut self, who: &str, round: usize, run: Run) {
        let (objects, bytes) = (self.objects, self.bytes);
        println!(
            "  round {round}  {who:<26} {:>7.2} s {:>9.0} obj/s {:>8.1} MB/s {:>7.2} cpu s {:>6} MiB peak {:>6.2} server cpu s {:>5.2} steal s",
            run.seconds,
            objects as f64 / run.seconds,
            bytes as f64 / 1e6 / run.seconds,
            run.cpu_seconds,
            run.peak_rss_kib / 1024,
            run.server_cpu_seconds,
            run.steal_seconds
        );
        self.runs.entry(who.to_owned()).or_default().push(run);
    }

    pub(crate) fn median_seconds(&self, who: &str) -> Option<f64> {
        self.runs
            .get(who)
            .map(|r| median(r.iter().map(|x| x.seconds).collect()))
    }

    pub(crate) fn summary(&self, name: &str) {
        let (objects, bytes) = (self.objects, self.bytes);
        println!("{name}: medians");
        for (who, runs) in &self.runs {
            let s = median(runs.iter().map(|r| r.seconds).collect());
            let cpu = median(runs.iter().map(|r| r.cpu_seconds).collect());
            let rss = peak_rss_kib(runs).unwrap_or(0);
            let server = median(runs.iter().map(|r| r.server_cpu_seconds).collect());
            println!(
                "  {who:<26} {s:>7.2} s {:>9.0} obj/s {:>8.1} MB/s {cpu:>7.2} cpu s {:>6} MiB peak {server:>6.2} server cpu s",
                objects as f64 / s,
                bytes as f64 / 1e6 / s,
                rss / 1024
            );
        }
    }

    /// `who`'s median seconds, MB/s and server CPU seconds, for the side-by-side table.
    pub(crate) fn median_cell(&self, who: &str) -> Option<String> {
        let runs = self.runs.get(who)?;
        let s = median(runs.iter().map(|r| r.seconds).collect());
        let server = median(runs.iter().map(|r| r.server_cpu_seconds).collect());
        Some(format!(
            "{s:>6.2} s {:>6.1} MB/s {server:>5.2} server cpu s",
            self.bytes as f64 / 1e6 / s
        ))
    }

    /// How many times faster `a` is than `b`, by median time.
    pub(crate) fn speedup(&self, a: &str, b: &str) -> Option<f64> {
        Some(self.median_seconds(b)? / self.median_seconds(a)?)
    }

    pub(crate) fn ratio(&self, a: &str, b: &str) {
        if let Some(x) = self.speedup(a, b) {
            println!("  {a} vs {b}: {x:.2}× the speed");
        }
    }

    /// The highest peak RSS of `who`'s runs, in MiB.
    pub(crate) fn peak_rss_mib(&self, who: &str) -> Option<f64> {
        Some(peak_rss_kib(self.runs.get(who)?)? as f64 / 1024.0)
    }
}

/// The highest peak RSS of `runs`, in KiB.
pub(crate) fn peak_rss_kib(runs: &[Run]) -> Option<u64> {
    runs.iter().map(|r| r.peak_rss_kib).max()
}
