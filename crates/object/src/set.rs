//! One erasure set: N = K + M drives, its quorum rules and shard placement.

use std::collections::BTreeSet;
use std::sync::Arc;

use bulwark_erasure::Geometry;
use bulwark_storage::Drive;
use futures::future::join_all;

use crate::{BLOCK_SIZE_BYTES, Error, Result};

/// Geometry and write rules of a set (DESIGN.md D1).
#[derive(Debug, Clone)]
pub struct SetConfig {
    pub data: usize,
    pub parity: usize,
    /// Shards that must be durable before a write is acknowledged; at least `data + 1`.
    pub write_quorum: usize,
    /// Refuse writes that would not survive the loss of any one facility at once.
    pub strict_facility: bool,
}

pub struct ErasureSet {
    pub(crate) drives: Vec<Arc<dyn Drive>>,
    pub(crate) config: SetConfig,
    pub(crate) geometry: Geometry,
}

impl std::fmt::Debug for ErasureSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureSet").field("drives", &self.drives.len()).field("config", &self.config).finish()
    }
}

impl ErasureSet {
    /// Checks the rules that make the D1 promise possible: W ≥ K+1, and no
    /// facility holding more than M drives of the set (so losing one facility
    /// never loses more shards than parity can rebuild).
    pub fn new(drives: Vec<Arc<dyn Drive>>, config: SetConfig) -> Result<ErasureSet> {
        let geometry = Geometry::new(config.data, config.parity, BLOCK_SIZE_BYTES)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if drives.len() != geometry.total() {
            return Err(Error::InvalidArgument(format!(
                "a {}+{} set needs {} drives, got {}",
                config.data,
                config.parity,
                geometry.total(),
                drives.len()
            )));
        }
        if config.write_quorum <= config.data || config.write_quorum > geometry.total() {
            return Err(Error::InvalidArgument(format!(
                "write quorum {} must be between {} and {}",
                config.write_quorum,
                config.data + 1,
                geometry.total()
            )));
        }
        let facilities: BTreeSet<&str> = drives.iter().map(|d| d.info().facility.as_str()).collect();
        for facility in &facilities {
            let count = drives.iter().filter(|d| d.info().facility == *facility).count();
            if count > config.parity {
                return Err(Error::InvalidArgument(format!(
                    "facility {facility:?} holds {count} drives of a {}+{} set; at most {} allowed, \
                     or losing it would lose data",
                    config.data, config.parity, config.parity
                )));
            }
        }
        Ok(ErasureSet { drives, config, geometry })
    }

    pub fn drives(&self) -> &[Arc<dyn Drive>] {
        &self.drives
    }

    pub fn total(&self) -> usize {
        self.drives.len()
    }

    pub fn data(&self) -> usize {
        self.config.data
    }

    pub(crate) fn online_positions(&self) -> Vec<usize> {
        (0..self.drives.len()).filter(|&p| self.drives[p].is_online()).collect()
    }

    /// Re-checks drives believed online (cheap: one stat each) so that a drive
    /// wiped under a running server is excluded before a write starts.
    pub(crate) async fn usable_positions(&self) -> Vec<usize> {
        let checks = self.online_positions().into_iter().map(|p| async move {
            let ok = self.drives[p].check_health().await;
            (p, ok)
        });
        join_all(checks).await.into_iter().filter(|(_, ok)| *ok).map(|(p, _)| p).collect()
    }

    fn facilities_of(&self, positions: &[usize]) -> BTreeSet<&str> {
        positions.iter().map(|&p| self.drives[p].info().facility.as_str()).collect()
    }

    /// Whether shards durable on `positions` satisfy the write rule.
    pub(crate) fn write_satisfied(&self, positions: &[usize]) -> bool {
        if positions.len() < self.config.write_quorum || self.facilities_of(positions).len() < 2 {
            return false;
        }
        !self.config.strict_facility || self.survives_any_facility_loss(positions)
    }

    fn survives_any_facility_loss(&self, positions: &[usize]) -> bool {
        let all: Vec<usize> = (0..self.drives.len()).collect();
        self.facilities_of(&all).iter().all(|facility| {
            positions.iter().filter(|&&p| self.drives[p].info().facility != *facility).count() >= self.config.data
        })
    }

    /// Fails early when the usable drives could never satisfy the write rule.
    pub(crate) fn require_writable(&self, positions: &[usize]) -> Result<()> {
        if self.write_satisfied(positions) {
            Ok(())
        } else {
            Err(Error::InsufficientDrives { needed: self.config.write_quorum, available: positions.len() })
        }
    }

    /// Shard index for each drive position: a rotation chosen by a stable
    /// hash of the key, so that data shards of different objects land on
    /// different drives. Any assignment keeps every facility at ≤ M shards,
    /// because `new` refused sets where a facility holds more than M drives.
    pub(crate) fn distribution(&self, bucket: &str, key: &str) -> Vec<usize> {
        let n = self.drives.len();
        let hash = blake3::hash(format!("{bucket}/{key}").as_bytes());
        let start = (u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap_or([0; 8])) % n as u64) as usize;
        (0..n).map(|position| (position + n - start) % n).collect()
    }
}
