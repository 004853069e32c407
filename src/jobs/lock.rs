//! One run of a job at a time: a lock per job name with a random token and a time to live.
//!
//! [`LocalJobLock`] serves a single node (a job is refused only while it already runs
//! here); [`RedisJobLock`] serves a cluster (`SET key token NX PX ttl`, released by a script
//! that deletes the key only while it still holds this token). The same test suite runs on
//! both. The rule for callers: a lock ends at its TTL whatever happens, so a run must not
//! take longer than the TTL it asked for, and what it writes must stay correct if it does
//! (the jobs' writes re-check that they are due in their own transactions).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::JobError;

#[async_trait]
pub trait JobLock: Send + Sync {
    /// Takes the lock on `job` for at most `ttl`; `None` while someone else holds it.
    async fn try_acquire(&self, job: &str, ttl: Duration) -> Result<Option<JobGuard>, JobError>;
}

/// A held lock. [`JobGuard::release`] gives it back if this token still holds it; a guard
/// dropped without that (a cancelled or panicked run) is given back as far as that can be
/// done without waiting: at once in process, by a background task on Redis, else at its TTL.
pub struct JobGuard {
    job: String,
    token: String,
    holder: Option<Arc<dyn Holder>>,
}

impl JobGuard {
    pub fn job(&self) -> &str {
        &self.job
    }

    /// This holder's random token (what release compares).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Frees the lock if this token still holds it. `false` when it had expired (and maybe
    /// been taken by someone else, who keeps it).
    pub async fn release(mut self) -> Result<bool, JobError> {
        match self.holder.take() {
            Some(h) => h.release(&self.job, &self.token).await,
            None => Ok(false),
        }
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if let Some(h) = self.holder.take() {
            h.release_on_drop(&self.job, &self.token);
        }
    }
}

impl std::fmt::Debug for JobGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobGuard")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

/// What a guard gives its lock back to.
#[async_trait]
trait Holder: Send + Sync {
    async fn release(&self, job: &str, token: &str) -> Result<bool, JobError>;
    /// The guard was dropped: free it without waiting, if this backend can.
    fn release_on_drop(&self, job: &str, token: &str);
}

/// 128 random bits, hex: no two holders ever share one.
fn new_token() -> Result<String, JobError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(JobError::Token)?;
    Ok(hex::encode(b))
}

/// The in-process lock: one node runs each job at most once at a time. Clones share it.
#[derive(Clone, Default)]
pub struct LocalJobLock {
    /// Job name → (token, when it expires). Entries are removed on release; an expired one
    /// is taken over by the next acquirer.
    held: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

impl LocalJobLock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Frees `job` if `token` holds it; true if it held it unexpired.
    fn free(&self, job: &str, token: &str) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get(job) {
            Some((t, expires)) if t == token => {
                let live = *expires > Instant::now();
                held.remove(job);
                live
            }
            _ => false,
        }
    }
}

#[async_trait]
impl JobLock for LocalJobLock {
    async fn try_acquire(&self, job: &str, ttl: Duration) -> Result<Option<JobGuard>, JobError> {
        let token = new_token()?;
        let now = Instant::now();
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            if held.get(job).is_some_and(|(_, expires)| *expires > now) {
                return Ok(None);
            }
            held.insert(job.to_string(), (token.clone(), now + ttl));
        }
        Ok(Some(JobGuard {
            job: job.to_string(),
            token,
            holder: Some(Arc::new(self.clone())),
        }))
    }
}

#[async_trait]
impl Holder for LocalJobLock {
    async fn release(&self, job: &str, token: &str) -> Result<bool, JobError> {
        Ok(self.free(job, token))
    }

    fn release_on_drop(&self, job: &str, token: &str) {
        self.free(job, token);
    }
}

/// Deletes the key only while it holds this holder's token, so a holder whose TTL ran out
/// cannot free the lock of the one that took it over.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
    )
});

/// The cluster lock: one key per job in Redis, `{prefix}job:{name}`.
#[derive(Clone)]
pub struct RedisJobLock {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl RedisJobLock {
    /// Keys under `prefix` (the cluster's `--redis-prefix` and a colon; tests use their own).
    pub fn with_prefix(conn: redis::aio::ConnectionManager, prefix: impl Into<String>) -> Self {
        RedisJobLock {
            conn,
            prefix: prefix.into(),
        }
    }

    fn key(&self, job: &str) -> String {
        format!("{}job:{job}", self.prefix)
    }

    async fn free(&self, job: &str, token: &str) -> Result<bool, JobError> {
        let mut conn = self.conn.clone();
        let deleted: i64 = RELEASE
            .key(self.key(job))
            .arg(token)
            .invoke_async(&mut conn)
            .await?;
        Ok(deleted == 1)
    }
}

#[async_trait]
impl JobLock for RedisJobLock {
    async fn try_acquire(&self, job: &str, ttl: Duration) -> Result<Option<JobGuard>, JobError> {
        let token = new_token()?;
        let mut conn = self.conn.clone();
        // PX takes whole milliseconds, at least one.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(job))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await?;
        Ok(set.map(|_| JobGuard {
            job: job.to_string(),
            token,
            holder: Some(Arc::new(self.clone())),
        }))
    }
}

#[async_trait]
impl Holder for RedisJobLock {
    async fn release(&self, job: &str, token: &str) -> Result<bool, JobError> {
        self.free(job, token).await
    }

    fn release_on_drop(&self, job: &str, token: &str) {
        // No waiting in a destructor: a background task if there is a runtime, else the TTL.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (lock, job, token) = (self.clone(), job.to_string(), token.to_string());
            rt.spawn(async move {
                if let Err(e) = lock.free(&job, &token).await {
                    tracing::debug!(%job, error = %e, "dropped job lock not freed; it expires");
                }
            });
        }
    }
}

/// The same suite on both locks. The Redis half runs against the real Redis at
/// `STUDYON_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`, which `ops/test.sh` starts)
/// and fails when it is not there; every test takes its own key prefix, so parallel runs do
/// not see each other's keys.
#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Two handles on one lock, as two nodes (or two tasks of one node) hold them.
    type Pair = (Arc<dyn JobLock>, Arc<dyn JobLock>);

    const LONG: Duration = Duration::from_secs(10);

    fn local_pair() -> Pair {
        let lock = LocalJobLock::new();
        (Arc::new(lock.clone()), Arc::new(lock))
    }

    async fn redis_pair() -> Pair {
        static RUN: AtomicU64 = AtomicU64::new(0);
        let prefix = format!(
            "studyon-test:{}:{}:{}:",
            std::process::id(),
            chrono::Utc::now().timestamp_micros(),
            RUN.fetch_add(1, Ordering::Relaxed)
        );
        let node = || async {
            let conn = crate::cluster::test_redis().await;
            Arc::new(RedisJobLock::with_prefix(conn, prefix.clone())) as Arc<dyn JobLock>
        };
        (node().await, node().await)
    }

    async fn exactly_one_of_two_wins((a, b): Pair) {
        for round in 0..20 {
            let job = format!("race{round}");
            let (x, y) = tokio::join!(a.try_acquire(&job, LONG), b.try_acquire(&job, LONG));
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(x.is_some() != y.is_some(), "round {round}: {x:?} {y:?}");
            // While it is held, neither takes it again; another job is not blocked.
            assert!(a.try_acquire(&job, LONG).await.unwrap().is_none());
            assert!(b.try_acquire(&job, LONG).await.unwrap().is_none());
            let other = a.try_acquire(&format!("other{round}"), LONG).await.unwrap();
            assert!(other.expect("another job").release().await.unwrap());
            // Released, the other side gets it.
            let winner = x.or(y).unwrap();
            assert!(winner.release().await.unwrap());
            let next = b.try_acquire(&job, LONG).await.unwrap();
            assert!(next.expect("free after release").release().await.unwrap());
        }
    }

    async fn a_stale_token_does_not_free_a_newer_holder((a, b): Pair) {
        let old = a
            .try_acquire("stale", Duration::from_millis(150))
            .await
            .unwrap();
        let old = old.expect("free at first");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let new = b.try_acquire("stale", LONG).await.unwrap();
        let new = new.expect("an expired lock is free");
        assert_ne!(old.token(), new.token());
        assert!(
            !old.release().await.unwrap(),
            "the stale holder frees nothing"
        );
        assert!(
            a.try_acquire("stale", LONG).await.unwrap().is_none(),
            "the newer holder still holds it"
        );
        assert!(new.release().await.unwrap());
        let again = a.try_acquire("stale", LONG).await.unwrap();
        assert!(again.expect("free after release").release().await.unwrap());
    }

    async fn ttl_expiry_lets_the_next_one_in((a, b): Pair) {
        let first = a
            .try_acquire("ttl", Duration::from_millis(200))
            .await
            .unwrap();
        let first = first.expect("free at first");
        assert!(b.try_acquire("ttl", LONG).await.unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(450)).await;
        let second = b.try_acquire("ttl", LONG).await.unwrap();
        let second = second.expect("in after the TTL");
        // The first holder's guard going away later frees nothing either.
        drop(first);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(a.try_acquire("ttl", LONG).await.unwrap().is_none());
        assert!(second.release().await.unwrap());
    }

    async fn a_dropped_guard_frees_its_lock((a, b): Pair) {
        let g = a.try_acquire("dropped", LONG).await.unwrap().expect("free");
        drop(g);
        // In process at once; on Redis by a background task, well before the TTL.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(g) = b.try_acquire("dropped", LONG).await.unwrap() {
                assert!(g.release().await.unwrap());
                break;
            }
            assert!(Instant::now() < deadline, "a dropped guard kept the lock");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    macro_rules! lock_suite {
        ($($case:ident),* $(,)?) => {
            mod on_local {
                $(#[tokio::test]
                async fn $case() {
                    super::$case(super::local_pair()).await;
                })*
            }
            mod on_redis {
                $(#[tokio::test]
                async fn $case() {
                    super::$case(super::redis_pair().await).await;
                })*
            }
        };
    }

    lock_suite!(
        exactly_one_of_two_wins,
        a_stale_token_does_not_free_a_newer_holder,
        ttl_expiry_lets_the_next_one_in,
        a_dropped_guard_frees_its_lock,
    );
}
