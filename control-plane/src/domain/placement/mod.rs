//! Placement advice: which tier a dataset belongs on by how recently and how often it is
//! read and what its demand model forecasts, which site serves that tier within its
//! latency objective at the lowest cost, and the reasons, in plain words, with the
//! figures behind them.
//!
//! Guarantees: a move to a site where the dataset would cost more a month (storage,
//! retrieval and requests at the expected demand) is advised only when the current site
//! misses the dataset's latency objective or the governing policy's placements name that
//! site for the tier, and the reasons say which; otherwise the dataset stays and the
//! reasons say why.

use std::time::Duration;

use chrono::{DateTime, Utc};

mod prewarm;
mod words;

use prewarm::{due_within, lead_time, MIN_DEMOTION_LOOKAHEAD};
pub use prewarm::{TransferRates, ASSUMED_RATE};
use words::{count, human, rate, size, usd, when};

use super::{
    cost::{monthly_cost, move_cost, payback_days, MonthlyDemand},
    dataset::Dataset,
    forecast::Outlook,
    ids::SiteId,
    policy::PolicySpec,
    site::Site,
    tier::Tier,
};

/// The model behind recommendations made by these rules.
pub const MODEL_VERSION: &str = "recency-rules/3";
/// Hours in the 30-day month prices are quoted for.
const HOURS_PER_MONTH: f64 = 720.0;
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
    /// What the dataset's demand model expects, when a model is in use.
    pub outlook: Option<&'a Outlook>,
    /// How fast moves between sites went, to time pre-warming.
    pub rates: &'a TransferRates,
    /// The dataset has a demand model (in use or not): demotions are weighed against
    /// what moving costs.
    pub trained: bool,
}

fn hotter(t: Tier) -> Option<Tier> {
    match t {
        Tier::Cold => Some(Tier::Warm),
        Tier::Warm => Some(Tier::Hot),
        Tier::Hot => None,
    }
}

fn say(reasons: &mut Vec<Reason>, code: &str, message: String) {
    reasons.push(Reason {
        code: code.into(),
        message,
    });
}

/// Why a costlier site is still the right one, if anything requires it.
enum Requirement {
    LatencyObjective(u32),
    Policy,
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
            say(
                &mut reasons,
                "recency",
                format!(
                    "last accessed {} ago: {tier} (hot within {}, warm within {})",
                    human(age),
                    human(policy.hot_after),
                    human(policy.warm_after)
                ),
            );
            tier
        }
        None => {
            say(&mut reasons, "recency", "never accessed: cold".into());
            Tier::Cold
        }
    };
    if tier == Tier::Cold && i.reads_last_hour >= BUSY_READS_PER_HOUR {
        tier = Tier::Warm;
        say(
            &mut reasons,
            "frequency",
            format!(
                "{} reads in the last hour keep it at least warm",
                i.reads_last_hour
            ),
        );
    }
    // Read volume: a dataset read through at least once a day is working data.
    let size_bytes = i.dataset.size_bytes;
    if tier == Tier::Cold && size_bytes > 0 && i.bytes_read_last_day >= size_bytes {
        tier = Tier::Warm;
        say(
            &mut reasons,
            "read_volume",
            format!(
                "{} read in the last day, {:.1}× its size: keeps it at least warm",
                size(i.bytes_read_last_day as f64),
                i.bytes_read_last_day as f64 / size_bytes as f64
            ),
        );
    }

    // The forecast: what the coming week holds, and demand priced from it.
    let demand = match i.outlook {
        Some(o) => {
            let peak = o
                .peak
                .map(|(at, reads)| format!(", peak {} ({} reads/h)", when(at), count(reads)))
                .unwrap_or_default();
            say(
                &mut reasons,
                "forecast",
                format!(
                    "expected {} reads over the next {} days{peak} (model {})",
                    count(o.reads_next_week),
                    o.hours / 24,
                    o.version
                ),
            );
            o.monthly_demand()
        }
        None => i.demand,
    };

    // Sites that may hold a tier, within the latency objective.
    let slo = policy.latency_slo_ms.or(i.dataset.latency_slo_ms);
    let meets_slo = |s: &Site| slo.is_none_or(|slo| s.latency_ms <= slo);
    let cost_at = |s: &Site| monthly_cost(&s.prices, size_bytes, demand);
    let choose = |tier: Tier, reasons: &mut Vec<Reason>| {
        let mut wanted = Some(tier);
        loop {
            let t = wanted?;
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
                return best;
            }
            wanted = hotter(t);
        }
    };

    // Pre-warming: a busy period the forecast expects soon brings the data back to a
    // hot site early enough for the move to finish before it.
    let busy = i.outlook.and_then(|o| o.next_busy);
    if let Some(busy) = busy.filter(|_| tier != Tier::Hot && current.tier != Tier::Hot) {
        if let Some(hot) = choose(Tier::Hot, &mut Vec::new()).filter(|s| s.id != current.id) {
            let (bps, measured) = i.rates.between(current.id, hot.id);
            let (copy, lead) = lead_time(size_bytes, bps);
            let how = if measured { "measured" } else { "assumed" };
            let plan = format!(
                "moving {} to {} at the {how} {} takes about {}",
                size(size_bytes as f64),
                hot.name,
                rate(bps),
                human(copy)
            );
            if due_within(busy, i.now, lead) {
                tier = Tier::Hot;
                say(
                    &mut reasons,
                    "prewarm",
                    format!(
                        "a busy period is forecast from {}, in {}; {plan}: moving now so it is \
                         there in time",
                        when(busy),
                        human((busy - i.now).to_std().unwrap_or(Duration::ZERO))
                    ),
                );
            } else {
                say(
                    &mut reasons,
                    "prewarm_planned",
                    format!(
                        "a busy period is forecast from {}; {plan}: the move back is due from {}",
                        when(busy),
                        when(busy - lead)
                    ),
                );
            }
        }
    }

    let target = choose(tier, &mut reasons);
    let target = match target {
        Some(site) => site,
        None => {
            say(
                &mut reasons,
                "no_site",
                format!(
                    "no {tier} site meets the objectives; staying on {}",
                    current.name
                ),
            );
            current
        }
    };

    // Minimum residency keeps a dataset from flapping.
    let stayed = (i.now - i.arrived_at).to_std().unwrap_or(Duration::ZERO);
    let target = if target.id != current.id && stayed < policy.min_residency {
        say(
            &mut reasons,
            "min_residency",
            format!(
                "on {} for {} only, less than the minimum residency of {}: not moving yet",
                current.name,
                human(stayed),
                human(policy.min_residency)
            ),
        );
        current
    } else {
        target
    };

    // A demotion just before a forecast busy period would be undone at once.
    let lookahead = policy.min_residency.max(MIN_DEMOTION_LOOKAHEAD);
    let target = match busy {
        Some(busy)
            if target.id != current.id
                && target.tier > current.tier
                && due_within(busy, i.now, lookahead) =>
        {
            say(
                &mut reasons,
                "forecast_peak",
                format!(
                    "a busy period is forecast from {}, within the {} a demotion must last: \
                     staying on {}",
                    when(busy),
                    human(lookahead),
                    current.name
                ),
            );
            current
        }
        _ => target,
    };

    // Once the dataset has a demand model, a demotion must pay for itself: what it saves
    // before the data is wanted back has to cover the move (there and back, where the
    // policy would bring it back). With a forecast in use, "wanted back" is the next read
    // it expects; without one, the data is assumed to stay idle as long again as it
    // already has (the rent-or-buy rule: moving pays once idling has cost as much as the
    // move).
    let target = if i.trained
        && target.id != current.id
        && target.tier > current.tier
        && cost_at(target) < cost_at(current)
    {
        let expected = i.outlook.and_then(|o| match (o.next_read, o.next_busy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        });
        let idle = i
            .dataset
            .last_access_at
            .map_or(stayed, |at| (i.now - at).to_std().unwrap_or(Duration::ZERO))
            .min(stayed.max(Duration::from_secs(3600)));
        let horizon = match expected {
            Some(back) => (back - i.now).to_std().unwrap_or(Duration::ZERO),
            None => idle,
        };
        let hours = horizon.as_secs_f64() / 3600.0;
        let saving = (cost_at(current) - cost_at(target)) * hours / HOURS_PER_MONTH;
        let objects = i.dataset.object_count;
        let there = move_cost(
            &current.prices,
            &target.prices,
            size_bytes,
            objects,
            stayed.as_secs_f64() / 86_400.0,
        );
        // The next read brings it back only where the policy places this tier here;
        // otherwise a costlier return is refused and the move is one way.
        let comes_back =
            policy.placements.get(&current.tier) == Some(&current.id) && i.policy.is_some();
        let back = if comes_back {
            move_cost(
                &target.prices,
                &current.prices,
                size_bytes,
                objects,
                hours / 24.0,
            )
        } else {
            0.0
        };
        if saving < there + back {
            let until = match expected {
                Some(back) => format!("until the next read forecast, {}", when(back)),
                None => format!("if it stays idle as long again ({})", human(horizon)),
            };
            let what = if comes_back {
                "of moving there and back"
            } else {
                "the move costs"
            };
            say(
                &mut reasons,
                if expected.is_some() {
                    "forecast_payback"
                } else {
                    "payback"
                },
                format!(
                    "{} would save {} {until}, less than the {} {what}: staying on {}",
                    target.name,
                    usd(saving),
                    usd(there + back),
                    current.name
                ),
            );
            current
        } else {
            target
        }
    } else {
        target
    };

    // Reads weigh in through retrieval fees: a colder site that would cost more a month,
    // once what is read from it is paid for, is no saving.
    let target = if target.id != current.id
        && target.tier > current.tier
        && cost_at(target) > cost_at(current)
    {
        say(
            &mut reasons,
            "retrieval_cost",
            format!(
                "reading {} a month would cost {} a month on {} against {} on {}: staying",
                size(demand.bytes_read),
                usd(cost_at(target)),
                target.name,
                usd(cost_at(current)),
                current.name
            ),
        );
        current
    } else {
        target
    };

    // Any other move to a costlier site needs a reason beyond recency.
    let target = if target.id != current.id && cost_at(target) > cost_at(current) {
        let required = match slo {
            Some(slo) if !meets_slo(current) => Some(Requirement::LatencyObjective(slo)),
            // A policy requires the site its placements name for the tier; thresholds
            // alone say which tier suits, not that it is worth paying more for.
            _ if i
                .policy
                .is_some_and(|p| p.placements.get(&target.tier) == Some(&target.id)) =>
            {
                Some(Requirement::Policy)
            }
            _ => None,
        };
        let costs = format!(
            "{} a month on {} against {} on {}",
            usd(cost_at(target)),
            target.name,
            usd(cost_at(current)),
            current.name
        );
        match required {
            Some(Requirement::LatencyObjective(slo)) => {
                say(
                    &mut reasons,
                    "latency_slo_requires",
                    format!(
                        "{costs}, but {} answers in {} ms, slower than the {slo} ms objective",
                        current.name, current.latency_ms
                    ),
                );
                target
            }
            Some(Requirement::Policy) => {
                say(
                    &mut reasons,
                    "policy_requires",
                    format!("{costs}, but the policy places {} data there", target.tier),
                );
                target
            }
            None => {
                say(
                    &mut reasons,
                    "cost_guard",
                    format!(
                        "{costs}, and neither a latency objective nor a policy requires the \
                         move: staying"
                    ),
                );
                current
            }
        }
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
            size_bytes,
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
        say(
            &mut reasons,
            "cost",
            format!(
                "monthly cost {} on {} → {} on {}; moving costs {} once",
                usd(monthly_now),
                current.name,
                usd(monthly_after),
                target.name,
                usd(one_time)
            ),
        );
    }
    if let Some(budget) = policy.monthly_cost_target {
        if monthly_after > budget {
            say(
                &mut reasons,
                "cost_target",
                format!(
                    "projected {} a month exceeds the {} target",
                    usd(monthly_after),
                    usd(budget)
                ),
            );
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
mod tests;
