//! Token buckets: the rate-limiting core, a pure function of (bucket, now).
//!
//! No clock is read here; callers pass `now`. That keeps every policy testable to the
//! millisecond and lets the same core serve login throttling, socket floods and, later,
//! chat sends (each action with its own [`Policy`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate: up to `burst` at once, refilled at `per_second` tokens a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub burst: f64,
    pub per_second: f64,
}

impl Policy {
    pub const fn new(burst: u32, per_second: f64) -> Self {
        Policy {
            burst: burst as f64,
            per_second,
        }
    }

    /// A fresh, full bucket.
    pub fn bucket(&self, now: Instant) -> Bucket {
        Bucket {
            tokens: self.burst,
            at: now,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, policy: &Policy, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * policy.per_second).min(policy.burst);
        self.at = now.max(self.at);
    }

    /// Takes one token, or says how long until one is available. Nothing changes on refusal
    /// beyond the refill, so refused calls do not push the wait further out.
    pub fn take(&mut self, policy: &Policy, now: Instant) -> Result<(), Duration> {
        self.refill(policy, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(missing / policy.per_second))
        }
    }

    /// True when the bucket is full again, so its owner may forget it.
    pub fn is_full(&self, policy: &Policy, now: Instant) -> bool {
        let mut b = *self;
        b.refill(policy, now);
        b.tokens >= policy.burst
    }
}

/// One bucket per key (a user, a client address) under one policy. A small map behind a
/// mutex: the critical section is a few arithmetic operations and never awaits. When it
/// holds `max_keys` entries, full buckets (keys idle long enough to have refilled) are
/// forgotten; if every bucket is still draining, a new key is refused until some refill,
/// so memory stays bounded under a spray of fresh keys.
pub struct KeyedBuckets<K> {
    policy: Policy,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq> KeyedBuckets<K> {
    pub fn new(policy: Policy, max_keys: usize) -> Self {
        KeyedBuckets {
            policy,
            max_keys,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Takes a token from `key`'s bucket, or says how long to wait.
    pub fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut m = self.buckets.lock().expect("rate limit lock");
        if !m.contains_key(&key) && m.len() >= self.max_keys {
            m.retain(|_, b| !b.is_full(&self.policy, now));
            if m.len() >= self.max_keys {
                // Every tracked key is busy: wait as long as one token takes to refill.
                return Err(Duration::from_secs_f64(1.0 / self.policy.per_second));
            }
        }
        let policy = self.policy;
        m.entry(key)
            .or_insert_with(|| policy.bucket(now))
            .take(&policy, now)
    }
}

/// Keys known to be refused until an instant: lets a caller answer a repeated request from
/// a key whose bucket is empty without first doing the work that names the bucket (for HTTP
/// writes, the session lookup in the database). A refusal noted here is one the bucket would
/// give anyway (refill is deterministic), so it changes no outcome, only its cost.
pub struct RefusedUntil<K> {
    max_keys: usize,
    until: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq> RefusedUntil<K> {
    pub fn new(max_keys: usize) -> Self {
        RefusedUntil {
            max_keys,
            until: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` is still refused, if it is.
    pub fn remaining(&self, key: &K, now: Instant) -> Option<Duration> {
        let m = self.until.lock().expect("refusals lock");
        m.get(key)
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Notes that `key` is refused for `wait` from `now`. When the map is full, lapsed
    /// entries go; if none has lapsed the note is dropped (the slow path still refuses).
    pub fn note(&self, key: K, now: Instant, wait: Duration) {
        let mut m = self.until.lock().expect("refusals lock");
        if !m.contains_key(&key) && m.len() >= self.max_keys {
            m.retain(|_, t| *t > now);
            if m.len() >= self.max_keys {
                return;
            }
        }
        m.insert(key, now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_buckets_are_independent_and_bounded() {
        let p = Policy::new(2, 1.0);
        let t0 = Instant::now();
        let k = KeyedBuckets::new(p, 3);
        k.take(1, t0).unwrap();
        k.take(1, t0).unwrap();
        assert!(k.take(1, t0).is_err(), "key 1 spent its burst");
        k.take(2, t0).unwrap();
        k.take(3, t0).unwrap();
        // Three keys tracked, all draining: a fourth waits rather than growing the map.
        assert!(k.take(4, t0).is_err());
        // Once they refill they are forgotten and the new key gets a bucket.
        let later = t0 + Duration::from_secs(3);
        k.take(4, later).unwrap();
        assert_eq!(k.buckets.lock().unwrap().len(), 1);
    }

    #[test]
    fn burst_then_refusal_then_refill() {
        let p = Policy::new(3, 1.0);
        let t0 = Instant::now();
        let mut b = p.bucket(t0);
        for _ in 0..3 {
            b.take(&p, t0).unwrap();
        }
        let wait = b.take(&p, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        // Refusals do not consume: after the wait, exactly one token is there.
        b.take(&p, t0 + Duration::from_millis(1000)).unwrap();
        assert!(b.take(&p, t0 + Duration::from_millis(1000)).is_err());
        assert!(!b.is_full(&p, t0 + Duration::from_secs(2)));
        assert!(b.is_full(&p, t0 + Duration::from_secs(4)));
    }

    #[test]
    fn sustained_rate_is_respected() {
        let p = Policy::new(10, 5.0);
        let t0 = Instant::now();
        let mut b = p.bucket(t0);
        let mut ok = 0;
        // One attempt every 10 ms for 2 s: 10 from the burst plus 5/s × 2 s.
        for i in 0..200 {
            if b.take(&p, t0 + Duration::from_millis(i * 10)).is_ok() {
                ok += 1;
            }
        }
        assert!((19..=21).contains(&ok), "{ok}");
    }

    #[test]
    fn refusals_lapse_and_stay_bounded() {
        let t0 = Instant::now();
        let r = RefusedUntil::new(2);
        assert_eq!(r.remaining(&1, t0), None);
        r.note(1, t0, Duration::from_millis(100));
        assert_eq!(r.remaining(&1, t0), Some(Duration::from_millis(100)));
        assert_eq!(
            r.remaining(&1, t0 + Duration::from_millis(60)),
            Some(Duration::from_millis(40))
        );
        assert_eq!(r.remaining(&1, t0 + Duration::from_millis(100)), None);
        // Full of live refusals: a third key is not tracked (the caller's slow path refuses).
        r.note(2, t0, Duration::from_secs(1));
        r.note(3, t0, Duration::from_secs(1));
        assert_eq!(r.remaining(&3, t0), None);
        // Once key 1 has lapsed it makes room.
        let later = t0 + Duration::from_millis(200);
        r.note(3, later, Duration::from_secs(1));
        assert!(r.remaining(&3, later).is_some());
        assert_eq!(r.until.lock().unwrap().len(), 2);
    }

    #[test]
    fn time_going_backwards_does_not_mint_tokens() {
        let p = Policy::new(1, 1.0);
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = p.bucket(t0);
        b.take(&p, t0).unwrap();
        assert!(b.take(&p, t0 - Duration::from_secs(5)).is_err());
    }
}
