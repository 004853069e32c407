//! Registry tests with a probe actor whose state lives in a shared "store" (a map), so a
//! restart visibly reloads it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix::{Actor, AsyncContext, Context};
use futures_util::future::BoxFuture;

use super::*;
use crate::ids::ConnId;
use crate::ws::hub::ConnHub;
use crate::ws::router::{Control, Sockets};

/// The probe's durable state: key → counter, plus how many times each was loaded.
fn backing() -> &'static Mutex<HashMap<u64, (u64, usize)>> {
    static B: OnceLock<Mutex<HashMap<u64, (u64, usize)>>> = OnceLock::new();
    B.get_or_init(Default::default)
}

pub(super) struct Probe {
    id: u64,
    count: u64,
    sup: Supervision,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum ProbeMsg {
    Add(u64),
    Get,
    Watch(ConnId),
    Panic,
    /// Blocks the actor for this many ms (to fill its mailbox).
    Sleep(u64),
}

impl Actor for Probe {
    type Context = Context<Self>;
}

impl KeyedActor for Probe {
    const KIND: &'static str = "probe";
    type Id = u64;
    type Msg = ProbeMsg;
    type Reply = u64;

    fn load(
        id: u64,
        _deps: Arc<Deps>,
        _r: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, Result<Self, StartError>> {
        Box::pin(async move {
            let mut b = backing().lock().unwrap();
            let e = b.entry(id).or_insert((0, 0));
            e.1 += 1;
            Ok(Probe {
                id,
                count: e.0,
                sup,
            })
        })
    }

    fn supervision(&mut self) -> &mut Supervision {
        &mut self.sup
    }

    fn is_idle(&mut self) -> bool {
        true
    }

    fn handle_msg(&mut self, msg: ProbeMsg, reply: ReplyTo<u64>, ctx: &mut Context<Self>) {
        match msg {
            ProbeMsg::Add(n) => {
                self.count += n;
                backing().lock().unwrap().get_mut(&self.id).unwrap().0 = self.count;
                reply.send(self.count);
            }
            ProbeMsg::Get => reply.send(self.count),
            ProbeMsg::Watch(c) => {
                self.sup.watch(c);
                reply.send(0);
            }
            ProbeMsg::Panic => panic!("probe asked to panic"),
            ProbeMsg::Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                let _ = ctx.address();
                reply.send(0);
            }
        }
    }
}

keyed_actor_handlers!(Probe);

fn loads(id: u64) -> usize {
    backing().lock().unwrap().get(&id).map_or(0, |e| e.1)
}

fn key(id: u64) -> ActorKey {
    Probe::key(id)
}

/// A registry on an in-memory store, and its socket hub (the cluster link's tests use it).
pub(crate) async fn registry(idle: Duration, mailbox: usize) -> (Registry, Arc<ConnHub>) {
    registry_with(
        idle,
        mailbox,
        Arc::new(LocalPlacement::new()),
        START_TIMEOUT,
    )
    .await
}

async fn registry_with(
    idle: Duration,
    mailbox: usize,
    placement: Arc<dyn Placement>,
    start_timeout: Duration,
) -> (Registry, Arc<ConnHub>) {
    let store: Arc<dyn Store> = Arc::new(
        crate::store::SqliteStore::connect("sqlite::memory:", 1)
            .await
            .unwrap(),
    );
    let hub = Arc::new(ConnHub::new(1));
    let persister = Persister::start(store.clone(), 16);
    let deps = Arc::new(Deps {
        store,
        sockets: Sockets::new(hub.clone()),
        persister,
        doc_max_bytes: 2 << 20,
        ext: Default::default(),
    });
    let mut kinds = ActorKinds::new();
    kinds.register::<Probe>();
    let config = RegistryConfig {
        arbiters: 2,
        idle,
        mailbox,
        start_timeout,
        max_live: 1000,
    };
    (Registry::new(deps, Arc::new(kinds), placement, config), hub)
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[actix_rt::test]
async fn starts_on_first_use_and_keeps_one_actor_per_key() {
    let (reg, _) = registry(Duration::from_secs(60), 64).await;
    assert!(!reg.is_running_here(&key(1)));
    // Concurrent first uses start exactly one actor.
    let (a, b) = tokio::join!(
        reg.ask::<Probe>(1, ProbeMsg::Add(2)),
        reg.ask::<Probe>(1, ProbeMsg::Add(3))
    );
    assert_eq!(
        a.unwrap() + b.unwrap(),
        2 + 5,
        "both adds hit the same counter"
    );
    assert_eq!(loads(1), 1);
    assert!(reg.is_running_here(&key(1)));
    assert_eq!(reg.ask::<Probe>(1, ProbeMsg::Get).await.unwrap(), 5);
}

#[actix_rt::test]
async fn stops_when_idle_and_reloads_state_on_next_use() {
    let (reg, _) = registry(Duration::from_millis(200), 64).await;
    reg.ask::<Probe>(2, ProbeMsg::Add(7)).await.unwrap();
    assert_eq!(loads(2), 1);
    eventually("idle stop", || !reg.is_running_here(&key(2))).await;
    // tell_live does not start it.
    assert!(
        !reg.tell_if_running::<Probe>(2, ProbeMsg::Get)
            .await
            .unwrap()
    );
    assert_eq!(
        reg.ask_if_running::<Probe>(2, ProbeMsg::Get).await.unwrap(),
        None,
        "a stopped actor is not started to answer"
    );
    assert_eq!(loads(2), 1);
    assert_eq!(
        reg.ask::<Probe>(2, ProbeMsg::Get).await.unwrap(),
        7,
        "state reloaded from the store"
    );
    assert_eq!(loads(2), 2);
    assert_eq!(
        reg.ask_if_running::<Probe>(2, ProbeMsg::Get).await.unwrap(),
        Some(7),
        "a running actor answers"
    );
}

#[actix_rt::test]
async fn restarts_after_a_panic_and_tells_watchers_to_resync() {
    let (reg, hub) = registry(Duration::from_secs(60), 64).await;
    let mut conn = hub
        .register(
            crate::ids::UserId(1),
            crate::ws::hub::QueueBound {
                frames: 8,
                bytes: 1 << 20,
            },
            4,
        )
        .unwrap();
    reg.ask::<Probe>(3, ProbeMsg::Add(4)).await.unwrap();
    reg.ask::<Probe>(3, ProbeMsg::Watch(conn.id)).await.unwrap();
    // The panicking message gets no reply.
    let r = reg.ask::<Probe>(3, ProbeMsg::Panic).await;
    assert!(matches!(r, Err(RegistryError::Stopped { .. })), "{r:?}");
    let ctl = tokio::time::timeout(Duration::from_secs(5), conn.ctl.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ctl, Control::Resync { key: key(3) });
    // Restarted eagerly by the supervisor, with state reloaded.
    eventually("restart", || loads(3) == 2 && reg.is_running_here(&key(3))).await;
    assert_eq!(reg.ask::<Probe>(3, ProbeMsg::Get).await.unwrap(), 4);
}

#[actix_rt::test]
async fn a_full_mailbox_answers_busy() {
    let (reg, _) = registry(Duration::from_secs(60), 8).await;
    reg.ask::<Probe>(4, ProbeMsg::Get).await.unwrap();
    // Block the actor, then flood it.
    reg.tell::<Probe>(4, ProbeMsg::Sleep(500)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = AtomicUsize::new(0);
    for _ in 0..64 {
        if let Err(RegistryError::Busy { key: busy }) = reg.tell::<Probe>(4, ProbeMsg::Get).await {
            assert_eq!(busy, key(4));
            refused.fetch_add(1, Ordering::Relaxed);
        }
    }
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "a bounded mailbox must refuse some sends"
    );
    // Once the sleep is over and the queue drained, it answers again.
    let mut answered = None;
    for _ in 0..100 {
        match reg.ask::<Probe>(4, ProbeMsg::Get).await {
            Err(RegistryError::Busy { .. }) => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => {
                answered = Some(other);
                break;
            }
        }
    }
    assert_eq!(answered, Some(Ok(0)), "the drained actor answers");
}

#[actix_rt::test]
async fn keeps_crashing_actors_down_after_the_limit() {
    let (reg, _) = registry(Duration::from_secs(60), 64).await;
    for _ in 0..=MAX_RESTARTS {
        let _ = reg.ask::<Probe>(5, ProbeMsg::Panic).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!reg.is_running_here(&key(5)), "no restart past the limit");
    // Next use still starts it.
    assert_eq!(reg.ask::<Probe>(5, ProbeMsg::Get).await.unwrap(), 0);
}

#[actix_rt::test]
async fn shutdown_stops_everything_and_refuses_new_starts() {
    let (reg, _) = registry(Duration::from_secs(60), 64).await;
    for id in 10..14 {
        reg.ask::<Probe>(id, ProbeMsg::Get).await.unwrap();
    }
    assert_eq!(reg.live_count(), 4);
    reg.shutdown(Duration::from_secs(2)).await;
    assert_eq!(reg.live_count(), 0);
    assert!(matches!(
        reg.ask::<Probe>(10, ProbeMsg::Get).await,
        Err(RegistryError::ShuttingDown)
    ));
}

/// A placement that owns only even keys and records what was claimed and released.
#[derive(Default)]
struct EvenOnly {
    log: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Placement for EvenOnly {
    async fn claim(&self, key: ActorKey) -> Result<Lease, RegistryError> {
        let id = key.id_of::<Probe>().expect("probe keys");
        if id % 2 == 1 {
            return Err(RegistryError::OwnedElsewhere { key, node: 0xb });
        }
        self.log.lock().unwrap().push(format!("claim {id}"));
        Ok(Lease { key, token: id })
    }
    async fn release(&self, lease: Lease) {
        let id = lease.key.id_of::<Probe>().expect("probe keys");
        self.log.lock().unwrap().push(format!("release {id}"));
    }
}

#[actix_rt::test]
async fn keys_claimed_elsewhere_do_not_start_here_and_stopped_keys_are_released() {
    let placement = Arc::new(EvenOnly::default());
    let (reg, _) = registry_with(
        Duration::from_millis(200),
        64,
        placement.clone(),
        START_TIMEOUT,
    )
    .await;
    let r = reg.ask::<Probe>(21, ProbeMsg::Get).await;
    assert!(
        matches!(r, Err(RegistryError::OwnedElsewhere { .. })),
        "{r:?}"
    );
    assert!(!reg.is_running_here(&key(21)));
    assert_eq!(
        loads(21),
        0,
        "no state was loaded for a key owned elsewhere"
    );
    reg.ask::<Probe>(22, ProbeMsg::Add(1)).await.unwrap();
    eventually("idle stop and release", || {
        placement.log.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(
        *placement.log.lock().unwrap(),
        vec!["claim 22".to_string(), "release 22".to_string()]
    );
}

/// The local placement with releases held back, as a remote placement's can arrive late.
struct LateRelease {
    inner: LocalPlacement,
    delay: Duration,
    claim_delay: Duration,
}

#[async_trait::async_trait]
impl Placement for LateRelease {
    async fn claim(&self, key: ActorKey) -> Result<Lease, RegistryError> {
        tokio::time::sleep(self.claim_delay).await;
        self.inner.claim(key).await
    }
    async fn release(&self, lease: Lease) {
        tokio::time::sleep(self.delay).await;
        self.inner.release(lease).await;
    }
}

#[actix_rt::test]
async fn a_late_release_of_a_stopped_actor_never_frees_the_newer_claim() {
    let placement = Arc::new(LateRelease {
        inner: LocalPlacement::new(),
        delay: Duration::from_millis(300),
        claim_delay: Duration::ZERO,
    });
    let (reg, _) = registry_with(
        Duration::from_millis(100),
        64,
        placement.clone(),
        START_TIMEOUT,
    )
    .await;
    reg.ask::<Probe>(30, ProbeMsg::Add(1)).await.unwrap();
    let first = placement.inner.holder(&key(30)).expect("claimed");
    // The actor stops for idleness; its release is on its way (held back 300 ms) when the
    // next use starts a new actor with a new claim.
    eventually("idle stop", || !reg.is_running_here(&key(30))).await;
    reg.ask::<Probe>(30, ProbeMsg::Get).await.unwrap();
    let second = placement.inner.holder(&key(30)).expect("claimed again");
    assert!(second > first, "every claim gets a larger token");
    // The old release lands now: it must not free the newer claim. (Messages keep the new
    // actor from idling out meanwhile.)
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        reg.ask::<Probe>(30, ProbeMsg::Get).await.unwrap();
    }
    assert!(reg.is_running_here(&key(30)));
    assert_eq!(
        placement.inner.holder(&key(30)),
        Some(second),
        "the newer claim survives the older actor's release"
    );
}

#[actix_rt::test]
async fn a_slow_placement_times_a_start_out_and_gives_the_claim_back() {
    let placement = Arc::new(LateRelease {
        inner: LocalPlacement::new(),
        delay: Duration::ZERO,
        claim_delay: Duration::from_millis(400),
    });
    let (reg, _) = registry_with(
        Duration::from_secs(60),
        64,
        placement.clone(),
        Duration::from_millis(100),
    )
    .await;
    let started = std::time::Instant::now();
    let r = reg.ask::<Probe>(31, ProbeMsg::Get).await;
    assert_eq!(
        r,
        Err(RegistryError::Start {
            key: key(31),
            reason: StartError::TimedOut
        })
    );
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "bounded by the start timeout"
    );
    assert!(!reg.is_running_here(&key(31)));
    assert_eq!(loads(31), 0, "nothing was loaded");
    assert_eq!(
        crate::error::ApiError::from(r.unwrap_err()).code(),
        "unavailable",
        "the caller is told to retry"
    );
}

#[test]
fn keys_name_their_kind_and_id_and_cross_the_wire() {
    let mut kinds = ActorKinds::new();
    kinds.register::<Probe>();
    let k = key(7);
    assert_eq!(k.to_string(), "probe/7");
    assert_eq!(k.id_of::<Probe>(), Some(7));
    let bytes = wire::encode(&k).unwrap();
    assert_eq!(wire::decode::<ActorKey>(&bytes).unwrap(), k);
    // A kind no build registered does not decode.
    let bogus = wire::encode(&serde_json::json!({"kind": "nope", "id": {"One": 1}})).unwrap();
    assert!(wire::decode::<ActorKey>(&bogus).is_err());
    assert_eq!(kinds.resync_scope(&k), Some(ResyncScope::kind("probe")));
}
