//! The actor registry: keyed actors addressed by key, started on first use, stopped when
//! idle, restarted under supervision when they crash.
//!
//! Callers never hold an `Addr`: they call [`Registry::ask`] or [`Registry::tell`] with an
//! actor type and its id. Messages and replies are serde types, so the cluster registry (a
//! later Redis-backed implementation of placement) can carry them to the node that owns the
//! key without any call site changing.
//!
//! Placement: before an actor starts, the registry claims its key through a [`Placement`].
//! The in-process [`LocalPlacement`] lets this node run every key; the cluster placement (a
//! Redis lease per key, a later issue) lets exactly one node run it, and the registry will
//! forward messages for keys claimed elsewhere. Call sites do not change either way.
//!
//! Supervision: every keyed actor embeds a [`Supervision`]. When an actor stops without
//! going through a clean stop (a panic unwinds its task and drops it), the supervision's
//! `Drop` tells the actor's watchers (its client connections) to resync and asks the
//! registry to restart it, which reloads its state from the store. Restarts are limited to
//! [`MAX_RESTARTS`] per [`RESTART_WINDOW`] so a poison message cannot spin a core.

mod key;
mod kinds;
mod placement;
mod supervision;
pub mod wire;

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message};
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, oneshot};

pub use key::{ActorId, ActorKey, KeyId, Kind, ResyncScope};
pub use kinds::{ActorKinds, LiveSlot};
pub use placement::{Lease, LocalPlacement, Placement, epoch_micros};
pub use supervision::Supervision;

use crate::persist::Persister;
use crate::store::{Rule, Store, StoreError};
use crate::ws::router::Sockets;

/// Restarts allowed per key within [`RESTART_WINDOW`]; past that the actor stays down until
/// its next use, so a message that always panics cannot loop.
pub const MAX_RESTARTS: usize = 5;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long `ask` waits for a reply: a handler slower than this is a bug or an overload.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long claiming a key and loading its actor may take before the caller gets
/// `unavailable`: a slow placement or store must not stall the socket that asked.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Tries per delivery: an actor that stopped for idleness a moment ago, an owner that moved,
/// a draining owner giving its leases back.
const DELIVERY_TRIES: usize = 5;
/// Pause before asking again after a draining node refused: about one lease release.
const DRAINING_RETRY: Duration = Duration::from_millis(100);

/// Why an actor could not start, in a form that can cross nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StartError {
    /// The thing the actor stands for does not exist (or may not be seen).
    #[error("not found")]
    NotFound,
    /// The store (or the placement) could not be reached.
    #[error("unavailable")]
    Unavailable,
    /// Claiming the key and loading the state took longer than [`START_TIMEOUT`].
    #[error("start timed out")]
    TimedOut,
    /// Anything else; the message is for the log.
    #[error("{0}")]
    Failed(String),
}

impl From<StoreError> for StartError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rule(Rule::NotFound) => StartError::NotFound,
            StoreError::Unavailable(_) => StartError::Unavailable,
            other => StartError::Failed(other.to_string()),
        }
    }
}

impl From<Rule> for StartError {
    fn from(r: Rule) -> Self {
        match r {
            Rule::NotFound => StartError::NotFound,
            other => StartError::Failed(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegistryError {
    /// The actor's mailbox is full.
    #[error("{key} is busy")]
    Busy { key: ActorKey },
    /// The actor stopped (or crashed) before replying.
    #[error("{key} stopped before replying")]
    Stopped { key: ActorKey },
    /// No reply within [`ASK_TIMEOUT`].
    #[error("{key} did not reply in time")]
    Timeout { key: ActorKey },
    /// The actor could not start.
    #[error("{key} could not start: {reason}")]
    Start { key: ActorKey, reason: StartError },
    /// The node is shutting down and starts no actors.
    #[error("shutting down")]
    ShuttingDown,
    /// Another node runs this key's actor (and this node cannot forward to it).
    #[error("{key} runs on node {node:x}")]
    OwnedElsewhere { key: ActorKey, node: u64 },
    /// The node that runs this key's actor could not be reached.
    #[error("node {node:x} is unreachable")]
    Unreachable { node: u64 },
    /// A message or reply did not survive the node-to-node encoding.
    #[error("wire: {0}")]
    Wire(String),
    /// This node already runs as many actors of the key's kind as it is configured for.
    #[error("too many {} actors are live", key.kind())]
    AtCapacity { key: ActorKey },
}

/// What keyed actors get to build themselves.
pub struct Deps {
    pub store: Arc<dyn Store>,
    /// The way to client sockets, wherever they are connected.
    pub sockets: Sockets,
    pub persister: Persister,
    /// Largest co-edited document (encoded bytes) a `PostDoc` lets grow.
    pub doc_max_bytes: usize,
    /// Node resources live features set up at start (the video SFU's socket), by type.
    pub ext: Extensions,
}

/// A type map of node resources: a feature adds its own at start and its actors find it by
/// type, so no feature's resource is a field here.
#[derive(Default)]
pub struct Extensions(HashMap<std::any::TypeId, Arc<dyn Any + Send + Sync>>);

impl Extensions {
    pub fn insert(&mut self, value: Arc<dyn Any + Send + Sync>) {
        self.0.insert((*value).type_id(), value);
    }

    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.0
            .get(&std::any::TypeId::of::<T>())
            .and_then(|v| v.clone().downcast::<T>().ok())
    }
}

/// An actor that lives in the registry under a key.
pub trait KeyedActor:
    Actor<Context = Context<Self>> + Handler<Envelope<Self>> + Handler<StopActor> + Send
{
    /// The kind's name: in keys, logs, metric labels and `resync` frames.
    const KIND: &'static str;
    /// Whether the store fences this kind's writes: its lease token is raised in the store
    /// before it loads, and its single-owner writes carry the token.
    const FENCED: bool = false;
    type Id: ActorId;
    type Msg: Send + Serialize + DeserializeOwned + 'static;
    type Reply: Send + Serialize + DeserializeOwned + 'static;

    fn key(id: Self::Id) -> ActorKey {
        ActorKey::new(Kind::new(Self::KIND), id)
    }

    /// What a watching client re-fetches after this actor restarted. Default: the kind.
    fn resync_scope(_id: Self::Id) -> ResyncScope {
        ResyncScope::kind(Self::KIND)
    }

    /// Loads the actor's state from the store. Runs before the actor starts; a failure is
    /// reported to the caller that triggered the start.
    fn load(
        id: Self::Id,
        deps: Arc<Deps>,
        registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, Result<Self, StartError>>;

    fn supervision(&mut self) -> &mut Supervision;

    /// Handles one message; reply through `reply` now or later (from a spawned future).
    fn handle_msg(&mut self, msg: Self::Msg, reply: ReplyTo<Self::Reply>, ctx: &mut Context<Self>);

    /// True when the actor may be stopped once it has been quiet for the idle timeout.
    /// Default: when it has no watchers (client connections).
    fn is_idle(&mut self) -> bool {
        self.supervision().watchers().is_empty()
    }
}

/// A message for a keyed actor, with the channel for its reply (none for `tell`).
pub struct Envelope<A: KeyedActor> {
    pub msg: A::Msg,
    pub reply: ReplyTo<A::Reply>,
}

impl<A: KeyedActor> Message for Envelope<A> {
    type Result = ();
}

/// Where a keyed actor's reply goes. Dropping it unsent makes the asker see `Stopped`.
pub struct ReplyTo<R>(Option<oneshot::Sender<R>>);

impl<R> ReplyTo<R> {
    /// No one waits for this reply (work an actor starts on its own).
    pub fn none() -> Self {
        ReplyTo(None)
    }

    pub fn send(self, reply: R) {
        if let Some(tx) = self.0 {
            let _ = tx.send(reply);
        }
    }
}

/// Asks a keyed actor to stop cleanly (idle stop and shutdown use it). With `resync`, its
/// watchers are told to re-attach first: the actor stops because its lease was lost, so its
/// key lives on elsewhere.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopActor {
    pub resync: bool,
}

/// Implements the two registry handlers for a keyed actor type.
#[macro_export]
macro_rules! keyed_actor_handlers {
    ($t:ty) => {
        impl actix::Handler<$crate::registry::Envelope<$t>> for $t {
            type Result = ();
            fn handle(
                &mut self,
                env: $crate::registry::Envelope<$t>,
                ctx: &mut actix::Context<Self>,
            ) {
                <$t as $crate::registry::KeyedActor>::supervision(self).received();
                <$t as $crate::registry::KeyedActor>::handle_msg(self, env.msg, env.reply, ctx);
            }
        }
        impl actix::Handler<$crate::registry::StopActor> for $t {
            type Result = ();
            fn handle(&mut self, msg: $crate::registry::StopActor, ctx: &mut actix::Context<Self>) {
                if msg.resync {
                    <$t as $crate::registry::KeyedActor>::supervision(self).resync_watchers();
                }
                <$t as $crate::registry::KeyedActor>::supervision(self).stop_cleanly();
                actix::ActorContext::stop(ctx);
            }
        }
    };
}

struct Running {
    /// `Addr<A>` for the slot's actor type.
    addr: Box<dyn Any + Send + Sync>,
    generation: u64,
    lease: Lease,
    /// Asks the actor to stop; `true` tells its watchers to re-attach first.
    stop: Box<dyn Fn(bool) + Send + Sync>,
}

/// A reply on its way back to another node, encoded; awaited apart from the delivery so a
/// node's inbound link never waits on a slow handler.
pub type WireReply = BoxFuture<'static, Result<Vec<u8>, RegistryError>>;

/// The way to keyed actors on other nodes (the cluster's node-to-node link).
pub trait Remote: Send + Sync + 'static {
    /// Delivers an encoded message for `key` to `node`; returns the encoded reply when one
    /// is wanted. Bounded in time by the implementation.
    fn deliver(
        &self,
        node: u64,
        key: ActorKey,
        msg: Vec<u8>,
        start: bool,
        want_reply: bool,
    ) -> BoxFuture<'static, Result<Option<Vec<u8>>, RegistryError>>;
}

type Slot = Arc<OnceCell<Running>>;

/// How the registry runs its actors.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Threads (actix arbiters) the keyed actors are spread over.
    pub arbiters: usize,
    /// Quiet time after which an idle actor stops.
    pub idle: Duration,
    /// Mailbox bound per actor.
    pub mailbox: usize,
    /// Bound on claiming a key and loading its state.
    pub start_timeout: Duration,
    /// Live actors per kind on this node; starts past it answer `busy`.
    pub max_live: usize,
}

pub(crate) struct Inner {
    slots: Mutex<HashMap<ActorKey, Slot>>,
    deps: Arc<Deps>,
    kinds: Arc<ActorKinds>,
    placement: Arc<dyn Placement>,
    arbiters: Vec<actix::ArbiterHandle>,
    next_generation: AtomicU64,
    config: RegistryConfig,
    shutting_down: AtomicBool,
    crashes: Mutex<HashMap<ActorKey, VecDeque<Instant>>>,
    remote: OnceLock<Arc<dyn Remote>>,
}

/// Handle to the registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Registry {
    /// Creates the registry. Must run inside an actix `System`.
    pub fn new(
        deps: Arc<Deps>,
        kinds: Arc<ActorKinds>,
        placement: Arc<dyn Placement>,
        config: RegistryConfig,
    ) -> Self {
        let arbiters = (0..config.arbiters.max(1))
            .map(|_| actix::Arbiter::new().handle())
            .collect();
        Registry {
            inner: Arc::new(Inner {
                slots: Mutex::new(HashMap::new()),
                deps,
                kinds,
                placement,
                arbiters,
                next_generation: AtomicU64::new(1),
                config,
                shutting_down: AtomicBool::new(false),
                crashes: Mutex::new(HashMap::new()),
                remote: OnceLock::new(),
            }),
        }
    }

    pub fn deps(&self) -> &Arc<Deps> {
        &self.inner.deps
    }

    pub fn kinds(&self) -> &ActorKinds {
        &self.inner.kinds
    }

    /// Plugs in the way to other nodes (cluster mode); keys owned elsewhere are forwarded.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.inner.remote.set(remote);
    }

    /// Live actors on this node, by kind (the owned-keys metric).
    pub fn live_by_kind(&self) -> Vec<(&'static str, usize)> {
        let kinds = &self.inner.kinds;
        kinds.names().map(|k| (k, kinds.live(k))).collect()
    }

    /// Delivers an encoded message that another node forwarded here. Returns once it is in
    /// the actor's mailbox; the reply (if wanted) comes from the returned future. A key this
    /// node does not own is not forwarded again: the sender finds the owner itself.
    pub async fn deliver_wire(
        &self,
        key: ActorKey,
        msg: Vec<u8>,
        start: bool,
        want_reply: bool,
    ) -> Result<Option<WireReply>, RegistryError> {
        let Some(f) = self
            .inner
            .kinds
            .deliver_wire(self.clone(), key, msg, start, want_reply)
        else {
            return Err(RegistryError::Stopped { key });
        };
        f.await
    }

    /// The lease under which `key` runs here was lost (not renewed in time, or claimed
    /// elsewhere): stop that actor and send its watchers to the new owner.
    pub fn lease_lost(&self, lease: Lease) {
        let slot = self.slot(&lease.key, false);
        if let Some(r) = slot.as_ref().and_then(|s| s.get())
            && r.lease.token == lease.token
        {
            metrics::counter!(crate::metrics::LEASES_LOST, "kind" => lease.key.kind()).increment(1);
            tracing::warn!(key = %lease.key, "lease lost; stopping the actor here");
            self.inner.forget(&lease.key, r.generation);
            (r.stop)(true);
        }
    }

    /// Sends `msg` to the actor with this id, starting it if needed, and waits for its reply.
    pub async fn ask<A: KeyedActor>(
        &self,
        id: A::Id,
        msg: A::Msg,
    ) -> Result<A::Reply, RegistryError> {
        let (tx, rx) = oneshot::channel();
        self.deliver::<A>(id, msg, ReplyTo(Some(tx)), true).await?;
        let key = A::key(id);
        match tokio::time::timeout(ASK_TIMEOUT, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(RegistryError::Stopped { key }),
            Err(_) => Err(RegistryError::Timeout { key }),
        }
    }

    /// Sends `msg` without waiting for a reply, starting the actor if needed.
    pub async fn tell<A: KeyedActor>(&self, id: A::Id, msg: A::Msg) -> Result<(), RegistryError> {
        self.deliver::<A>(id, msg, ReplyTo(None), true).await
    }

    /// Delivers `msg` to the key's actor if it is running, and never starts it: for news
    /// that only matters to a running actor (a socket going away, a live push to whoever is
    /// watching). Returns whether it was delivered.
    ///
    /// Meaning in a cluster: "the owner, wherever it runs". On a single node the owner of a
    /// running key is always this node; the cluster registry looks the owner up and forwards.
    pub async fn tell_if_running<A: KeyedActor>(
        &self,
        id: A::Id,
        msg: A::Msg,
    ) -> Result<bool, RegistryError> {
        match self.deliver::<A>(id, msg, ReplyTo(None), false).await {
            Ok(()) => Ok(true),
            Err(RegistryError::Stopped { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Asks the key's actor if it is running, and never starts it: `None` when it is not
    /// (a question about live state, like whether a study's call is on, that a stopped
    /// actor answers by not running). Same cluster meaning as [`Registry::tell_if_running`].
    pub async fn ask_if_running<A: KeyedActor>(
        &self,
        id: A::Id,
        msg: A::Msg,
    ) -> Result<Option<A::Reply>, RegistryError> {
        let (tx, rx) = oneshot::channel();
        match self.deliver::<A>(id, msg, ReplyTo(Some(tx)), false).await {
            Ok(()) => {}
            Err(RegistryError::Stopped { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        match tokio::time::timeout(ASK_TIMEOUT, rx).await {
            Ok(Ok(r)) => Ok(Some(r)),
            // It stopped between taking the message and answering: not running.
            Ok(Err(_)) => Ok(None),
            Err(_) => Err(RegistryError::Timeout { key: A::key(id) }),
        }
    }

    /// Whether the actor for this key runs on this node now (tests and metrics; a cluster
    /// caller that wants to reach it uses [`Registry::tell_if_running`]).
    pub fn is_running_here(&self, key: &ActorKey) -> bool {
        self.slot(key, false).is_some_and(|s| s.get().is_some())
    }

    /// Number of live actors (all kinds).
    pub fn live_count(&self) -> usize {
        let slots = self.inner.slots.lock().expect("registry lock");
        slots.values().filter(|s| s.get().is_some()).count()
    }

    async fn deliver<A: KeyedActor>(
        &self,
        id: A::Id,
        msg: A::Msg,
        reply: ReplyTo<A::Reply>,
        start: bool,
    ) -> Result<(), RegistryError> {
        self.deliver_inner::<A>(id, msg, reply, start, false).await
    }

    /// Delivers here, or forwards to the owning node unless this delivery was forwarded
    /// already (one hop: the sender re-resolves the owner itself).
    async fn deliver_inner<A: KeyedActor>(
        &self,
        id: A::Id,
        mut msg: A::Msg,
        mut reply: ReplyTo<A::Reply>,
        start: bool,
        forwarded: bool,
    ) -> Result<(), RegistryError> {
        let key = A::key(id);
        for _ in 0..DELIVERY_TRIES {
            let slot = match self.get::<A>(id, start).await {
                Ok(Some(slot)) => slot,
                Ok(None) => {
                    // Not running here; in a cluster it may run on another node.
                    if forwarded {
                        return Err(RegistryError::Stopped { key });
                    }
                    match self.inner.placement.owner(key).await? {
                        Some(node) => {
                            match self.forward::<A>(node, key, msg, reply, false).await {
                                Err(Retry(m, r)) => (msg, reply) = (m, r),
                                Ok(result) => return result,
                            }
                            continue;
                        }
                        None => return Err(RegistryError::Stopped { key }),
                    }
                }
                Err(RegistryError::OwnedElsewhere { node, .. }) if !forwarded => {
                    match self.forward::<A>(node, key, msg, reply, start).await {
                        Err(Retry(m, r)) => (msg, reply) = (m, r),
                        Ok(result) => return result,
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let running = slot.get().expect("started slot");
            let generation = running.generation;
            if !self.inner.placement.still_held(&running.lease) {
                // This node could not renew the lease in time: another node may own the key
                // now, so this actor must not act again.
                self.lease_lost(running.lease);
                continue;
            }
            // Send through the one shared `Addr`: actix gives every clone of an address its
            // own extra slot past the capacity, so a clone per send would unbound the mailbox.
            let addr = running
                .addr
                .downcast_ref::<Addr<A>>()
                .expect("one actor type per key kind");
            metrics::gauge!(crate::metrics::ACTOR_MAILBOX_DEPTH, "kind" => A::KIND).increment(1.0);
            match addr.try_send(Envelope { msg, reply }) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    metrics::gauge!(crate::metrics::ACTOR_MAILBOX_DEPTH, "kind" => A::KIND)
                        .decrement(1.0);
                    match e {
                        actix::prelude::SendError::Full(_) => {
                            metrics::counter!(crate::metrics::ACTOR_BUSY, "kind" => A::KIND)
                                .increment(1);
                            return Err(RegistryError::Busy { key });
                        }
                        actix::prelude::SendError::Closed(env) => {
                            self.inner.forget(&key, generation);
                            msg = env.msg;
                            reply = env.reply;
                        }
                    }
                }
            }
        }
        Err(RegistryError::Stopped { key })
    }

    /// Sends `msg` to the node that owns `key` and hands its reply to `reply`. Gives the
    /// message back for another try when that node turned out not to own the key.
    async fn forward<A: KeyedActor>(
        &self,
        node: u64,
        key: ActorKey,
        msg: A::Msg,
        reply: ReplyTo<A::Reply>,
        start: bool,
    ) -> Result<Result<(), RegistryError>, Retry<A::Msg, A::Reply>> {
        let Some(remote) = self.inner.remote.get() else {
            return Ok(Err(RegistryError::OwnedElsewhere { key, node }));
        };
        let bytes = match wire::encode(&msg) {
            Ok(b) => b,
            Err(e) => return Ok(Err(RegistryError::Wire(e.to_string()))),
        };
        let want = reply.0.is_some();
        match remote.deliver(node, key, bytes, start, want).await {
            Ok(Some(r)) => Ok(match wire::decode::<A::Reply>(&r) {
                Ok(r) => {
                    reply.send(r);
                    Ok(())
                }
                Err(e) => Err(RegistryError::Wire(e.to_string())),
            }),
            Ok(None) => Ok(Ok(())),
            Err(RegistryError::OwnedElsewhere { .. }) | Err(RegistryError::Stopped { .. })
                if start =>
            {
                // The owner moved (or stopped) between our lookup and its arrival there.
                self.inner.placement.forget_owner(&key);
                Err(Retry(msg, reply))
            }
            Err(RegistryError::ShuttingDown) => {
                // That node is draining: its leases are being given back; look again shortly.
                self.inner.placement.forget_owner(&key);
                tokio::time::sleep(DRAINING_RETRY).await;
                Err(Retry(msg, reply))
            }
            Err(e @ RegistryError::Unreachable { .. }) => {
                self.inner.placement.forget_owner(&key);
                Ok(Err(e))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    fn slot(&self, key: &ActorKey, create: bool) -> Option<Slot> {
        let mut slots = self.inner.slots.lock().expect("registry lock");
        if create {
            Some(slots.entry(*key).or_default().clone())
        } else {
            slots.get(key).cloned()
        }
    }

    /// The started slot for this id, starting the actor first if `start`.
    async fn get<A: KeyedActor>(
        &self,
        id: A::Id,
        start: bool,
    ) -> Result<Option<Slot>, RegistryError> {
        let key = A::key(id);
        if start && self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(RegistryError::ShuttingDown);
        }
        let Some(slot) = self.slot(&key, start) else {
            return Ok(None);
        };
        if start {
            let starting = tokio::time::timeout(
                self.inner.config.start_timeout,
                slot.get_or_try_init(|| self.start::<A>(id)),
            )
            .await
            .unwrap_or(Err(RegistryError::Start {
                key,
                reason: StartError::TimedOut,
            }));
            if let Err(e) = starting {
                // Let the next caller try a fresh start instead of a poisoned cell.
                self.inner.remove_slot_if(&key, &slot);
                return Err(e);
            }
            // A concurrent caller whose start failed may have removed this slot meanwhile.
            self.inner.keep_slot(&key, &slot);
        } else if slot.get().is_none() {
            return Ok(None);
        }
        Ok(Some(slot))
    }

    async fn start<A: KeyedActor>(&self, id: A::Id) -> Result<Running, RegistryError> {
        let key = A::key(id);
        let Some(slot) = self
            .inner
            .kinds
            .reserve(A::KIND, self.inner.config.max_live)
        else {
            metrics::counter!(crate::metrics::ACTOR_BUSY, "kind" => A::KIND).increment(1);
            return Err(RegistryError::AtCapacity { key });
        };
        let lease = self.inner.placement.claim(key).await?;
        // If this start is abandoned (timed out) after the claim, the claim goes back.
        let mut unclaim = Unclaim(Some((self.inner.placement.clone(), lease)));
        let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        let sup = Supervision::new(
            key,
            generation,
            lease,
            slot,
            Arc::downgrade(&self.inner),
            self.inner.deps.sockets.clone(),
        );
        if A::FENCED {
            // Raised before the load, so the state loaded includes every write an older
            // owner got in, and none of its later ones can land.
            let fence = crate::store::Fence::of(lease);
            if let Err(e) = self.inner.deps.store.raise_fence(&fence).await {
                let reason = match e {
                    StoreError::Rule(Rule::Fenced) => StartError::Unavailable,
                    other => StartError::from(other),
                };
                return Err(RegistryError::Start { key, reason });
            }
        }
        let actor = match A::load(id, self.inner.deps.clone(), self.clone(), sup).await {
            Ok(a) => a,
            Err(reason) => return Err(RegistryError::Start { key, reason }),
        };
        // From here the actor's supervision owns the lease.
        unclaim.0 = None;
        let arbiter = &self.inner.arbiters[arbiter_index(&key, self.inner.arbiters.len())];
        let mailbox = self.inner.config.mailbox;
        let idle = self.inner.config.idle;
        let addr = A::start_in_arbiter(arbiter, move |ctx: &mut Context<A>| {
            let mut actor = actor;
            ctx.set_mailbox_capacity(mailbox);
            actor.supervision().arm();
            // Check a few times per idle period so an idle actor stops within ~1.25× idle.
            ctx.run_interval(idle / 4, move |act: &mut A, ctx| {
                if act.supervision().quiet_for() >= idle && act.is_idle() {
                    act.supervision().stop_cleanly();
                    actix::ActorContext::stop(ctx);
                }
            });
            actor
        });
        let stopper = addr.clone();
        Ok(Running {
            addr: Box::new(addr),
            generation,
            lease,
            stop: Box::new(move |resync| stopper.do_send(StopActor { resync })),
        })
    }

    /// Stops every keyed actor cleanly and refuses new starts. Waits up to `within`.
    pub async fn shutdown(&self, within: Duration) {
        self.inner.shutting_down.store(true, Ordering::Release);
        let slots: Vec<Slot> = self
            .inner
            .slots
            .lock()
            .expect("registry lock")
            .values()
            .cloned()
            .collect();
        for s in &slots {
            if let Some(r) = s.get() {
                // Watchers on other nodes re-attach to the key's next owner; this node's own
                // sockets are closing anyway.
                (r.stop)(true);
            }
        }
        let deadline = Instant::now() + within;
        while self.live_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A message handed back by [`Registry::forward`] for another try.
struct Retry<M, R>(M, ReplyTo<R>);

/// Gives a claim back when a start is abandoned between the claim and the actor running
/// (its load failed, or the caller's start timeout dropped the future).
struct Unclaim(Option<(Arc<dyn Placement>, Lease)>);

impl Drop for Unclaim {
    fn drop(&mut self) {
        if let Some((placement, lease)) = self.0.take() {
            actix_rt::spawn(async move { placement.release(lease).await });
        }
    }
}

impl Inner {
    /// Removes the slot for `key` if it still holds `generation`.
    pub(crate) fn forget(&self, key: &ActorKey, generation: u64) {
        let mut slots = self.slots.lock().expect("registry lock");
        if slots
            .get(key)
            .and_then(|s| s.get())
            .is_some_and(|r| r.generation == generation)
        {
            slots.remove(key);
        }
    }

    fn keep_slot(&self, key: &ActorKey, slot: &Slot) {
        let mut slots = self.slots.lock().expect("registry lock");
        slots.entry(*key).or_insert_with(|| slot.clone());
    }

    fn remove_slot_if(&self, key: &ActorKey, slot: &Slot) {
        let mut slots = self.slots.lock().expect("registry lock");
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }

    /// Called from a stopped actor's drop: give its lease back to the placement.
    pub(crate) fn released(self: Arc<Self>, lease: Lease) {
        actix_rt::spawn(async move { self.placement.release(lease).await });
    }

    /// Called from a crashed actor's drop: forget it and restart it unless it crashes too often.
    pub(crate) fn crashed(self: Arc<Self>, key: ActorKey, generation: u64) {
        self.forget(&key, generation);
        metrics::counter!(crate::metrics::ACTOR_RESTARTS, "kind" => key.kind()).increment(1);
        if self.shutting_down.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let allowed = {
            let mut crashes = self.crashes.lock().expect("registry lock");
            let q = crashes.entry(key).or_default();
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
            {
                q.pop_front();
            }
            q.push_back(now);
            q.len() <= MAX_RESTARTS
        };
        if !allowed {
            tracing::error!(%key, "actor keeps crashing; not restarting until its next use");
            return;
        }
        tracing::warn!(%key, "actor crashed; restarting");
        let registry = Registry { inner: self };
        let Some(restart) = registry.inner.kinds.restart(registry.clone(), key) else {
            tracing::error!(%key, "no registered kind to restart");
            return;
        };
        actix_rt::spawn(async move {
            if let Err(e) = restart.await {
                tracing::error!(%key, error = %e, "restart failed");
            }
        });
    }
}

fn arbiter_index(key: &ActorKey, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % n as u64) as usize
}

pub(crate) type WeakInner = Weak<Inner>;

#[cfg(test)]
pub(crate) mod tests;
