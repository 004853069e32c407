//! Argon2id password hashing. Hashing costs ~19 MiB and tens of milliseconds of CPU, so it
//! always runs on tokio's blocking pool, never on an async executor thread, and at most one
//! hash per core runs at once: a burst of signups queues (boundedly) instead of holding
//! 19 MiB per request on hundreds of blocking threads.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Hashes that may wait for a core before callers get `busy`: a login burst of a large class
/// queues; a flood is refused instead of growing the queue without bound.
const MAX_WAITING: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password checks are waiting")]
    Busy,
    #[error("argon2: {0}")]
    Failed(anyhow::Error),
}

/// Admission for CPU- and memory-heavy work: `slots` at once, `max_waiting` queued.
pub struct Gate {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Counts a waiter for as long as it waits, even if its request is dropped meanwhile.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub fn new(slots: usize, max_waiting: usize) -> Self {
        Gate {
            slots: Semaphore::new(slots.max(1)),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// Runs `f` on the blocking pool once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = {
            if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(HashError::Busy);
            }
            let _waiting = Waiting(&self.waiting);
            self.slots
                .acquire()
                .await
                .expect("the gate is never closed")
        };
        let out = tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| HashError::Failed(e.into()));
        drop(permit);
        out
    }
}

static GATE: LazyLock<Gate> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Gate::new(cores, MAX_WAITING)
});

/// Memory cost in KiB: 19 MiB, the OWASP minimum for Argon2id.
const M_COST_KIB: u32 = 19 * 1024;
/// Iterations: 2, the OWASP pairing with 19 MiB.
const T_COST: u32 = 2;
/// Lanes: 1, so one login never takes more than one core.
const P_COST: u32 = 1;

fn hasher() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("valid argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash(password: String) -> Result<String, HashError> {
    GATE.run(move || {
        hasher()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError::Failed(anyhow::anyhow!("{e}")))
    })
    .await?
}

/// True when `password` matches `phc`. A malformed stored hash counts as a mismatch.
pub async fn verify(password: String, phc: String) -> Result<bool, HashError> {
    GATE.run(move || {
        hasher()
            .verify_password(password.as_bytes(), phc.as_str())
            .is_ok()
    })
    .await
}

/// A real hash of a random password, verified against when the login id is unknown so that
/// an unknown id and a wrong password cost the same time.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let random = super::token::random_token();
        hasher()
            .hash_password(random.as_bytes())
            .expect("argon2 hash")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::{Gate, HashError};

    #[tokio::test]
    async fn the_gate_bounds_running_and_waiting_work() {
        use std::sync::atomic::Ordering::Acquire;
        let gate = std::sync::Arc::new(Gate::new(1, 1));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        // One runs (blocked until released), one waits, a third is refused at once.
        let g = gate.clone();
        let running = tokio::spawn(async move { g.run(move || hold.recv().unwrap()).await });
        while gate.slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let g = gate.clone();
        let dropped = tokio::spawn(async move { g.run(|| 2).await });
        while gate.waiting.load(Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(gate.run(|| 3).await, Err(HashError::Busy)));
        // A waiter whose request is dropped gives its place back.
        dropped.abort();
        let _ = dropped.await;
        assert_eq!(gate.waiting.load(Acquire), 0);
        let g = gate.clone();
        let waiting = tokio::spawn(async move { g.run(|| 4).await });
        release.send(()).unwrap();
        assert!(running.await.unwrap().is_ok());
        assert_eq!(waiting.await.unwrap().unwrap(), 4);
    }

    #[tokio::test]
    async fn hashes_with_the_required_parameters_and_verifies() {
        let phc = super::hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            super::verify("correct horse battery".into(), phc.clone())
                .await
                .unwrap()
        );
        assert!(
            !super::verify("wrong horse battery".into(), phc)
                .await
                .unwrap()
        );
        assert!(!super::verify("x".into(), "not a phc".into()).await.unwrap());
    }
}
