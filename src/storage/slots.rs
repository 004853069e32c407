//! Who may upload now, and whether an upload is still moving.
//!
//! - [`UploadSlots`]: a node-wide number of uploads spooling at once, of which one user may
//!   hold only a few, so one user (or a slowloris) cannot take every slot.
//! - [`MinRate`]: a pure check of (state, bytes so far, now) that an upload's body keeps a
//!   minimum rate over each window; a body that trickles is aborted instead of holding a
//!   slot, a connection and a spool file for minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ids::UserId;

/// Uploads spooling at once on this node, and per user.
pub struct UploadSlots {
    total: Arc<Semaphore>,
    per_user: usize,
    held: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// One upload's slot; dropping it frees the slot.
pub struct UploadSlot {
    _permit: OwnedSemaphorePermit,
    user: UserId,
    held: Arc<Mutex<HashMap<UserId, usize>>>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().expect("slots lock");
        if let Some(n) = held.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.user);
            }
        }
    }
}

impl UploadSlots {
    pub fn new(total: usize, per_user: usize) -> Self {
        UploadSlots {
            total: Arc::new(Semaphore::new(total)),
            per_user,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `user`, or `None` if they hold their share or the node is full.
    pub fn take(&self, user: UserId) -> Option<UploadSlot> {
        let mut held = self.held.lock().expect("slots lock");
        if held.get(&user).is_some_and(|n| *n >= self.per_user) {
            return None;
        }
        // Only a user who gets a slot gets an entry: a refusal leaves nothing behind.
        let permit = self.total.clone().try_acquire_owned().ok()?;
        *held.entry(user).or_default() += 1;
        Some(UploadSlot {
            _permit: permit,
            user,
            held: self.held.clone(),
        })
    }

    /// Free slots on the node.
    pub fn available(&self) -> usize {
        self.total.available_permits()
    }
}

/// The minimum an upload body must carry per window.
#[derive(Clone, Copy, Debug)]
pub struct RatePolicy {
    pub bytes_per_second: u64,
    pub window: Duration,
}

/// Progress of one body against a [`RatePolicy`].
#[derive(Clone, Copy, Debug)]
pub struct MinRate {
    window_start: Instant,
    bytes_at_start: u64,
}

impl MinRate {
    pub fn new(now: Instant) -> Self {
        MinRate {
            window_start: now,
            bytes_at_start: 0,
        }
    }

    /// When the current window ends (check again then even if no bytes came).
    pub fn deadline(&self, policy: &RatePolicy) -> Instant {
        self.window_start + policy.window
    }

    /// With `total` bytes received by `now`: false if a window ended with too few bytes.
    pub fn check(&mut self, policy: &RatePolicy, total: u64, now: Instant) -> bool {
        if now < self.deadline(policy) {
            return true;
        }
        let need = policy.bytes_per_second * policy.window.as_secs().max(1);
        if total - self.bytes_at_start < need {
            return false;
        }
        self.window_start = now;
        self.bytes_at_start = total;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_only_their_share_and_freed_slots_return() {
        let slots = UploadSlots::new(3, 2);
        let a1 = slots.take(UserId(1)).unwrap();
        let _a2 = slots.take(UserId(1)).unwrap();
        assert!(slots.take(UserId(1)).is_none(), "user 1's share is 2");
        let b1 = slots.take(UserId(2)).unwrap();
        assert!(slots.take(UserId(3)).is_none(), "the node is full");
        assert!(
            !slots.held.lock().unwrap().contains_key(&UserId(3)),
            "a refused user leaves no entry"
        );
        drop(a1);
        let again = slots.take(UserId(1));
        assert!(again.is_some());
        drop(b1);
        assert_eq!(slots.available(), 1);
    }

    #[test]
    fn a_body_must_keep_the_minimum_rate_in_every_window() {
        let p = RatePolicy {
            bytes_per_second: 100,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut r = MinRate::new(t0);
        assert!(
            r.check(&p, 1, t0 + Duration::from_secs(5)),
            "inside the first window"
        );
        assert_eq!(r.deadline(&p), t0 + Duration::from_secs(10));
        // 1000 bytes in the first 10 s: enough; the next window starts.
        assert!(r.check(&p, 1000, t0 + Duration::from_secs(10)));
        // Only 999 more in the next window: too slow.
        assert!(!r.check(&p, 1999, t0 + Duration::from_secs(20)));
        // A stall (no bytes at all) is caught at the window's end.
        let mut s = MinRate::new(t0);
        assert!(!s.check(&p, 0, t0 + Duration::from_secs(10)));
    }
}
