//! Placement: which node may run the actor for a key. Every start claims a [`Lease`] and
//! every stop gives back exactly that lease: its `token` grows with every claim, so a late
//! release from an actor that already stopped can never free a newer actor's claim.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::{ActorKey, RegistryError};

/// The right to run one key's actor, granted by a [`Placement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub key: ActorKey,
    /// Fencing token: larger for every later claim of the same key.
    pub token: u64,
}

/// Decides which node may run the actor for a key.
#[async_trait::async_trait]
pub trait Placement: Send + Sync + 'static {
    /// Claims `key` for this node before its actor starts; `OwnedElsewhere` if another node
    /// holds it.
    async fn claim(&self, key: ActorKey) -> Result<Lease, RegistryError>;
    /// Gives the lease up after its actor stopped (cleanly or not). A lease that is no longer
    /// the current one for its key (a newer claim replaced it) releases nothing.
    async fn release(&self, lease: Lease);
    /// The other node running `key`'s actor now, if one does. A single node never has one.
    async fn owner(&self, _key: ActorKey) -> Result<Option<u64>, RegistryError> {
        Ok(None)
    }
    /// Whether this node may still act under `lease` now. A cluster node that could not
    /// renew its leases in time must stop acting as owner before another node can claim.
    fn still_held(&self, _lease: &Lease) -> bool {
        true
    }
    /// Drops what this node believes about `key`'s owner (a forward to it failed).
    fn forget_owner(&self, _key: &ActorKey) {}
}

/// Microseconds since the Unix epoch: where fencing tokens start, so they keep growing
/// across restarts (the store keeps the highest token it has seen per key).
pub fn epoch_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Single node: every key is ours. It still keeps the current token per key, so the release
/// rule is the same one the cluster placement follows (and is tested here).
pub struct LocalPlacement {
    next: AtomicU64,
    held: Mutex<HashMap<ActorKey, u64>>,
}

impl Default for LocalPlacement {
    fn default() -> Self {
        LocalPlacement {
            // A restarted process must not hand out tokens below its previous life's, or
            // the store's fence would refuse its writes.
            next: AtomicU64::new(epoch_micros()),
            held: Mutex::new(HashMap::new()),
        }
    }
}

impl LocalPlacement {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token of the current claim on `key`, if any.
    pub fn holder(&self, key: &ActorKey) -> Option<u64> {
        self.held.lock().expect("placement lock").get(key).copied()
    }
}

#[async_trait::async_trait]
impl Placement for LocalPlacement {
    async fn claim(&self, key: ActorKey) -> Result<Lease, RegistryError> {
        let token = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        // A newer claim replaces an older one whose actor is still on its way out.
        self.held.lock().expect("placement lock").insert(key, token);
        Ok(Lease { key, token })
    }

    async fn release(&self, lease: Lease) {
        let mut held = self.held.lock().expect("placement lock");
        if held.get(&lease.key) == Some(&lease.token) {
            held.remove(&lease.key);
        }
    }
}
