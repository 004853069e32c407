//! The table of keyed actor kinds. A kind registers itself with one line
//! (`kinds.register::<ChatRoom>()`); the registry finds its restart and its resync scope here,
//! so the registry never names an actor type.

use std::collections::HashMap;

use futures_util::future::BoxFuture;

use super::{ActorId, ActorKey, KeyId, KeyedActor, Kind, Registry, RegistryError, ResyncScope};

struct KindEntry {
    restart: fn(Registry, KeyId) -> BoxFuture<'static, Result<(), RegistryError>>,
    resync: fn(KeyId) -> Option<ResyncScope>,
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

    /// What a client watching `key` is told to re-fetch after the actor restarted.
    pub fn resync_scope(&self, key: &ActorKey) -> Option<ResyncScope> {
        self.kinds.get(key.kind()).and_then(|k| (k.resync)(key.id))
    }
}
