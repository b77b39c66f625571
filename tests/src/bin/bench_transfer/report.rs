//! What the benchmark prints once the rounds are done: each server's medians and
//! ratios, the targets judged on them, and, with two servers, both side by side.

use super::*;

/// Which S3 workloads ran, and their sizes, for the headings.
pub(crate) struct Shape {
    pub(crate) w1_files: usize,
    pub(crate) w2_files: usize,
    pub(crate) w2_mib: usize,
    pub(crate) skip_w1: bool,
    pub(crate) skip_w2: bool,
}

/// One of the targets judged on one server's medians; `reached` is none when
/// its runs did not happen (rclone missing, or the workload left out).
pub(crate) struct Judged {
    pub(crate) what: String,
    pub(crate) reached: Option<f64>,
    pub(crate) unit: &'static str,
    pub(crate) met: bool,
}

impl Judged {
    pub(crate) fn new(
        what: &str,
        reached: Option<f64>,
        unit: &'static str,
        met: impl Fn(f64) -> bool,
    ) -> Judged {
        Judged {
            what: what.to_owned(),
            reached,
            unit,
            met: reached.is_some_and(met),
        }
    }

    /// `1.23× met`, or nothing when the runs did not happen.
    fn verdict(&self) -> Option<String> {
        let x = self.reached?;
        let verdict = if self.met { "met" } else { "NOT met" };
        Some(format!("{x:>7.2}{:<5} {verdict:<7}", self.unit))
    }

    pub(crate) fn print(&self) {
        if let Some(verdict) = self.verdict() {
            println!("  {:<50} {verdict}", self.what);
        }
    }
}

impl Endpoint {
    fn workloads(&self) -> [&Results; 3] {
        [&self.w1, &self.w2, &self.w3]
    }

    /// The medians and ratios of each S3 workload that ran on this server.
    pub(crate) fn summaries(&self, shape: &Shape) {
        let on = self.server.name();
        if !shape.skip_w1 {
            let w1 = &self.w1;
            w1.summary(&format!(
                "W1 ({} × 64 KiB, file → s3) on {on}",
                shape.w1_files
            ));
            w1.ratio("W1 ferry quick", "W1 rclone default");
            w1.ratio("W1 ferry quick", "W1 rclone --transfers 32");
            w1.ratio("W1 ferry quick", "W1 ferry full");
        }
        if !shape.skip_w2 {
            let w2 = &self.w2;
            w2.summary(&format!(
                "W2 ({} × {} MiB, file → s3) on {on}",
                shape.w2_files, shape.w2_mib
            ));
            w2.ratio("W2 ferry quick", "W2 rclone default");
            w2.ratio("W2 ferry quick", "W2 rclone --transfers 32");
            w2.ratio("W2 ferry quick", "W2 rclone multipart 8 MiB");
            w2.ratio("W2 ferry quick", "W2 ferry full");
            w2.ratio("W2 ferry quick-200", "W2 rclone default");
            w2.ratio("W2 ferry quick-200", "W2 rclone --transfers 32");
        }
        if !shape.skip_w1 {
            let w3 = &self.w3;
            w3.summary(&format!(
                "W3 ({} × 64 KiB, s3 → s3, one endpoint) on {on}",
                shape.w1_files
            ));
            w3.ratio("W3 ferry quick", "W3 rclone server-side");
            w3.ratio("W3 ferry quick", "W3 ferry full");
        }
    }

    /// The targets for the S3 workloads, judged on this server's medians.
    pub(crate) fn targets(&self, shape: &Shape) -> Vec<Judged> {
        let (w1, w2, w3) = (&self.w1, &self.w2, &self.w3);
        let mut judged = Vec::new();
        if !shape.skip_w1 {
            judged.push(Judged::new(
                "W1 quick ≥ 1.5× rclone default",
                w1.speedup("W1 ferry quick", "W1 rclone default"),
                "×",
                |x| x >= 1.5,
            ));
            judged.push(Judged::new(
                "W1 quick ≥ 1.2× rclone --transfers 32",
                w1.speedup("W1 ferry quick", "W1 rclone --transfers 32"),
                "×",
                |x| x >= 1.2,
            ));
        }
        if !shape.skip_w2 {
            // Against the faster of rclone's two variants: the smaller of the speed-ups.
            let vs_faster = |ferry: &str| {
                ["W2 rclone default", "W2 rclone --transfers 32"]
                    .iter()
                    .filter_map(|r| w2.speedup(ferry, r))
                    .reduce(f64::min)
            };
            judged.push(Judged::new(
                "W2 quick ≥ 1.2× the faster rclone variant",
                vs_faster("W2 ferry quick"),
                "×",
                |x| x >= 1.2,
            ));
            judged.push(Judged::new(
                "  the same, one request up to 200 MiB as rclone",
                vs_faster("W2 ferry quick-200"),
                "×",
                |x| x >= 1.2,
            ));
        }
        if !shape.skip_w1 {
            judged.push(Judged::new(
                "W3 quick faster than rclone server-side",
                w3.speedup("W3 ferry quick", "W3 rclone server-side"),
                "×",
                |x| x > 1.0,
            ));
        }
        for (name, results, skipped) in [
            ("W1", w1, shape.skip_w1),
            ("W2", w2, shape.skip_w2),
            ("W3", w3, shape.skip_w1),
        ] {
            if !skipped {
                judged.push(Judged::new(
                    &format!("{name} full ≤ 1.6× the time of quick"),
                    results.speedup(
                        &format!("{name} ferry quick"),
                        &format!("{name} ferry full"),
                    ),
                    "×",
                    |x| x <= 1.6,
                ));
            }
        }
        if !shape.skip_w2 {
            let peak = ["W2 ferry quick", "W2 ferry full", "W2 ferry quick-200"]
                .iter()
                .filter_map(|who| w2.peak_rss_mib(who))
                .reduce(f64::max);
            judged.push(Judged::new(
                "agent peak RSS on W2 < 256 MiB",
                peak,
                " MiB",
                |x| x < 256.0,
            ));
        }
        judged
    }
}

/// Each server's medians and targets, then, with more than one server, every median
/// and every target in one line across the servers.
pub(crate) fn report(endpoints: &[Endpoint], shape: &Shape) {
    for endpoint in endpoints {
        println!();
        endpoint.summaries(shape);
    }
    for endpoint in endpoints {
        println!();
        println!(
            "targets, on {}'s medians (set for a release build and the default workloads):",
            endpoint.server.name()
        );
        for judged in endpoint.targets(shape) {
            judged.print();
        }
    }
    if endpoints.len() < 2 {
        return;
    }
    let names: Vec<&str> = endpoints.iter().map(|e| e.server.name()).collect();
    println!();
    println!("side by side, medians ({}):", names.join(" | "));
    for (i, first) in endpoints[0].workloads().into_iter().enumerate() {
        for who in first.runs.keys() {
            let cells: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    e.workloads()[i]
                        .median_cell(who)
                        .unwrap_or_else(|| "-".into())
                })
                .collect();
            println!("  {who:<26} {}", cells.join(" | "));
        }
    }
    println!();
    println!("targets side by side ({}):", names.join(" | "));
    let judged: Vec<Vec<Judged>> = endpoints.iter().map(|e| e.targets(shape)).collect();
    for (i, first) in judged[0].iter().enumerate() {
        let cells: Vec<String> = judged
            .iter()
            .map(|j| j[i].verdict().unwrap_or_else(|| "-".into()))
            .collect();
        println!("  {:<50} {}", first.what, cells.join(" | "));
    }
}
