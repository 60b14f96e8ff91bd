//! The memory all uploads of a backend may hold for writes that arrived ahead of their turn.
//! Each upload may hold up to `reorder_window` ahead of its next expected byte; the bytes of all
//! uploads together that stay in memory are bounded by this budget (`reorder_budget`). An early
//! write that finds the budget spent goes to the upload's temporary file instead (the same one
//! random writes use) and is read back when its turn comes, so a client never waits or fails on
//! it and memory stays bounded however many uploads run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct ReorderBudget {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl ReorderBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, used: AtomicUsize::new(0), peak: AtomicUsize::new(0) })
    }

    /// Takes `bytes` from the budget if they fit; they return when the lease is dropped.
    pub fn try_take(self: &Arc<Self>, bytes: usize) -> Option<Lease> {
        let taken = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(bytes).filter(|total| *total <= self.limit)
        });
        let before = taken.ok()?;
        self.peak.fetch_max(before + bytes, Ordering::AcqRel);
        Some(Lease { budget: Arc::clone(self), bytes })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The most ever held at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }
}

/// Bytes taken from a `ReorderBudget`.
#[derive(Debug)]
pub struct Lease {
    budget: Arc<ReorderBudget>,
    bytes: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_fit_the_limit_and_return_on_drop() {
        let budget = ReorderBudget::new(10);
        let a = budget.try_take(6).unwrap();
        assert!(budget.try_take(5).is_none());
        let b = budget.try_take(4).unwrap();
        assert_eq!(budget.in_use(), 10);
        drop(a);
        drop(b);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), 10);
        assert!(budget.try_take(usize::MAX).is_none());
    }
}
