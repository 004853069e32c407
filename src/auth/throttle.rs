//! Login throttling per account and per client IP, on top of the token-bucket core; and
//! the gate that keeps made-up session cookies away from the database ([`TokenGate`]).
//!
//! Both buckets must have a token for an attempt to proceed; a refusal gives a
//! `Retry-After`. The per-account limit is for addresses that are strangers to the account:
//! an address the account logged in from recently skips it (its per-IP limit still holds),
//! so someone guessing a public login id slows themselves down, not the owner. State is a small map behind a mutex rather than an actor: the critical
//! section is a few arithmetic operations on the login path, and no await happens inside it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ratelimit::{Bucket, KeyedBuckets, Policy, RefusedUntil};

/// Per account: 5 quick tries, then one every 20 s — slows a guesser to ~4k tries a day.
pub const PER_ACCOUNT: Policy = Policy::new(5, 1.0 / 20.0);
/// Per IP: generous enough for a classroom behind one NAT, tight enough to stop spraying.
pub const PER_IP: Policy = Policy::new(60, 1.0);
/// Entries kept before full buckets are swept: bounds memory under a spray of fake ids.
const MAX_TRACKED: usize = 100_000;

/// Sign-ups from one client address refill one every 20 s after the burst (the burst is
/// the `--signup-burst` setting): a script gets a few thousand accounts a day, not millions.
pub const SIGNUP_REFILL_PER_SECOND: f64 = 1.0 / 20.0;
/// Client addresses tracked for sign-ups (the sweep bound, as for logins).
pub const SIGNUP_TRACKED: usize = 100_000;
/// State-changing HTTP requests one user may make after the burst (`--write-burst`,
/// default 120, covers any run of clicks): 10 a second sustained is far above a person and
/// holds a flooding script to a bounded growth of rows. (Socket messages have their own.)
pub const USER_WRITES_PER_SECOND: f64 = 10.0;
/// Users tracked for writes: every active user fits; idle ones are swept.
pub const USER_WRITES_TRACKED: usize = 100_000;

/// Requests with an unknown session token per client address: a browser with a stale
/// cookie fails a few before it logs in again; a script spraying random cookies reaches the
/// database once a second instead of at line rate.
pub const BAD_TOKENS_PER_IP: Policy = Policy::new(20, 1.0);
/// Client addresses tracked for unknown tokens (the sweep bound, as for logins).
pub const BAD_TOKENS_TRACKED: usize = 100_000;
/// How long a session that authenticated on this node still passes while its address is
/// refused: users behind the same address as a sprayer (a classroom NAT) keep working.
pub const GOOD_TOKEN_REMEMBERED: Duration = Duration::from_secs(600);
/// Sessions remembered so: every active session of a node fits.
pub const GOOD_TOKENS_TRACKED: usize = 100_000;

/// The gate in front of the session lookup. An address that sent too many unknown tokens
/// is refused before the database is asked, except for a session this node saw
/// authenticate lately (or opened itself).
pub struct TokenGate {
    bad: KeyedBuckets<IpAddr>,
    refused: RefusedUntil<IpAddr>,
    good: Mutex<HashMap<Vec<u8>, Instant>>,
}

impl Default for TokenGate {
    fn default() -> Self {
        TokenGate {
            bad: KeyedBuckets::new(BAD_TOKENS_PER_IP, BAD_TOKENS_TRACKED),
            refused: RefusedUntil::new(BAD_TOKENS_TRACKED),
            good: Mutex::new(HashMap::new()),
        }
    }
}

impl TokenGate {
    /// Whether a request from `ip` with the token hashed as `hash` may be looked up now.
    pub fn check(&self, ip: Option<IpAddr>, hash: &[u8], now: Instant) -> Result<(), Duration> {
        let Some(wait) = ip.and_then(|ip| self.refused.remaining(&ip, now)) else {
            return Ok(());
        };
        let good = self.good.lock().expect("token gate lock");
        match good.get(hash) {
            Some(until) if *until > now => Ok(()),
            _ => Err(wait),
        }
    }

    /// The token was unknown (or its session over): spends one of the address's failures.
    pub fn failed(&self, ip: Option<IpAddr>, now: Instant) {
        if let Some(ip) = ip
            && let Err(wait) = self.bad.take(ip, now)
        {
            self.refused.note(ip, now, wait);
        }
    }

    /// The token names a live session: it passes its address's refusals for a while.
    pub fn passed(&self, hash: &[u8], now: Instant) {
        let mut good = self.good.lock().expect("token gate lock");
        // Renewed at half-life, so a busy session costs a lookup, not an insert, per request.
        if good
            .get(hash)
            .is_some_and(|until| *until > now + GOOD_TOKEN_REMEMBERED / 2)
        {
            return;
        }
        if !good.contains_key(hash) && good.len() >= GOOD_TOKENS_TRACKED {
            good.retain(|_, until| *until > now);
            if good.len() >= GOOD_TOKENS_TRACKED {
                return;
            }
        }
        good.insert(hash.to_vec(), now + GOOD_TOKEN_REMEMBERED);
    }
}

#[derive(Default)]
pub struct LoginThrottle {
    inner: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    accounts: HashMap<String, Bucket>,
    ips: HashMap<IpAddr, Bucket>,
}

impl LoginThrottle {
    /// Takes a token from both buckets (only the IP's for a `known` address) or returns how
    /// long to wait.
    pub fn check(
        &self,
        login_id: &str,
        ip: Option<IpAddr>,
        known: bool,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut m = self.inner.lock().expect("throttle lock");
        if m.accounts.len() + m.ips.len() > MAX_TRACKED {
            m.accounts.retain(|_, b| !b.is_full(&PER_ACCOUNT, now));
            m.ips.retain(|_, b| !b.is_full(&PER_IP, now));
        }
        // Check both before taking from either, so a refused IP does not drain the account.
        let mut acct = *m
            .accounts
            .entry(login_id.to_string())
            .or_insert_with(|| PER_ACCOUNT.bucket(now));
        let mut ipb = ip.map(|ip| *m.ips.entry(ip).or_insert_with(|| PER_IP.bucket(now)));
        let a = if known {
            Ok(())
        } else {
            acct.take(&PER_ACCOUNT, now)
        };
        let i = ipb.as_mut().map_or(Ok(()), |b| b.take(&PER_IP, now));
        match (a, i) {
            (Ok(()), Ok(())) => {
                m.accounts.insert(login_id.to_string(), acct);
                if let (Some(ip), Some(b)) = (ip, ipb) {
                    m.ips.insert(ip, b);
                }
                Ok(())
            }
            (a, i) => Err(a.err().unwrap_or_default().max(i.err().unwrap_or_default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_is_throttled_after_its_burst() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..5 {
            t.check("alice", Some(ip), false, now).unwrap();
        }
        let wait = t.check("alice", Some(ip), false, now).unwrap_err();
        assert!(wait > Duration::from_secs(10));
        // Another account from the same IP is still fine.
        t.check("bob", Some(ip), false, now).unwrap();
        // And alice can try again after the refill.
        t.check("alice", Some(ip), false, now + Duration::from_secs(21))
            .unwrap();
        // From an address alice logged in from before, her account's limit does not apply.
        for _ in 0..10 {
            t.check("alice", Some(ip), true, now + Duration::from_secs(21))
                .unwrap();
        }
    }

    #[test]
    fn ip_is_throttled_across_accounts() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for i in 0..60 {
            t.check(&format!("user{i}"), Some(ip), false, now).unwrap();
        }
        assert!(t.check("fresh", Some(ip), false, now).is_err());
        assert!(
            t.check("fresh", Some(ip), true, now).is_err(),
            "the IP limit holds for known addresses"
        );
        // A refused IP attempt did not use up "fresh"'s account bucket.
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        for _ in 0..5 {
            t.check("fresh", Some(other), false, now).unwrap();
        }
    }

    #[test]
    fn an_address_spraying_unknown_tokens_is_refused_but_known_sessions_pass() {
        let gate = TokenGate::default();
        let t0 = Instant::now();
        let ip: Option<IpAddr> = Some([10, 0, 0, 7].into());
        let other: Option<IpAddr> = Some([10, 0, 0, 8].into());
        let known = [1u8; 32];
        gate.passed(&known, t0);
        for _ in 0..BAD_TOKENS_PER_IP.burst as u32 {
            assert!(gate.check(ip, &[9; 32], t0).is_ok());
            gate.failed(ip, t0);
        }
        // The burst is spent: the next failure refuses the address.
        gate.failed(ip, t0);
        let wait = gate.check(ip, &[8; 32], t0).expect_err("refused");
        assert!(wait > Duration::ZERO);
        // A session this node saw passes; other addresses are untouched; an unknown
        // address (no client IP) is never refused.
        assert!(gate.check(ip, &known, t0).is_ok());
        assert!(gate.check(other, &[8; 32], t0).is_ok());
        assert!(gate.check(None, &[8; 32], t0).is_ok());
        // Once a token has refilled the address may try again.
        assert!(gate.check(ip, &[8; 32], t0 + wait).is_ok());
        // A remembered session is forgotten after its time.
        gate.failed(ip, t0 + wait);
        gate.failed(ip, t0 + wait);
        let late = t0 + GOOD_TOKEN_REMEMBERED + Duration::from_millis(1);
        gate.failed(ip, late);
        for _ in 0..BAD_TOKENS_PER_IP.burst as u32 {
            gate.failed(ip, late);
        }
        assert!(gate.check(ip, &known, late).is_err());
    }
}
