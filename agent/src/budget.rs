//! The agent's memory budget: every buffer a transfer holds is covered by a
//! reservation, so the bytes held by transfers stay under the budget whatever the
//! object sizes and the concurrency. An object sent in one request reserves its size;
//! a multipart upload reserves each part while it holds it, so large objects share
//! the budget part by part rather than each waiting for its peak.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::transfer::CopyOptions;

/// Reservations are counted in KiB, so a budget of terabytes still fits the semaphore.
const UNIT: u64 = 1024;

pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_units: u32,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("total_bytes", &self.total_bytes())
            .field(
                "free_bytes",
                &(self.permits.available_permits() as u64 * UNIT),
            )
            .finish()
    }
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> Self {
        let total_units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        MemoryBudget {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }

    pub fn total_bytes(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }

    /// What no reservation holds at the moment.
    pub fn free_bytes(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }

    /// Waits until `bytes` of the budget are free and holds them until the permit drops.
    /// A reservation larger than the whole budget waits for all of it.
    pub async fn reserve(&self, bytes: u64) -> SemaphorePermit<'_> {
        self.permits
            .acquire_many(self.units(bytes))
            .await
            .unwrap_or_else(|_| unreachable!("the memory budget's semaphore is never closed"))
    }

    /// [`reserve`](Self::reserve) for a holder that outlives the borrow, such as a part
    /// passed from the read that filled it to the upload that sends it.
    pub async fn reserve_owned(&self, bytes: u64) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_many_owned(self.units(bytes))
            .await
            .unwrap_or_else(|_| unreachable!("the memory budget's semaphore is never closed"))
    }

    fn units(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(self.total_units)
    }

    /// Copy options for `chunk_size` parts whose buffers fit the budget: as many chunks
    /// in flight per object as it allows, at most `preferred`.
    pub fn copy_options(&self, chunk_size: usize, preferred: usize) -> CopyOptions {
        let chunk_size = chunk_size.max(1);
        let chunks = (self.total_bytes() / chunk_size as u64).saturating_sub(1) / 2;
        CopyOptions {
            chunk_size,
            concurrency: (chunks as usize).clamp(1, preferred.max(1)),
            ..CopyOptions::default()
        }
    }
}

/// The most a copy of a `size`-byte object holds at once: the whole object when it goes
/// in one request; otherwise the chunks being read ahead, the parts being uploaded and
/// the one being filled.
pub fn copy_footprint(size: u64, options: &CopyOptions) -> u64 {
    let chunk = options.chunk_size as u64;
    if size <= chunk {
        size
    } else {
        (2 * options.concurrency as u64 + 1) * chunk
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    #[test]
    fn per_object_concurrency_shrinks_to_fit_a_small_budget() {
        let mib = 1 << 20;
        let chunk = 8 << 20;
        assert_eq!(
            MemoryBudget::new(160 * mib)
                .copy_options(chunk, 4)
                .concurrency,
            4
        );
        assert_eq!(
            MemoryBudget::new(40 * mib)
                .copy_options(chunk, 4)
                .concurrency,
            2
        );
        assert_eq!(
            MemoryBudget::new(24 * mib)
                .copy_options(chunk, 4)
                .concurrency,
            1
        );
        let options = MemoryBudget::new(24 * mib).copy_options(chunk, 4);
        assert_eq!(copy_footprint(100 * mib, &options), 24 * mib);
        assert_eq!(copy_footprint(65_536, &options), 65_536);
    }

    #[tokio::test]
    async fn reservations_wait_for_room() {
        let budget = Arc::new(MemoryBudget::new(100 * UNIT));
        let first = budget.reserve(60 * UNIT).await;
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let _second = budget.reserve(60 * UNIT).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "60 + 60 KiB exceed a 100 KiB budget"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the second reservation goes once the first is released")
            .unwrap();
        // Larger than the budget: takes all of it rather than waiting forever.
        let _all = budget.reserve(1_000 * UNIT).await;
    }
}
