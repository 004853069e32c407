//! The table of keyed actor kinds. A kind registers itself with one line
//! (`kinds.register::<ChatRoom>()`); the registry finds its restart and its resync scope here,
//! so the registry never names an actor type.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::BoxFuture;

use super::{
    ASK_TIMEOUT, ActorId, ActorKey, KeyId, KeyedActor, Kind, Registry, RegistryError, ReplyTo,
    ResyncScope, WireReply, wire,
};

type DeliverWire = fn(
    Registry,
    KeyId,
    Vec<u8>,
    bool,
    bool,
) -> BoxFuture<'static, Result<Option<WireReply>, RegistryError>>;

struct KindEntry {
    restart: fn(Registry, KeyId) -> BoxFuture<'static, Result<(), RegistryError>>,
    resync: fn(KeyId) -> Option<ResyncScope>,
    deliver: DeliverWire,
    /// Actors of this kind starting or running on this node.
    live: Arc<AtomicUsize>,
}

/// One actor's place under its kind's ceiling, from the start of its load until it is gone.
#[derive(Debug)]
pub struct LiveSlot(Arc<AtomicUsize>);

impl Drop for LiveSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every keyed actor kind this build knows.
#[derive(Default)]
pub struct ActorKinds {
    kinds: HashMap<&'static str, KindEntry>,
}

fn restart<A: KeyedActor>(
    registry: Registry,
    id: KeyId,
) -> BoxFuture<'static, Result<(), RegistryError>> {
    Box::pin(async move {
        let Some(id) = A::Id::from_key_id(id) else {
            return Ok(());
        };
        registry.get::<A>(id, true).await.map(|_| ())
    })
}

/// Decodes a message another node forwarded and delivers it here; the reply is encoded for
/// the way back.
fn deliver_wire<A: KeyedActor>(
    registry: Registry,
    id: KeyId,
    bytes: Vec<u8>,
    start: bool,
    want_reply: bool,
) -> BoxFuture<'static, Result<Option<WireReply>, RegistryError>> {
    Box::pin(async move {
        let key = ActorKey {
            kind: Kind::new(A::KIND),
            id,
        };
        let Some(id) = A::Id::from_key_id(id) else {
            return Err(RegistryError::Wire(format!("bad id for {key}")));
        };
        let msg: A::Msg = wire::decode(&bytes).map_err(|e| RegistryError::Wire(e.to_string()))?;
        if !want_reply {
            registry
                .deliver_inner::<A>(id, msg, ReplyTo::none(), start, true)
                .await?;
            return Ok(None);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        registry
            .deliver_inner::<A>(id, msg, ReplyTo(Some(tx)), start, true)
            .await?;
        let reply: WireReply = Box::pin(async move {
            match tokio::time::timeout(ASK_TIMEOUT, rx).await {
                Ok(Ok(r)) => wire::encode(&r).map_err(|e| RegistryError::Wire(e.to_string())),
                Ok(Err(_)) => Err(RegistryError::Stopped { key }),
                Err(_) => Err(RegistryError::Timeout { key }),
            }
        });
        Ok(Some(reply))
    })
}

fn resync<A: KeyedActor>(id: KeyId) -> Option<ResyncScope> {
    A::Id::from_key_id(id).map(A::resync_scope)
}

impl ActorKinds {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `A`. Panics if another type already took its kind name (a build error in
    /// all but name: the unit tests register every kind).
    pub fn register<A: KeyedActor>(&mut self) -> &mut Self {
        let kind = Kind::new(A::KIND);
        kind.make_known();
        let old = self.kinds.insert(
            A::KIND,
            KindEntry {
                restart: restart::<A>,
                resync: resync::<A>,
                deliver: deliver_wire::<A>,
                live: Arc::new(AtomicUsize::new(0)),
            },
        );
        assert!(old.is_none(), "actor kind {:?} registered twice", A::KIND);
        self
    }

    pub fn contains(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    pub(super) fn restart(
        &self,
        registry: Registry,
        key: ActorKey,
    ) -> Option<BoxFuture<'static, Result<(), RegistryError>>> {
        self.kinds
            .get(key.kind())
            .map(|k| (k.restart)(registry, key.id))
    }

    pub(super) fn deliver_wire(
        &self,
        registry: Registry,
        key: ActorKey,
        msg: Vec<u8>,
        start: bool,
        want_reply: bool,
    ) -> Option<BoxFuture<'static, Result<Option<WireReply>, RegistryError>>> {
        self.kinds
            .get(key.kind())
            .map(|k| (k.deliver)(registry, key.id, msg, start, want_reply))
    }

    /// Takes a place for one more actor of `kind`, unless `max` are already live.
    pub(super) fn reserve(&self, kind: &str, max: usize) -> Option<LiveSlot> {
        let live = &self.kinds.get(kind)?.live;
        if live.fetch_add(1, Ordering::AcqRel) >= max {
            live.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(LiveSlot(live.clone()))
    }

    /// Actors of `kind` starting or running on this node.
    pub fn live(&self, kind: &str) -> usize {
        self.kinds
            .get(kind)
            .map_or(0, |k| k.live.load(Ordering::Acquire))
    }

    /// What a client watching `key` is told to re-fetch after the actor restarted.
    pub fn resync_scope(&self, key: &ActorKey) -> Option<ResyncScope> {
        self.kinds.get(key.kind()).and_then(|k| (k.resync)(key.id))
    }
}
