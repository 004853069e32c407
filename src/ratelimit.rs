//! Token buckets: the rate-limiting core, a pure function of (bucket, now).
//!
//! No clock is read here; callers pass `now`. That keeps every policy testable to the
//! millisecond and lets the same core serve login throttling, socket floods and, later,
//! chat sends (each action with its own [`Policy`]).

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn time_going_backwards_does_not_mint_tokens() {
        let p = Policy::new(1, 1.0);
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = p.bucket(t0);
        b.take(&p, t0).unwrap();
        assert!(b.take(&p, t0 - Duration::from_secs(5)).is_err());
    }
}
