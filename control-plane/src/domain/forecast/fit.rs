//! The forecasting library behind demand models, wrapped: which daily and weekly
//! seasonality a series shows (seasonal strength of its MSTL decomposition), and a fit
//! of MSTL with an ETS trend (or ETS alone when no season shows) that forecasts the
//! hours ahead. Everything numeric here is `augurs` and the `stlrs` decomposition it
//! builds on; this module only chooses the periods and guards the inputs.

use augurs::{
    ets::{trend::AutoETSTrendModel, AutoETS},
    mstl::{stlrs::MstlParams, MSTLModel},
    prelude::*,
};

/// Candidate seasons of hourly access: a day and a week.
pub const CANDIDATE_PERIODS: [usize; 2] = [24, 168];
/// Seasonal strength (Wang, Smith and Hyndman: 1 − Var(remainder) / Var(season +
/// remainder)) from which a season counts as present.
pub const MIN_SEASONAL_STRENGTH: f64 = 0.3;
/// The ETS trend: additive error and additive trend, no season of its own (MSTL takes
/// the seasons out first). A fixed specification fits in a third of the time of a full
/// automatic search, which the training of 10,000 datasets needs.
const TREND_SPEC: &str = "AAN";

/// The candidate periods whose seasonal strength in `y` reaches the threshold. A season
/// needs two full cycles in the series to be measured at all.
pub fn detect_periods(y: &[f64]) -> Result<Vec<usize>, String> {
    let periods: Vec<usize> = CANDIDATE_PERIODS
        .into_iter()
        .filter(|p| y.len() > 2 * p)
        .collect();
    if periods.is_empty() || variance(y) == 0.0 {
        return Ok(Vec::new());
    }
    let result = MstlParams::new()
        .fit(y, &periods)
        .map_err(|e| format!("decomposing: {e}"))?;
    let strengths = result.seasonal_strength();
    Ok(periods
        .into_iter()
        .zip(strengths)
        .filter(|(_, s)| s.is_finite() && *s >= MIN_SEASONAL_STRENGTH)
        .map(|(p, _)| p)
        .collect())
}

/// Fits `y` and forecasts `horizon` hours. With seasons: MSTL over them and ETS on the
/// trend; without: ETS alone. Forecasts below zero (no dataset is read a negative
/// number of times) are clamped to zero.
pub fn fit_predict(y: &[f64], periods: &[usize], horizon: usize) -> Result<Vec<f64>, String> {
    if y.iter().any(|v| !v.is_finite()) {
        return Err("the series holds a value that is not a finite number".into());
    }
    let trend = AutoETS::new(1, TREND_SPEC).map_err(|e| format!("ETS specification: {e}"))?;
    let point = if periods.is_empty() {
        trend
            .fit(y)
            .map_err(|e| format!("fitting ETS: {e}"))?
            .predict(horizon, None)
            .map_err(|e| format!("forecasting with ETS: {e}"))?
            .point
    } else {
        MSTLModel::new(periods.to_vec(), AutoETSTrendModel::from(trend))
            .fit(y)
            .map_err(|e| format!("fitting MSTL: {e}"))?
            .predict(horizon, None)
            .map_err(|e| format!("forecasting with MSTL: {e}"))?
            .point
    };
    if point.len() != horizon || point.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "the model forecast {} values, not {horizon} finite ones",
            point.len()
        ));
    }
    Ok(point.into_iter().map(|v| v.max(0.0)).collect())
}

fn variance(y: &[f64]) -> f64 {
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four weeks, busy on weekday working hours and quiet at weekends, with a little
    /// noise from a fixed generator.
    fn office_hours(days: usize) -> Vec<f64> {
        let mut state = 11_u64;
        (0..days * 24)
            .map(|h| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let noise = (state >> 33) as f64 / f64::from(u32::MAX) * 2.0;
                let (day, hour) = (h / 24 % 7, h % 24);
                let busy = day < 5 && (9..17).contains(&hour);
                (if busy { 40.0 } else { 0.0 }) + noise
            })
            .collect()
    }

    #[test]
    fn daily_and_weekly_seasons_are_detected_and_noise_has_none() {
        assert_eq!(detect_periods(&office_hours(28)).unwrap(), vec![24, 168]);
        let mut state = 5_u64;
        let noise: Vec<f64> = (0..28 * 24)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 40) as f64
            })
            .collect();
        assert_eq!(detect_periods(&noise).unwrap(), Vec::<usize>::new());
        assert_eq!(detect_periods(&[0.0; 672]).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn the_forecast_follows_the_week() {
        let y = office_hours(28);
        let f = fit_predict(&y, &[24, 168], 168).unwrap();
        // Day 28 is a Monday like day 0: busy from 09:00 to 17:00, quiet at night.
        assert!(f[12] > 30.0, "Monday noon forecast {}", f[12]);
        assert!(f[3] < 10.0, "Monday 03:00 forecast {}", f[3]);
        // Saturday noon.
        assert!(
            f[5 * 24 + 12] < 10.0,
            "Saturday forecast {}",
            f[5 * 24 + 12]
        );
    }

    #[test]
    fn a_bad_series_is_an_error_not_a_panic() {
        let mut y = office_hours(28);
        y[5] = f64::NAN;
        assert!(fit_predict(&y, &[24], 24).is_err());
    }
}
