//! The part of every keyed actor the registry owns: liveness bookkeeping, idle tracking, the
//! set of client connections watching it, and crash detection.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{ActorKey, Lease, LiveSlot, WeakInner};
use crate::ids::ConnId;
use crate::ws::router::{Control, Sockets};

pub struct Supervision {
    key: ActorKey,
    generation: u64,
    /// The placement's grant to run this key; given back (exactly this one) on drop.
    lease: Lease,
    /// This actor's place under its kind's ceiling; freed when the actor is dropped.
    _slot: LiveSlot,
    registry: WeakInner,
    sockets: Sockets,
    /// Set once the actor runs; an actor dropped before that (load failed) is no crash.
    armed: bool,
    /// Set on every clean stop path; a drop without it is a crash.
    clean: bool,
    last_activity: Instant,
    watchers: HashSet<ConnId>,
}

impl Supervision {
    pub(super) fn new(
        key: ActorKey,
        generation: u64,
        lease: Lease,
        slot: LiveSlot,
        registry: WeakInner,
        sockets: Sockets,
    ) -> Self {
        Supervision {
            key,
            generation,
            lease,
            _slot: slot,
            registry,
            sockets,
            armed: false,
            clean: false,
            last_activity: Instant::now(),
            watchers: HashSet::new(),
        }
    }

    pub fn key(&self) -> ActorKey {
        self.key
    }

    /// The lease this actor runs under (its token fences writes in a cluster).
    pub fn lease(&self) -> Lease {
        self.lease
    }

    pub(super) fn arm(&mut self) {
        self.armed = true;
        metrics::gauge!(crate::metrics::ACTORS_LIVE, "kind" => self.key.kind()).increment(1.0);
    }

    /// Bookkeeping for one delivered message.
    pub fn received(&mut self) {
        self.last_activity = Instant::now();
        metrics::gauge!(crate::metrics::ACTOR_MAILBOX_DEPTH, "kind" => self.key.kind())
            .decrement(1.0);
    }

    pub(super) fn quiet_for(&self) -> Duration {
        self.last_activity.elapsed()
    }

    /// Marks the coming stop as intended and removes the actor from the registry.
    pub fn stop_cleanly(&mut self) {
        if !self.clean {
            self.clean = true;
            if let Some(inner) = self.registry.upgrade() {
                inner.forget(&self.key, self.generation);
            }
        }
    }

    /// Connections to tell to resync if this actor crashes.
    pub fn watchers(&self) -> &HashSet<ConnId> {
        &self.watchers
    }

    pub fn watch(&mut self, conn: ConnId) {
        if self.watchers.insert(conn) {
            self.sockets.watched(conn, self.key, true);
        }
        self.last_activity = Instant::now();
    }

    /// Tells every watcher to re-attach (the key now lives elsewhere) and forgets them.
    pub fn resync_watchers(&mut self) {
        for conn in self.watchers.drain() {
            self.sockets
                .control(conn, Control::Resync { key: self.key });
            self.sockets.watched(conn, self.key, false);
        }
    }

    pub fn unwatch(&mut self, conn: &ConnId) -> bool {
        self.last_activity = Instant::now();
        let was = self.watchers.remove(conn);
        if was {
            self.sockets.watched(*conn, self.key, false);
        }
        was
    }
}

impl Drop for Supervision {
    fn drop(&mut self) {
        if !self.armed {
            // The actor never ran (its load failed): the registry gives the claim back.
            return;
        }
        metrics::gauge!(crate::metrics::ACTORS_LIVE, "kind" => self.key.kind()).decrement(1.0);
        if self.clean {
            if let Some(inner) = self.registry.upgrade() {
                inner.released(self.lease);
            }
            return;
        }
        // A panic unwound the actor's task: its in-memory state is gone. Its clients must
        // re-attach (which reloads state) and re-fetch what they show.
        for conn in &self.watchers {
            self.sockets
                .control(*conn, Control::Resync { key: self.key });
        }
        if let Some(inner) = self.registry.upgrade() {
            inner.clone().released(self.lease);
            inner.crashed(self.key, self.generation);
        }
    }
}
