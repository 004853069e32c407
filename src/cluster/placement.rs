//! The cluster placement: one Redis lease per actor key.
//!
//! A lease is the key `{prefix}:lease:{kind}:{id}` holding `{node}:{token}` with a TTL of
//! [`LEASE_TTL`]. Its owner renews every lease it holds once per [`RENEW_EVERY`] in one
//! script call; a lease it could not renew in time is treated as lost *here* a safety margin
//! before it can lapse in Redis ([`SAFETY_MARGIN`]), so two nodes never act as owner at once
//! as long as clocks run at the same rate. A node paused past its lease (SIGSTOP) finds every
//! lease expired on its monotonic clock the moment it runs again and stops those actors.
//!
//! Fencing tokens are Redis's clock in microseconds (at least one more than the previous
//! token of the same key): they grow with every claim, also across a Redis restart that lost
//! every key, as long as Redis's clock does not step back. The store keeps the highest token
//! per key and refuses writes under an older one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use crate::registry::{ActorKey, Lease, Placement, Registry, RegistryError, StartError};

/// A lease lives this long in Redis without renewal: short, because it bounds how long a
/// dead node's keys stay unreachable (the failover target is under 5 s).
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// Renewal period: three chances to renew before a lease lapses.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Local deadlines are checked this often between renewal rounds, so an actor whose lease
/// could not be renewed (Redis unreachable) is stopped within this of its deadline, well
/// before the lease can lapse in Redis.
const EXPIRY_CHECK_EVERY: Duration = Duration::from_millis(200);
/// A lease counts as lost here this long before it can lapse in Redis: covers the renewal
/// script's own round trip and clock-rate drift between machines.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(700);
/// How long a looked-up owner of a key is believed without asking Redis again: a moved key
/// is found again at once anyway (a forward to a non-owner is refused and retried).
const OWNER_CACHE_TTL: Duration = Duration::from_secs(1);
/// Owners cached at most: bounds memory under a spray of keys.
const OWNER_CACHE_MAX: usize = 100_000;
/// Leases renewed per script call: keeps one call's time in Redis short.
const RENEW_CHUNK: usize = 500;

/// `KEYS[1]` the lease; `ARGV[1]` this node, `ARGV[2]` the TTL in ms. Returns `{1, token}`
/// when the claim is ours, `{0, owner}` when another node holds the key.
const CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
local last = 0
if cur then
  local owner, tok = string.match(cur, '^([^:]+):(%d+)$')
  if owner ~= ARGV[1] then return {0, owner} end
  last = tonumber(tok)
end
local t = redis.call('TIME')
local tok = tonumber(t[1]) * 1000000 + tonumber(t[2])
if tok <= last then tok = last + 1 end
local s = string.format('%.0f', tok)
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. s, 'PX', ARGV[2])
return {1, s}
"#;

/// `KEYS` leases; `ARGV[1]` the TTL in ms, `ARGV[1+i]` the value expected in `KEYS[i]`.
/// Renews each lease still ours; takes back one that vanished (Redis restarted empty, or it
/// lapsed and nobody claimed it); reports 0 for one another node holds now.
const RENEW: &str = r#"
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[i + 1] then
    redis.call('PEXPIRE', k, ARGV[1])
    out[i] = 1
  elseif not v then
    redis.call('SET', k, ARGV[i + 1], 'PX', ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"#;

/// Deletes the lease only if it is still exactly this claim.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

struct Held {
    token: u64,
    /// Past this instant this node must not act under the lease.
    until: Instant,
}

pub struct RedisPlacement {
    node: u64,
    node_hex: String,
    prefix: String,
    redis: ConnectionManager,
    held: Mutex<HashMap<ActorKey, Held>>,
    owners: Mutex<HashMap<ActorKey, (u64, Instant)>>,
    claim: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

fn unavailable(key: ActorKey) -> RegistryError {
    RegistryError::Start {
        key,
        reason: StartError::Unavailable,
    }
}

impl RedisPlacement {
    pub fn new(node: u64, prefix: &str, redis: ConnectionManager) -> Self {
        RedisPlacement {
            node,
            node_hex: format!("{node:x}"),
            prefix: prefix.to_string(),
            redis,
            held: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
            claim: redis::Script::new(CLAIM),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
        }
    }

    fn lease_key(&self, key: &ActorKey) -> String {
        format!("{}:lease:{}:{}", self.prefix, key.kind(), key.id)
    }

    fn value(&self, token: u64) -> String {
        format!("{}:{token}", self.node_hex)
    }

    fn cached_owner(&self, key: &ActorKey) -> Option<u64> {
        let owners = self.owners.lock().expect("owners lock");
        owners
            .get(key)
            .filter(|(_, at)| at.elapsed() < OWNER_CACHE_TTL)
            .map(|(n, _)| *n)
    }

    fn cache_owner(&self, key: ActorKey, node: u64) {
        let mut owners = self.owners.lock().expect("owners lock");
        if owners.len() >= OWNER_CACHE_MAX {
            owners.retain(|_, (_, at)| at.elapsed() < OWNER_CACHE_TTL);
            if owners.len() >= OWNER_CACHE_MAX {
                owners.clear();
            }
        }
        owners.insert(key, (node, Instant::now()));
    }

    /// Leases this node holds now (for tests and the drain).
    pub fn held_count(&self) -> usize {
        self.held.lock().expect("held lock").len()
    }

    /// Forgets (and reports) every lease past its local deadline: lost here, whatever Redis
    /// says later.
    fn expire_local(&self, now: Instant) -> Vec<Lease> {
        let mut lost = Vec::new();
        self.held.lock().expect("held lock").retain(|key, h| {
            if h.until <= now {
                lost.push(Lease {
                    key: *key,
                    token: h.token,
                });
                false
            } else {
                true
            }
        });
        lost
    }

    /// One renewal round: renews every lease held here; reports the ones lost (another node
    /// holds them, or they could not be renewed before their local deadline).
    pub async fn renew_once(&self) -> Vec<Lease> {
        let started = Instant::now();
        let mut lost = self.expire_local(started);
        let snapshot: Vec<(ActorKey, u64)> = {
            let held = self.held.lock().expect("held lock");
            held.iter().map(|(k, h)| (*k, h.token)).collect()
        };
        let until = started + LEASE_TTL - SAFETY_MARGIN;
        for chunk in snapshot.chunks(RENEW_CHUNK) {
            let mut inv = self.renew.prepare_invoke();
            inv.arg(LEASE_TTL.as_millis() as u64);
            for (key, token) in chunk {
                inv.key(self.lease_key(key));
                inv.arg(self.value(*token));
            }
            let mut conn = self.redis.clone();
            let result: Result<Vec<i64>, _> = inv.invoke_async(&mut conn).await;
            let Ok(flags) = result else {
                tracing::warn!("lease renewal failed; Redis unreachable");
                continue;
            };
            let mut held = self.held.lock().expect("held lock");
            for ((key, token), ok) in chunk.iter().zip(flags) {
                let Some(h) = held.get_mut(key).filter(|h| h.token == *token) else {
                    continue; // released or reclaimed meanwhile
                };
                if ok == 1 {
                    h.until = until;
                } else {
                    held.remove(key);
                    lost.push(Lease {
                        key: *key,
                        token: *token,
                    });
                }
            }
        }
        lost
    }

    /// Renews leases until the registry goes away; stops the actors of lost ones.
    pub async fn run_renewals(self: std::sync::Arc<Self>, registry: Registry) {
        let mut every = tokio::time::interval(EXPIRY_CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_round: Option<Instant> = None;
        loop {
            every.tick().await;
            let lost = if last_round.is_none_or(|t| t.elapsed() >= RENEW_EVERY) {
                last_round = Some(Instant::now());
                self.renew_once().await
            } else {
                self.expire_local(Instant::now())
            };
            for lease in lost {
                registry.lease_lost(lease);
            }
            for (kind, n) in registry.live_by_kind() {
                metrics::gauge!(crate::metrics::CLUSTER_OWNED_KEYS, "kind" => kind).set(n as f64);
            }
        }
    }
}

#[async_trait::async_trait]
impl Placement for RedisPlacement {
    async fn claim(&self, key: ActorKey) -> Result<Lease, RegistryError> {
        if let Some(node) = self.cached_owner(&key)
            && node != self.node
        {
            return Err(RegistryError::OwnedElsewhere { key, node });
        }
        let started = Instant::now();
        let mut conn = self.redis.clone();
        let (won, value): (i64, String) = self
            .claim
            .key(self.lease_key(&key))
            .arg(&self.node_hex)
            .arg(LEASE_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, %key, "lease claim failed");
                unavailable(key)
            })?;
        if won == 1 {
            let token: u64 = value.parse().map_err(|_| unavailable(key))?;
            self.held.lock().expect("held lock").insert(
                key,
                Held {
                    token,
                    until: started + LEASE_TTL - SAFETY_MARGIN,
                },
            );
            return Ok(Lease { key, token });
        }
        let node = u64::from_str_radix(&value, 16).map_err(|_| unavailable(key))?;
        self.cache_owner(key, node);
        Err(RegistryError::OwnedElsewhere { key, node })
    }

    async fn release(&self, lease: Lease) {
        let mut conn = self.redis.clone();
        let r: Result<i64, _> = self
            .release
            .key(self.lease_key(&lease.key))
            .arg(self.value(lease.token))
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = r {
            // It lapses by itself within the TTL.
            tracing::warn!(error = %e, key = %lease.key, "lease release failed");
        }
        // Forgotten only now, so a drain that waits for no leases held waits for Redis too.
        let mut held = self.held.lock().expect("held lock");
        if held.get(&lease.key).is_some_and(|h| h.token == lease.token) {
            held.remove(&lease.key);
        }
    }

    async fn owner(&self, key: ActorKey) -> Result<Option<u64>, RegistryError> {
        if let Some(node) = self.cached_owner(&key) {
            return Ok((node != self.node).then_some(node));
        }
        let mut conn = self.redis.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(self.lease_key(&key))
            .query_async(&mut conn)
            .await
            .map_err(|_| unavailable(key))?;
        let Some(node) = v
            .as_deref()
            .and_then(|v| v.split(':').next())
            .and_then(|n| u64::from_str_radix(n, 16).ok())
        else {
            return Ok(None);
        };
        self.cache_owner(key, node);
        Ok((node != self.node).then_some(node))
    }

    fn still_held(&self, lease: &Lease) -> bool {
        let held = self.held.lock().expect("held lock");
        held.get(&lease.key)
            .is_some_and(|h| h.token == lease.token && Instant::now() < h.until)
    }

    fn forget_owner(&self, key: &ActorKey) {
        self.owners.lock().expect("owners lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{KeyId, Kind};

    async fn node(id: u64, prefix: &str) -> RedisPlacement {
        RedisPlacement::new(id, prefix, crate::cluster::test_redis().await)
    }

    fn key(n: i64) -> ActorKey {
        ActorKey {
            kind: Kind::new("chat_room"),
            id: KeyId::One(n),
        }
    }

    /// The lease rules against the real Redis: one owner at a time, tokens that grow, a
    /// stale release that frees nothing, renewal that reports a lease another node took.
    #[tokio::test]
    async fn one_owner_growing_tokens_and_lost_leases() {
        let prefix = format!("studyon-test-{}", crate::registry::epoch_micros());
        let (a, b) = (node(0xa, &prefix).await, node(0xb, &prefix).await);
        let k = key(1);
        let first = a.claim(k).await.unwrap();
        assert!(a.still_held(&first));
        match b.claim(k).await {
            Err(RegistryError::OwnedElsewhere { node, .. }) => assert_eq!(node, 0xa),
            other => panic!("b must not get a's key: {other:?}"),
        }
        assert_eq!(b.owner(k).await.unwrap(), Some(0xa));
        assert_eq!(a.owner(k).await.unwrap(), None, "a runs it itself");

        // A re-claim by the owner gets a larger token; the old lease's release frees nothing.
        let second = a.claim(k).await.unwrap();
        assert!(second.token > first.token);
        a.release(first).await;
        b.forget_owner(&k);
        assert!(matches!(
            b.claim(k).await,
            Err(RegistryError::OwnedElsewhere { .. })
        ));
        assert!(a.renew_once().await.is_empty(), "still a's");

        // Released for real: b takes it with a larger token still.
        a.release(second).await;
        b.forget_owner(&k);
        let theirs = b.claim(k).await.unwrap();
        assert!(theirs.token > second.token);

        // a, holding an old claim it never released (paused, say), learns at renewal that
        // the key is b's now, and may not act under it any more.
        let k2 = key(2);
        let mine = a.claim(k2).await.unwrap();
        let mut conn = a.redis.clone();
        let () = redis::cmd("SET")
            .arg(a.lease_key(&k2))
            .arg(format!("b:{}", mine.token + 1))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(a.renew_once().await, vec![mine]);
        assert!(!a.still_held(&mine));

        // A lease that vanished (Redis restarted empty) is taken back at renewal.
        let k3 = key(3);
        let kept = a.claim(k3).await.unwrap();
        let () = redis::cmd("DEL")
            .arg(a.lease_key(&k3))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(a.renew_once().await.is_empty());
        assert!(a.still_held(&kept));
        b.forget_owner(&k3);
        assert!(matches!(
            b.claim(k3).await,
            Err(RegistryError::OwnedElsewhere { .. })
        ));
    }

    /// A lease past its local deadline is lost here at the next round, whatever Redis says.
    #[tokio::test]
    async fn a_lease_past_its_deadline_is_lost_locally() {
        let prefix = format!("studyon-test-{}", crate::registry::epoch_micros());
        let a = node(0xa, &prefix).await;
        let lease = a.claim(key(1)).await.unwrap();
        a.held.lock().unwrap().get_mut(&lease.key).unwrap().until = Instant::now();
        assert!(!a.still_held(&lease));
        assert_eq!(a.renew_once().await, vec![lease]);
        assert_eq!(a.held_count(), 0);
    }
}
