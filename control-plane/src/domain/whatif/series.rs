//! A dataset's hourly access as dense arrays with running totals, so a replay reads any
//! window's reads, writes and bytes in constant time.

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::access::HourlyAccess;

pub struct Series {
    /// The hour index 0 stands for.
    pub origin: DateTime<Utc>,
    pub reads: Vec<u64>,
    pub writes: Vec<u64>,
    pub bytes_read: Vec<u64>,
    /// Running totals: `cum_x[i]` is the sum of `x[..i]`.
    cum_requests: Vec<u64>,
    cum_bytes: Vec<u64>,
}

impl Series {
    /// `hours` hours from `origin`; history outside them is left out.
    pub fn new(
        origin: DateTime<Utc>,
        hours: usize,
        history: &[(DateTime<Utc>, HourlyAccess)],
    ) -> Self {
        let mut reads = vec![0_u64; hours];
        let mut writes = vec![0_u64; hours];
        let mut bytes_read = vec![0_u64; hours];
        for (at, a) in history {
            let Ok(i) = usize::try_from((*at - origin).num_hours()) else {
                continue;
            };
            if *at < origin || i >= hours {
                continue;
            }
            reads[i] = reads[i].saturating_add(a.reads);
            writes[i] = writes[i].saturating_add(a.writes);
            bytes_read[i] = bytes_read[i].saturating_add(a.bytes_read);
        }
        let running = |f: &dyn Fn(usize) -> u64| {
            let mut out = Vec::with_capacity(hours + 1);
            out.push(0_u64);
            for i in 0..hours {
                out.push(out[i].saturating_add(f(i)));
            }
            out
        };
        let cum_requests = running(&|i| reads[i].saturating_add(writes[i]));
        let cum_bytes = running(&|i| bytes_read[i]);
        Series {
            origin,
            reads,
            writes,
            bytes_read,
            cum_requests,
            cum_bytes,
        }
    }

    pub fn at(&self, i: usize) -> DateTime<Utc> {
        self.origin + TimeDelta::hours(i as i64)
    }

    /// Reads plus writes over the hours `[from, to)` (saturating: counts near `u64::MAX`
    /// can only come from a corrupt aggregate).
    pub fn requests(&self, from: usize, to: usize) -> u64 {
        self.cum_requests[to].saturating_sub(self.cum_requests[from])
    }

    /// Bytes read over the hours `[from, to)`.
    pub fn bytes(&self, from: usize, to: usize) -> u64 {
        self.cum_bytes[to].saturating_sub(self.cum_bytes[from])
    }

    /// The hourly aggregates before hour `to`, as the store returns them (hours with
    /// access only), for training a model as of then.
    pub fn history_before(&self, to: usize) -> Vec<(DateTime<Utc>, HourlyAccess)> {
        (0..to)
            .filter(|i| self.reads[*i] > 0 || self.writes[*i] > 0)
            .map(|i| {
                (
                    self.at(i),
                    HourlyAccess {
                        reads: self.reads[i],
                        writes: self.writes[i],
                        bytes_read: self.bytes_read[i],
                        ..HourlyAccess::default()
                    },
                )
            })
            .collect()
    }
}
