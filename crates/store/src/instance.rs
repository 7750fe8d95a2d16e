//! Several gateways on one store (docs/decisions/0010-scale-out.md).
//!
//! Each gateway is an *instance* with a number of its own (`[store]
//! instance`). Its calls' ids are `instance << 40 | n`: an instance counts
//! `n` in its own range without asking the others, and after a restart it
//! restores only the rows of its range, so no call is ever claimed by two
//! gateways.
//!
//! Two running gateways configured with the same number would hand out the
//! same ids and restore each other's calls. The table `store_instances`
//! (migration 0010) prevents that: a gateway [claims](Store::claim_instance)
//! its number at start-up under its owner name (its XMPP component), keeps
//! the claim fresh ([`Store::heartbeat`]) and [releases](Store::release) it
//! when it stops. A claim held by another owner and seen within
//! [`STALE_AFTER`] refuses the start. The same owner may always take its
//! number back: a gateway restarted after a crash (kill -9) resumes its own
//! calls at once.

use crate::{Store, StoreError};
use sqlx::Row;
use std::time::Duration;
use stox_call::{Millis, iso8601};

/// The bits of an id below the instance number.
pub const ID_BITS: u32 = 40;

/// An instance number: 0 (a lone gateway, the default) to [`Instance::MAX`].
/// Its ids are `[instance << 40 + 1, (instance + 1) << 40)`: room for a
/// trillion calls each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Instance(u32);

impl Instance {
    /// The largest number: ids stay positive 64-bit integers.
    pub const MAX: u32 = (1 << (63 - ID_BITS)) - 1;

    pub fn new(n: u32) -> Option<Instance> {
        (n <= Self::MAX).then_some(Instance(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The instance a call id belongs to.
    pub fn of(id: i64) -> Instance {
        Instance(u32::try_from(id.max(0) >> ID_BITS).unwrap_or(Self::MAX))
    }

    /// The ids of this instance: `first..end` (`first` itself is never
    /// given: numbering starts after it).
    pub fn ids(self) -> (i64, i64) {
        let first = i64::from(self.0) << ID_BITS;
        // The last range ends at i64::MAX (never given) rather than 2^63.
        (first, first.saturating_add(1 << ID_BITS))
    }
}

impl std::fmt::Display for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How often a running gateway refreshes its claim.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// A claim not refreshed for this long is free for another owner.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// What [`Store::claim_instance`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The number is ours now.
    Taken,
    /// Another gateway holds it and was seen `seen_ago` ago.
    HeldBy { owner: String, seen_ago: Duration },
}

impl Store {
    /// Claims this store's instance number for `owner` at `now`: taken when
    /// it is free, already `owner`'s, or its holder has not been seen for
    /// [`STALE_AFTER`].
    pub async fn claim_instance(&self, owner: &str, now: Millis) -> Result<Claim, StoreError> {
        let stale_before = Millis(now.0.saturating_sub(STALE_AFTER.as_millis() as u64));
        let done = sqlx::query(
            "INSERT INTO store_instances (instance, owner, last_id, seen_at) \
             VALUES ($1, $2, 0, $3) ON CONFLICT(instance) DO UPDATE SET \
             owner = excluded.owner, seen_at = excluded.seen_at \
             WHERE store_instances.owner = excluded.owner OR store_instances.owner = '' \
             OR store_instances.seen_at < $4",
        )
        .bind(i64::from(self.instance.get()))
        .bind(owner)
        .bind(iso8601(now))
        .bind(iso8601(stale_before))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(Claim::Taken);
        }
        let row = sqlx::query("SELECT owner, seen_at FROM store_instances WHERE instance = $1")
            .bind(i64::from(self.instance.get()))
            .fetch_one(&self.pool)
            .await?;
        let holder: String = row.try_get("owner")?;
        let seen: String = row.try_get("seen_at")?;
        let seen_ago = crate::parse_iso8601(&seen)
            .map(|t| Duration::from_millis(now.0.saturating_sub(t.0)))
            .unwrap_or_default();
        Ok(Claim::HeldBy {
            owner: holder,
            seen_ago,
        })
    }

    /// Refreshes `owner`'s claim; `false` when it is no longer `owner`'s
    /// (another gateway took the number over after it went stale).
    pub async fn heartbeat(&self, owner: &str, now: Millis) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE store_instances SET seen_at = $1 WHERE instance = $2 AND owner = $3",
        )
        .bind(iso8601(now))
        .bind(i64::from(self.instance.get()))
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives the number up at a clean stop: another owner may take it at
    /// once.
    pub async fn release(&self, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE store_instances SET owner = '', seen_at = '' WHERE instance = $1 AND owner = $2",
        )
        .bind(i64::from(self.instance.get()))
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ranges_do_not_overlap_and_ids_name_their_instance() {
        assert_eq!(Instance::new(0).expect("0").ids(), (0, 1 << 40));
        let one = Instance::new(1).expect("1");
        assert_eq!(one.ids(), (1 << 40, 2 << 40));
        assert_eq!(Instance::of((1 << 40) + 7), one);
        assert_eq!(Instance::of(7), Instance::default());
        let max = Instance::new(Instance::MAX).expect("MAX");
        assert_eq!(max.ids(), (i64::MAX - ((1 << 40) - 1), i64::MAX));
        assert_eq!(Instance::of(i64::MAX), max);
        assert_eq!(Instance::new(Instance::MAX + 1), None);
    }
}
