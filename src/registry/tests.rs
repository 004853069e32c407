//! Registry tests with a probe actor whose state lives in a shared "store" (a map), so a
//! restart visibly reloads it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix::{Actor, AsyncContext, Context};
use futures_util::future::BoxFuture;

use super::*;
use crate::ids::{ConnId, SessionId};
use crate::ws::hub::{ConnHub, Control};

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
    type Id = u64;
    type Msg = ProbeMsg;
    type Reply = u64;

    fn key(id: u64) -> ActorKey {
        ActorKey::Probe(id)
    }

    fn load(
        id: u64,
        _deps: Arc<Deps>,
        _r: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, anyhow::Result<Self>> {
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

async fn registry(idle: Duration, mailbox: usize) -> (Registry, Arc<ConnHub>) {
    registry_with(idle, mailbox, Arc::new(LocalPlacement)).await
}

async fn registry_with(
    idle: Duration,
    mailbox: usize,
    placement: Arc<dyn Placement>,
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
        hub: hub.clone(),
        persister,
    });
    (Registry::new(deps, placement, 2, idle, mailbox), hub)
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
    assert!(!reg.is_live(&ActorKey::Probe(1)));
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
    assert!(reg.is_live(&ActorKey::Probe(1)));
    assert_eq!(reg.ask::<Probe>(1, ProbeMsg::Get).await.unwrap(), 5);
}

#[actix_rt::test]
async fn stops_when_idle_and_reloads_state_on_next_use() {
    let (reg, _) = registry(Duration::from_millis(200), 64).await;
    reg.ask::<Probe>(2, ProbeMsg::Add(7)).await.unwrap();
    assert_eq!(loads(2), 1);
    eventually("idle stop", || !reg.is_live(&ActorKey::Probe(2))).await;
    // tell_live does not start it.
    assert!(!reg.tell_live::<Probe>(2, ProbeMsg::Get).await.unwrap());
    assert_eq!(
        reg.ask::<Probe>(2, ProbeMsg::Get).await.unwrap(),
        7,
        "state reloaded from the store"
    );
    assert_eq!(loads(2), 2);
}

#[actix_rt::test]
async fn restarts_after_a_panic_and_tells_watchers_to_resync() {
    let (reg, hub) = registry(Duration::from_secs(60), 64).await;
    let mut conn = hub.register(crate::ids::UserId(1), SessionId(1), 8);
    reg.ask::<Probe>(3, ProbeMsg::Add(4)).await.unwrap();
    reg.ask::<Probe>(3, ProbeMsg::Watch(conn.id)).await.unwrap();
    // The panicking message gets no reply.
    let r = reg.ask::<Probe>(3, ProbeMsg::Panic).await;
    assert!(matches!(r, Err(RegistryError::Stopped { .. })), "{r:?}");
    let ctl = tokio::time::timeout(Duration::from_secs(5), conn.ctl.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ctl,
        Control::Resync {
            key: ActorKey::Probe(3)
        }
    );
    // Restarted eagerly by the supervisor, with state reloaded.
    eventually("restart", || {
        loads(3) == 2 && reg.is_live(&ActorKey::Probe(3))
    })
    .await;
    assert_eq!(reg.ask::<Probe>(3, ProbeMsg::Get).await.unwrap(), 4);
}

#[actix_rt::test]
async fn a_full_mailbox_answers_busy() {
    let (reg, _) = registry(Duration::from_secs(60), 8).await;
    reg.ask::<Probe>(4, ProbeMsg::Get).await.unwrap();
    // Block the actor, then flood it.
    reg.tell::<Probe>(4, ProbeMsg::Sleep(500)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let busy = AtomicUsize::new(0);
    for _ in 0..64 {
        if let Err(RegistryError::Busy { key }) = reg.tell::<Probe>(4, ProbeMsg::Get).await {
            assert_eq!(key, ActorKey::Probe(4));
            busy.fetch_add(1, Ordering::Relaxed);
        }
    }
    assert!(
        busy.load(Ordering::Relaxed) > 0,
        "a bounded mailbox must refuse some sends"
    );
    // Once drained it answers again.
    eventually("drain", || true).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(reg.ask::<Probe>(4, ProbeMsg::Get).await.unwrap(), 0);
}

#[actix_rt::test]
async fn keeps_crashing_actors_down_after_the_limit() {
    let (reg, _) = registry(Duration::from_secs(60), 64).await;
    for _ in 0..=MAX_RESTARTS {
        let _ = reg.ask::<Probe>(5, ProbeMsg::Panic).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !reg.is_live(&ActorKey::Probe(5)),
        "no restart past the limit"
    );
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
    async fn claim(&self, key: ActorKey) -> Result<(), RegistryError> {
        let ActorKey::Probe(id) = key else {
            return Ok(());
        };
        if id % 2 == 1 {
            return Err(RegistryError::OwnedElsewhere {
                key,
                node: "node-b".into(),
            });
        }
        self.log.lock().unwrap().push(format!("claim {id}"));
        Ok(())
    }
    async fn release(&self, key: ActorKey) {
        if let ActorKey::Probe(id) = key {
            self.log.lock().unwrap().push(format!("release {id}"));
        }
    }
}

#[actix_rt::test]
async fn keys_claimed_elsewhere_do_not_start_here_and_stopped_keys_are_released() {
    let placement = Arc::new(EvenOnly::default());
    let (reg, _) = registry_with(Duration::from_millis(200), 64, placement.clone()).await;
    let r = reg.ask::<Probe>(21, ProbeMsg::Get).await;
    assert!(
        matches!(r, Err(RegistryError::OwnedElsewhere { .. })),
        "{r:?}"
    );
    assert!(!reg.is_live(&ActorKey::Probe(21)));
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
