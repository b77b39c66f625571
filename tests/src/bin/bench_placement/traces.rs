//! Synthetic access traces with named shapes, generated from a fixed seed: each
//! dataset's hourly reads are Poisson draws around a rate that is its Zipf share of the
//! total, shaped in time.
//!
//! - `seasonal`: weekday working hours (09:00–17:00 UTC) carry 90% of the reads, nights
//!   and weekends the rest: a daily and a weekly season;
//! - `month-end`: otherwise cold data read in batches on the last two days of each month
//!   (98% of the reads);
//! - `random`: a constant rate, no pattern at all;
//! - `shifts`: a constant rate, but which dataset is popular changes suddenly, three
//!   times in the replayed range (the Zipf ranks are permuted).

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};

/// Zipf exponent of popularity.
const ZIPF_S: f64 = 1.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    Seasonal,
    MonthEnd,
    Random,
    Shifts,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::Seasonal,
        Shape::MonthEnd,
        Shape::Random,
        Shape::Shifts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Seasonal => "seasonal",
            Shape::MonthEnd => "month-end",
            Shape::Random => "random",
            Shape::Shifts => "shifts",
        }
    }

    /// How the rate at `t` compares with the dataset's mean rate.
    fn factor(self, t: DateTime<Utc>) -> f64 {
        match self {
            Shape::Seasonal => {
                let weekday = t.weekday().num_days_from_monday() < 5;
                if weekday && (9..17).contains(&t.hour()) {
                    0.9 * 168.0 / 40.0
                } else {
                    0.1 * 168.0 / 128.0
                }
            }
            Shape::MonthEnd => {
                let tomorrow = t + TimeDelta::days(1);
                let last_two_days =
                    (t + TimeDelta::days(2)).month() != t.month() || tomorrow.month() != t.month();
                if last_two_days {
                    0.98 * 720.0 / 48.0
                } else {
                    0.02 * 720.0 / 672.0
                }
            }
            Shape::Random | Shape::Shifts => 1.0,
        }
    }
}

/// A small, fast, seedable generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson draw: Knuth's method for small means, a rounded normal for large.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 30.0 {
            let (u1, u2) = (self.unit().max(1e-12), self.unit());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            return (mean + z * mean.sqrt()).round().max(0.0) as u64;
        }
        let limit = (-mean).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.unit();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

/// What a trace generator needs to know.
pub struct Trace {
    pub shape: Shape,
    pub datasets: usize,
    pub seed: u64,
    /// Reads an hour across all datasets, on average.
    pub reads_per_hour: f64,
    /// Generalised harmonic number: the Zipf weights' normaliser.
    harmonic: f64,
    /// When the ranks are permuted (`shifts` only).
    shifts: Vec<DateTime<Utc>>,
}

/// Multipliers coprime with any dataset count below 10^6 that is not a multiple of
/// these primes' products: they permute ranks as `rank × a mod n`.
const PERMUTERS: [usize; 3] = [7_919, 104_729, 1_299_709];

impl Trace {
    pub fn new(
        shape: Shape,
        datasets: usize,
        seed: u64,
        reads_per_hour: f64,
        start: DateTime<Utc>,
        days: i64,
    ) -> Self {
        let harmonic = (1..=datasets).map(|r| (r as f64).powf(-ZIPF_S)).sum();
        let shifts = if shape == Shape::Shifts {
            (1..=3)
                .map(|k| start + TimeDelta::days(days * k / 4))
                .collect()
        } else {
            Vec::new()
        };
        Trace {
            shape,
            datasets,
            seed,
            reads_per_hour,
            harmonic,
            shifts,
        }
    }

    fn rank(&self, index: usize, t: DateTime<Utc>) -> usize {
        let epoch = self.shifts.iter().filter(|s| **s <= t).count();
        if epoch == 0 {
            return index + 1;
        }
        let mut r = index;
        for a in &PERMUTERS[..epoch] {
            r = (r * (a % self.datasets.max(1)) + epoch) % self.datasets.max(1);
        }
        r + 1
    }

    /// Dataset `index`'s reads in each of `hours` hours from `origin`.
    pub fn reads(&self, index: usize, origin: DateTime<Utc>, hours: usize) -> Vec<u64> {
        let mut rng = Rng::new(self.seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        (0..hours)
            .map(|h| {
                let t = origin + TimeDelta::hours(h as i64);
                let weight = (self.rank(index, t) as f64).powf(-ZIPF_S) / self.harmonic;
                rng.poisson(self.reads_per_hour * weight * self.shape.factor(t))
            })
            .collect()
    }
}
