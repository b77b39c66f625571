//! Placement advice: which tier a dataset belongs on by how recently and how often it is
//! read, which site serves that tier within its latency objective at the lowest cost,
//! and the reasons, in plain words, with the figures behind them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    cost::{monthly_cost, move_cost, payback_days, MonthlyDemand},
    dataset::Dataset,
    ids::SiteId,
    policy::PolicySpec,
    site::Site,
    tier::Tier,
};

/// The model behind recommendations made by these rules.
pub const MODEL_VERSION: &str = "recency-rules/2";
/// Reads in the last hour that keep a dataset at least warm, whatever its recency.
const BUSY_READS_PER_HOUR: u64 = 60;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CostEstimate {
    pub monthly_now: f64,
    pub monthly_after: f64,
    pub move_cost: f64,
    pub payback_days: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Advice {
    pub tier: Tier,
    pub site_id: SiteId,
    pub reasons: Vec<Reason>,
    pub cost: CostEstimate,
}

impl Advice {
    pub fn moves(&self, dataset: &Dataset) -> bool {
        self.site_id != dataset.site_id
    }
}

pub struct Inputs<'a> {
    pub dataset: &'a Dataset,
    pub sites: &'a [Site],
    pub policy: Option<&'a PolicySpec>,
    /// Demand projected to a month from recent access.
    pub demand: MonthlyDemand,
    pub reads_last_hour: u64,
    pub bytes_read_last_day: u64,
    /// When the dataset last arrived where it is (its last completed migration).
    pub arrived_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Bytes in decimal units, as prices are quoted.
fn size(bytes: f64) -> String {
    match bytes {
        b if b >= 1e12 => format!("{:.1} TB", b / 1e12),
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b => format!("{b:.0} B"),
    }
}

/// Dollars with enough digits that a small dataset's cost does not read as zero.
fn usd(x: f64) -> String {
    if x.abs() >= 1.0 || x == 0.0 {
        format!("${x:.2}")
    } else {
        format!("${x:.4}")
    }
}

fn hotter(t: Tier) -> Option<Tier> {
    match t {
        Tier::Cold => Some(Tier::Warm),
        Tier::Warm => Some(Tier::Hot),
        Tier::Hot => None,
    }
}

pub fn recommend(i: &Inputs<'_>) -> Option<Advice> {
    let defaults = PolicySpec::default();
    let policy = i.policy.unwrap_or(&defaults);
    let current = i.sites.iter().find(|s| s.id == i.dataset.site_id)?;
    let mut reasons = Vec::new();

    // Recency, then frequency.
    let mut tier = match i.dataset.last_access_at {
        Some(at) => {
            let age = (i.now - at).to_std().unwrap_or(Duration::ZERO);
            let tier = policy.tier_for_age(age);
            reasons.push(Reason {
                code: "recency".into(),
                message: format!(
                    "last accessed {} ago: {tier} (hot within {}, warm within {})",
                    human(age),
                    human(policy.hot_after),
                    human(policy.warm_after)
                ),
            });
            tier
        }
        None => {
            reasons.push(Reason {
                code: "recency".into(),
                message: "never accessed: cold".into(),
            });
            Tier::Cold
        }
    };
    if tier == Tier::Cold && i.reads_last_hour >= BUSY_READS_PER_HOUR {
        tier = Tier::Warm;
        reasons.push(Reason {
            code: "frequency".into(),
            message: format!(
                "{} reads in the last hour keep it at least warm",
                i.reads_last_hour
            ),
        });
    }
    // Read volume: a dataset read through at least once a day is working data.
    let size_bytes = i.dataset.size_bytes;
    if tier == Tier::Cold && size_bytes > 0 && i.bytes_read_last_day >= size_bytes {
        tier = Tier::Warm;
        reasons.push(Reason {
            code: "read_volume".into(),
            message: format!(
                "{} read in the last day, {:.1}× its size: keeps it at least warm",
                size(i.bytes_read_last_day as f64),
                i.bytes_read_last_day as f64 / size_bytes as f64
            ),
        });
    }

    // Sites that may hold that tier, within the latency objective.
    let slo = policy.latency_slo_ms.or(i.dataset.latency_slo_ms);
    let meets_slo = |s: &Site| slo.is_none_or(|slo| s.latency_ms <= slo);
    let cost_at = |s: &Site| monthly_cost(&s.prices, i.dataset.size_bytes, i.demand);
    let mut wanted = Some(tier);
    let target = loop {
        let Some(t) = wanted else { break None };
        let candidates: Vec<&Site> = match policy.placements.get(&t) {
            Some(site) => i.sites.iter().filter(|s| s.id == *site).collect(),
            None => i.sites.iter().filter(|s| s.tier == t).collect(),
        };
        let (fits, too_slow): (Vec<&Site>, Vec<&Site>) =
            candidates.into_iter().partition(|s| meets_slo(s));
        for s in too_slow {
            reasons.push(Reason {
                code: "latency_slo".into(),
                message: format!(
                    "{} answers in {} ms, slower than the {} ms objective: not a candidate",
                    s.name,
                    s.latency_ms,
                    slo.unwrap_or_default()
                ),
            });
        }
        let best = if fits.iter().any(|s| s.id == current.id) {
            Some(current)
        } else {
            fits.into_iter()
                .min_by(|a, b| cost_at(a).total_cmp(&cost_at(b)))
        };
        if best.is_some() {
            break best;
        }
        wanted = hotter(t);
    };
    let target = match target {
        Some(site) => site,
        None => {
            reasons.push(Reason {
                code: "no_site".into(),
                message: format!(
                    "no {tier} site meets the objectives; staying on {}",
                    current.name
                ),
            });
            current
        }
    };

    // Minimum residency keeps a dataset from flapping.
    let stayed = (i.now - i.arrived_at).to_std().unwrap_or(Duration::ZERO);
    let target = if target.id != current.id && stayed < policy.min_residency {
        reasons.push(Reason {
            code: "min_residency".into(),
            message: format!(
                "on {} for {} only, less than the minimum residency of {}: not moving yet",
                current.name,
                human(stayed),
                human(policy.min_residency)
            ),
        });
        current
    } else {
        target
    };

    // Reads weigh in through retrieval fees: a colder site that would cost more a month,
    // once what is read from it is paid for, is no saving.
    let target = if target.id != current.id
        && target.tier > current.tier
        && cost_at(target) > cost_at(current)
    {
        reasons.push(Reason {
            code: "retrieval_cost".into(),
            message: format!(
                "reading {} a month would cost {} a month on {} against {} on {}: staying",
                size(i.demand.bytes_read),
                usd(cost_at(target)),
                target.name,
                usd(cost_at(current)),
                current.name
            ),
        });
        current
    } else {
        target
    };

    let monthly_now = cost_at(current);
    let monthly_after = cost_at(target);
    let moving = target.id != current.id;
    let days_at_source = stayed.as_secs_f64() / 86_400.0;
    let one_time = if moving {
        move_cost(
            &current.prices,
            &target.prices,
            i.dataset.size_bytes,
            i.dataset.object_count,
            days_at_source,
        )
    } else {
        0.0
    };
    let cost = CostEstimate {
        monthly_now,
        monthly_after,
        move_cost: one_time,
        payback_days: payback_days(monthly_now, monthly_after, one_time),
    };
    if moving {
        reasons.push(Reason {
            code: "cost".into(),
            message: format!(
                "monthly cost {} on {} → {} on {}; moving costs {} once",
                usd(monthly_now),
                current.name,
                usd(monthly_after),
                target.name,
                usd(one_time)
            ),
        });
    }
    if let Some(budget) = policy.monthly_cost_target {
        if monthly_after > budget {
            reasons.push(Reason {
                code: "cost_target".into(),
                message: format!(
                    "projected {} a month exceeds the {} target",
                    usd(monthly_after),
                    usd(budget)
                ),
            });
        }
    }
    Some(Advice {
        tier: if moving {
            target.tier
        } else {
            i.dataset.current_tier
        },
        site_id: target.id,
        reasons,
        cost,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeDelta;

    use super::*;
    use crate::domain::{
        dataset::DatasetPath, ids::DatasetId, labels::Labels, name::Name, site::Prices,
    };

    fn site(name: &str, tier: Tier, latency_ms: u32, storage: f64) -> Site {
        let now = Utc::now();
        Site {
            id: SiteId::new(),
            name: Name::parse("name", name).unwrap(),
            uri: ferry_storage::SiteUri::parse("memory://").unwrap(),
            options: BTreeMap::new(),
            tier,
            default_storage_class: String::new(),
            latency_ms,
            prices: Prices {
                storage_per_gb_month: storage,
                ..Prices::default()
            },
            bandwidth_limit: None,
            credential_keys: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    fn dataset(on: &Site, last_access: Option<DateTime<Utc>>, slo: Option<u32>) -> Dataset {
        let now = Utc::now();
        Dataset {
            id: DatasetId::new(),
            name: Name::parse("name", "d").unwrap(),
            site_id: on.id,
            path: DatasetPath::parse("path", "d").unwrap(),
            current_tier: on.tier,
            latency_slo_ms: slo,
            size_bytes: 10_000_000_000,
            object_count: 100,
            owner: String::new(),
            labels: Labels::default(),
            last_access_at: last_access,
            created_at: now,
            updated_at: now,
        }
    }

    /// No policy, no demand, on its site for 30 days.
    fn inputs<'a>(d: &'a Dataset, sites: &'a [Site], now: DateTime<Utc>) -> Inputs<'a> {
        Inputs {
            dataset: d,
            sites,
            policy: None,
            demand: MonthlyDemand::default(),
            reads_last_hour: 0,
            bytes_read_last_day: 0,
            arrived_at: now - TimeDelta::days(30),
            now,
        }
    }

    fn advise(
        d: &Dataset,
        sites: &[Site],
        policy: Option<&PolicySpec>,
        now: DateTime<Utc>,
    ) -> Advice {
        recommend(&Inputs {
            policy,
            ..inputs(d, sites, now)
        })
        .unwrap()
    }

    #[test]
    fn recency_picks_the_tier_and_the_cheapest_site_of_it() {
        let now = Utc::now();
        let sites = vec![
            site("fast", Tier::Hot, 2, 0.02),
            site("archive", Tier::Cold, 200, 0.004),
        ];
        let fresh = dataset(&sites[1], Some(now - TimeDelta::seconds(5)), None);
        let advice = advise(&fresh, &sites, None, now);
        assert_eq!((advice.tier, advice.site_id), (Tier::Hot, sites[0].id));
        assert!(
            advice.reasons[0]
                .message
                .starts_with("last accessed 5s ago: hot"),
            "{:?}",
            advice.reasons
        );
        let idle = dataset(&sites[0], Some(now - TimeDelta::hours(1)), None);
        let advice = advise(&idle, &sites, None, now);
        assert_eq!((advice.tier, advice.site_id), (Tier::Cold, sites[1].id));
        assert!(advice.cost.monthly_after < advice.cost.monthly_now);
    }

    #[test]
    fn a_latency_objective_keeps_data_off_slow_sites() {
        let now = Utc::now();
        let sites = vec![
            site("fast", Tier::Hot, 2, 0.02),
            site("archive", Tier::Cold, 200, 0.004),
        ];
        let idle = dataset(&sites[0], Some(now - TimeDelta::hours(5)), Some(20));
        let advice = advise(&idle, &sites, None, now);
        assert_eq!(
            advice.site_id, sites[0].id,
            "the 200 ms archive breaks the 20 ms objective"
        );
        assert!(advice.reasons.iter().any(|r| r.code == "latency_slo"
            && r.message
                == "archive answers in 200 ms, slower than the 20 ms objective: not a candidate"));
    }

    #[test]
    fn a_dataset_read_through_daily_stays_warm() {
        let now = Utc::now();
        let sites = vec![
            site("fast", Tier::Hot, 2, 0.02),
            site("nearline", Tier::Warm, 20, 0.01),
            site("archive", Tier::Cold, 200, 0.004),
        ];
        let scanned = dataset(&sites[0], Some(now - TimeDelta::hours(2)), None);
        let advice = recommend(&Inputs {
            bytes_read_last_day: 15_000_000_000,
            ..inputs(&scanned, &sites, now)
        })
        .unwrap();
        assert_eq!((advice.tier, advice.site_id), (Tier::Warm, sites[1].id));
        assert!(
            advice.reasons.iter().any(|r| r.code == "read_volume"
                && r.message
                    == "15.0 GB read in the last day, 1.5× its size: keeps it at least warm"),
            "{:?}",
            advice.reasons
        );
    }

    #[test]
    fn retrieval_fees_can_make_a_colder_site_no_saving() {
        let now = Utc::now();
        let mut archive = site("archive", Tier::Cold, 200, 0.004);
        archive.prices.retrieval_per_gb = 0.03;
        let sites = vec![site("fast", Tier::Hot, 2, 0.02), archive];
        let idle = dataset(&sites[0], Some(now - TimeDelta::hours(2)), None);
        // 10 GB at 0.02 = $0.20 on fast; 10 GB at 0.004 + 100 GB read at 0.03 = $3.04.
        let advice = recommend(&Inputs {
            demand: MonthlyDemand {
                bytes_read: 100e9,
                requests: 0.0,
            },
            ..inputs(&idle, &sites, now)
        })
        .unwrap();
        assert_eq!(advice.site_id, sites[0].id);
        assert!(
            advice.reasons.iter().any(|r| r.code == "retrieval_cost"
                && r.message
                    == "reading 100.0 GB a month would cost $3.04 a month on archive against $0.2000 on fast: staying"),
            "{:?}",
            advice.reasons
        );
        assert!((advice.cost.monthly_now - 0.2).abs() < 1e-9);
    }

    #[test]
    fn minimum_residency_prevents_flapping() {
        let now = Utc::now();
        let sites = vec![
            site("fast", Tier::Hot, 2, 0.02),
            site("archive", Tier::Cold, 200, 0.004),
        ];
        let idle = dataset(&sites[0], Some(now - TimeDelta::hours(1)), None);
        let policy = PolicySpec {
            min_residency: Duration::from_secs(7 * 86_400),
            ..PolicySpec::default()
        };
        let advice = recommend(&Inputs {
            policy: Some(&policy),
            arrived_at: now - TimeDelta::days(1),
            ..inputs(&idle, &sites, now)
        })
        .unwrap();
        assert_eq!(advice.site_id, sites[0].id);
        assert!(
            advice.reasons.iter().any(|r| r.code == "min_residency"),
            "{:?}",
            advice.reasons
        );
    }
}
