//! Rate limits shared by every node of a cluster: the same token buckets as
//! [`crate::ratelimit`], kept in Redis so N nodes do not allow N× the attempts.
//!
//! One script call takes a token from each named bucket only if every one has a token (a
//! login spends the address's and the account's together), on Redis's clock. When Redis
//! cannot be reached, the caller falls back to its node's own buckets: limits stay in force
//! (per node) rather than failing open or refusing everyone.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::ratelimit::Policy;

/// `KEYS` the buckets; `ARGV[2i-1]`, `ARGV[2i]` bucket i's burst and refill per second.
/// Each bucket is a hash {t = tokens, at = µs}. Returns 0 when a token was taken from every
/// bucket, else the wait in ms until all would have one (nothing taken).
const TAKE: &str = r#"
local now = redis.call('TIME')
local us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local tokens = {}
local wait = 0
for i, k in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', k, 't', 'at')
  local t = tonumber(b[1]) or burst
  local at = tonumber(b[2]) or us
  if us > at then t = math.min(burst, t + (us - at) / 1000000 * rate) end
  tokens[i] = t
  if t < 1 then wait = math.max(wait, math.ceil((1 - t) / rate * 1000)) end
end
if wait > 0 then return wait end
for i, k in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  redis.call('HSET', k, 't', tostring(tokens[i] - 1), 'at', string.format('%.0f', us))
  -- Forgotten once it would be full again: a full bucket and no bucket mean the same.
  redis.call('PEXPIRE', k, math.ceil(burst / rate * 1000) + 1000)
end
return 0
"#;

pub struct RedisLimits {
    prefix: String,
    redis: ConnectionManager,
    take: redis::Script,
}

impl RedisLimits {
    pub fn new(prefix: &str, redis: ConnectionManager) -> Self {
        RedisLimits {
            prefix: prefix.to_string(),
            redis,
            take: redis::Script::new(TAKE),
        }
    }

    /// Takes a token from every `(bucket name, policy)`, or none; `Err(wait)` when one is
    /// empty. The outer error is Redis being unreachable.
    pub async fn take(
        &self,
        buckets: &[(String, Policy)],
    ) -> redis::RedisResult<Result<(), Duration>> {
        let mut inv = self.take.prepare_invoke();
        for (name, p) in buckets {
            inv.key(format!("{}:rl:{name}", self.prefix));
            inv.arg(p.burst).arg(p.per_second);
        }
        let mut conn = self.redis.clone();
        let wait_ms: u64 = inv.invoke_async(&mut conn).await?;
        Ok(if wait_ms == 0 {
            Ok(())
        } else {
            Err(Duration::from_millis(wait_ms))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the real Redis (ops/test.sh starts it): two "nodes" sharing one bucket get
    /// the burst between them, not each; an all-or-nothing take spends nothing on refusal.
    #[tokio::test]
    async fn nodes_share_one_bucket_and_a_refused_take_spends_nothing() {
        let prefix = format!("studyon-test-{}", crate::registry::epoch_micros());
        let a = RedisLimits::new(&prefix, crate::cluster::test_redis().await);
        let b = RedisLimits::new(&prefix, crate::cluster::test_redis().await);
        // Slow refill, so the test's own time does not add tokens.
        let policy = Policy::new(4, 0.001);
        let bucket = vec![("login:ip:1.2.3.4".to_string(), policy)];
        let mut granted = 0;
        for i in 0..10 {
            let node = if i % 2 == 0 { &a } else { &b };
            if node.take(&bucket).await.unwrap().is_ok() {
                granted += 1;
            }
        }
        assert_eq!(granted, 4, "the burst is shared by both nodes");
        let wait = a.take(&bucket).await.unwrap().unwrap_err();
        assert!(wait > Duration::from_secs(60), "{wait:?}");

        // Two buckets: the second is empty, so the first keeps its token.
        let fresh = ("login:account:x".to_string(), Policy::new(1, 0.001));
        let both = vec![fresh.clone(), bucket[0].clone()];
        assert!(a.take(&both).await.unwrap().is_err());
        assert!(a.take(std::slice::from_ref(&fresh)).await.unwrap().is_ok());
    }
}
