//! Bandwidth pacing: every byte a job copies waits for its slot at the job's rate, so
//! over any stretch of the transfer no more than `rate × elapsed` bytes have gone out.
//! The rate can change while the job runs (`UpdateJob`); slots already handed out keep
//! the old rate, which bounds the lag to one chunk per stream in flight.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

#[derive(Debug)]
pub struct Bandwidth {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Bytes per second; `None` is unlimited.
    rate: Option<u64>,
    /// When the bytes handed out so far will have gone out at the rate.
    busy_until: Instant,
}

impl Bandwidth {
    pub fn new(rate: Option<u64>) -> Self {
        Bandwidth {
            state: Mutex::new(State {
                rate: rate.filter(|r| *r > 0),
                busy_until: Instant::now(),
            }),
        }
    }

    /// Sets a new rate for the bytes not yet handed out; `None` or 0 lifts the limit.
    pub fn set_rate(&self, rate: Option<u64>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.rate = rate.filter(|r| *r > 0);
    }

    pub fn rate(&self) -> Option<u64> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rate
    }

    /// Waits until `bytes` may go: the end of their slot after everything handed out
    /// before. Idle time earns no credit, so a pause is never followed by a burst.
    pub async fn take(&self, bytes: usize) {
        let until = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(rate) = state.rate else { return };
            let start = state.busy_until.max(Instant::now());
            state.busy_until = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
            state.busy_until
        };
        tokio::time::sleep_until(until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paused time moves in whole timer ticks; a millisecond or two over is the wheel.
    fn near(elapsed: Duration, expected: Duration) {
        assert!(
            elapsed >= expected && elapsed <= expected + Duration::from_millis(5),
            "{elapsed:?}, expected {expected:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_go_at_the_rate_and_the_rate_can_change() {
        let limit = Bandwidth::new(Some(1_000_000));
        let start = Instant::now();
        for _ in 0..10 {
            limit.take(100_000).await;
        }
        near(start.elapsed(), Duration::from_secs(1));
        limit.set_rate(Some(250_000));
        limit.take(500_000).await;
        near(start.elapsed(), Duration::from_secs(3));
        limit.set_rate(None);
        limit.take(usize::MAX).await;
        near(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_streams_share_the_rate() {
        let limit = std::sync::Arc::new(Bandwidth::new(Some(1_000_000)));
        let start = Instant::now();
        let streams: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        limit.take(100_000).await;
                    }
                })
            })
            .collect();
        for s in streams {
            s.await.unwrap();
        }
        near(start.elapsed(), Duration::from_secs(2));
    }
}
