//! The cost model: what a dataset costs a month where it is and where it could be, what
//! moving it costs once, and how long the saving takes to pay for the move. Prices come
//! from the sites; demand from the dataset's recent access.

use super::site::Prices;

const GB: f64 = 1e9;
const DAYS_PER_MONTH: f64 = 30.0;

/// A dataset's demand, projected to a month from its recent access.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MonthlyDemand {
    pub bytes_read: f64,
    pub requests: f64,
}

impl MonthlyDemand {
    /// Projects `reads + writes` requests and `bytes_read` seen over `days` to 30 days.
    pub fn project(requests: u64, bytes_read: u64, days: f64) -> Self {
        if days <= 0.0 {
            return MonthlyDemand::default();
        }
        let scale = DAYS_PER_MONTH / days;
        MonthlyDemand {
            bytes_read: bytes_read as f64 * scale,
            requests: requests as f64 * scale,
        }
    }
}

/// Monthly cost at a site: storage, retrieval of what is read, and requests.
pub fn monthly_cost(prices: &Prices, size_bytes: u64, demand: MonthlyDemand) -> f64 {
    size_bytes as f64 / GB * prices.storage_per_gb_month
        + demand.bytes_read / GB * prices.retrieval_per_gb
        + demand.requests / 1000.0 * prices.per_1000_requests
}

/// One-time cost of moving a dataset: egress and retrieval at the source, a request per
/// object at each end, and early deletion when the source bills a minimum storage
/// duration the dataset has not reached (`days_at_source`).
pub fn move_cost(
    source: &Prices,
    destination: &Prices,
    size_bytes: u64,
    objects: u64,
    days_at_source: f64,
) -> f64 {
    let gb = size_bytes as f64 / GB;
    let requests = objects as f64 / 1000.0;
    let early_days = (f64::from(source.min_storage_days) - days_at_source).max(0.0);
    let early_deletion = gb * source.storage_per_gb_month * early_days / DAYS_PER_MONTH;
    gb * (source.egress_per_gb + source.retrieval_per_gb)
        + requests * (source.per_1000_requests + destination.per_1000_requests)
        + early_deletion
}

/// Days until the monthly saving repays the move; `None` when there is no saving.
pub fn payback_days(monthly_now: f64, monthly_after: f64, move_cost: f64) -> Option<f64> {
    let saving = monthly_now - monthly_after;
    (saving > 0.0).then(|| move_cost / saving * DAYS_PER_MONTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_small_case_by_hand() {
        let hot = Prices {
            storage_per_gb_month: 0.023,
            per_1000_requests: 0.4,
            egress_per_gb: 0.09,
            ..Prices::default()
        };
        let cold = Prices {
            storage_per_gb_month: 0.004,
            retrieval_per_gb: 0.01,
            per_1000_requests: 5.0,
            min_storage_days: 90,
            ..Prices::default()
        };
        // 100 GB, read 10 GB and 2,000 requests over 10 days → 30 GB and 6,000 a month.
        let demand = MonthlyDemand::project(2_000, 10_000_000_000, 10.0);
        let size = 100_000_000_000;
        assert!(close(monthly_cost(&hot, size, demand), 2.3 + 0.0 + 2.4));
        assert!(close(monthly_cost(&cold, size, demand), 0.4 + 0.3 + 30.0));
        // Hot → cold, 1,000 objects: egress 9.0 + requests 0.4 + 5.0.
        assert!(close(move_cost(&hot, &cold, size, 1_000, 5.0), 14.4));
        // Cold → hot after 30 of 90 days: retrieval 1.0 + requests 5.4 + early deletion
        // 100 × 0.004 × 60 / 30 = 0.8.
        assert!(close(move_cost(&cold, &hot, size, 1_000, 30.0), 7.2));
        assert!(close(payback_days(4.7, 0.7, 14.4).unwrap(), 108.0));
        assert_eq!(payback_days(1.0, 2.0, 5.0), None);
    }
}
