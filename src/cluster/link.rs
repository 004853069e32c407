//! The node-to-node link: one persistent TCP connection from each node to each peer it
//! talks to, carrying length-prefixed MessagePack messages.
//!
//! Why TCP and not Redis pub/sub: a forwarded `ask` is one hop (node → owner → node) instead
//! of two through Redis, replies need no reply channel, and Redis carries only leases (the
//! README has the measured round trip). The dialing side sends deliveries, client frames and
//! control messages; the accepting side answers deliveries on the same connection.
//!
//! Every queue is bounded: a peer's outbound queue ([`PEER_QUEUE`]) drops frames when full
//! (counted in `studyon_cluster_dropped_total`) and refuses deliveries with `busy`, and a
//! delivery waits for its reply at most [`REPLY_TIMEOUT`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::ids::ConnId;
use crate::registry::{ASK_TIMEOUT, ActorKey, Registry, RegistryError, Remote, wire};
use crate::ws::frame::Frame;
use crate::ws::hub::ConnHub;
use crate::ws::router::{ConnRouter, Control};

/// Messages queued to one peer at most: a few seconds of a busy node's cross-node traffic;
/// past it the peer (or the link) is too slow and frames are dropped rather than queued.
pub const PEER_QUEUE: usize = 16_384;
/// Largest message on a link: the largest frame a client may get (a co-edited document's
/// state) plus room; a larger length prefix is a broken peer, and the link is cut.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Dialing a peer gives up after this: peers are on one network; a slow connect is a dead
/// peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A forwarded delivery waits this long for its reply: the owner's own ask timeout, plus a
/// second for the two hops.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(ASK_TIMEOUT.as_secs() + 1);
/// A dialer must answer the challenge within this: a peer is one network away.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Nonce length: enough that a recorded hello never answers another challenge.
const NONCE_LEN: usize = 16;

fn link_mac(secret: &[u8], nonce: &[u8], node: u64) -> hmac::Hmac<sha1::Sha1> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"studyon-link\0");
    mac.update(nonce);
    mac.update(&node.to_le_bytes());
    mac
}

/// The proof a node gives on a link: HMAC-SHA1 over a domain tag, the acceptor's nonce and
/// the dialer's id. Empty when the cluster has no secret (loopback only, see config).
pub fn proof(secret: Option<&[u8]>, nonce: &[u8], node: u64) -> Bytes {
    use hmac::Mac;
    secret.map_or_else(Bytes::new, |s| {
        Bytes::from(link_mac(s, nonce, node).finalize().into_bytes().to_vec())
    })
}

/// Whether `given` proves the secret for this nonce and node (compared in constant time).
pub fn proof_holds(secret: Option<&[u8]>, nonce: &[u8], node: u64, given: &[u8]) -> bool {
    use hmac::Mac;
    secret.is_none_or(|s| link_mac(s, nonce, node).verify_slice(given).is_ok())
}

/// Messages written before one flush: batches syscalls under load, flushes at once when idle.
const WRITE_BATCH: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
pub enum LinkMsg {
    Deliver {
        req: u64,
        key: ActorKey,
        msg: Bytes,
        start: bool,
        want_reply: bool,
    },
    /// The accepting node's first message: a fresh nonce the dialer must sign.
    Challenge {
        nonce: Bytes,
    },
    /// The dialing node's answer, first on every link: its id and, when the cluster has a
    /// secret, HMAC-SHA1(secret, tag ‖ nonce ‖ node).
    Hello {
        node: u64,
        proof: Bytes,
    },
    Reply {
        req: u64,
        result: Result<Option<Bytes>, RegistryError>,
    },
    /// One frame for many sockets on the receiving node: a room's message crosses the wire
    /// once per node, not once per socket.
    Frames {
        conns: Vec<ConnId>,
        frame: Frame,
    },
    Control {
        conn: ConnId,
        control: Control,
    },
    /// An actor on the sending node started or stopped watching a socket here.
    Watch {
        conn: ConnId,
        key: ActorKey,
        on: bool,
    },
}

/// Which sockets of this node watch which actors on which other node: when a node dies,
/// its actors' watchers here are sent to re-attach (to the keys' next owners).
#[derive(Default)]
pub struct Watches(Mutex<WatchTable>);

#[derive(Default)]
struct WatchTable {
    by_owner: HashMap<u64, HashMap<ActorKey, std::collections::HashSet<ConnId>>>,
    /// (socket, key) entries in `by_owner`, kept as it changes (the bound checks it).
    entries: usize,
}

/// Watch entries kept at most: far above sockets × attachments per socket; past it new
/// entries are not recorded (those sockets would miss a re-attach, never a frame).
const MAX_WATCHES: usize = 1_000_000;

impl WatchTable {
    fn count(keys: &HashMap<ActorKey, std::collections::HashSet<ConnId>>) -> usize {
        keys.values().map(|c| c.len()).sum()
    }
}

impl Watches {
    fn set(&self, owner: u64, conn: ConnId, key: ActorKey, on: bool) {
        let mut t = self.0.lock().expect("watches lock");
        if on {
            if t.entries >= MAX_WATCHES {
                dropped("watch_table_full");
                return;
            }
            let added = t
                .by_owner
                .entry(owner)
                .or_default()
                .entry(key)
                .or_default()
                .insert(conn);
            t.entries += usize::from(added);
        } else if let Some(keys) = t.by_owner.get_mut(&owner) {
            let mut removed = false;
            if let Some(conns) = keys.get_mut(&key) {
                removed = conns.remove(&conn);
                if conns.is_empty() {
                    keys.remove(&key);
                }
            }
            if keys.is_empty() {
                t.by_owner.remove(&owner);
            }
            t.entries -= usize::from(removed);
        }
    }

    /// Nodes whose actors sockets here watch.
    pub fn owners(&self) -> Vec<u64> {
        let t = self.0.lock().expect("watches lock");
        t.by_owner.keys().copied().collect()
    }

    /// Forgets `owner` and returns what its actors watched here.
    pub fn take(&self, owner: u64) -> Vec<(ActorKey, Vec<ConnId>)> {
        let mut t = self.0.lock().expect("watches lock");
        let Some(keys) = t.by_owner.remove(&owner) else {
            return Vec::new();
        };
        t.entries -= WatchTable::count(&keys);
        keys.into_iter()
            .map(|(k, c)| (k, c.into_iter().collect()))
            .collect()
    }

    /// Drops sockets that closed since.
    pub fn retain_conns(&self, alive: impl Fn(&ConnId) -> bool) {
        let mut t = self.0.lock().expect("watches lock");
        for keys in t.by_owner.values_mut() {
            for conns in keys.values_mut() {
                conns.retain(&alive);
            }
            keys.retain(|_, c| !c.is_empty());
        }
        t.by_owner.retain(|_, k| !k.is_empty());
        t.entries = t.by_owner.values().map(WatchTable::count).sum();
    }
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Option<Bytes>, RegistryError>>>>;

struct Peer {
    tx: mpsc::Sender<Bytes>,
    pending: Arc<Pending>,
}

/// The links from this node to its peers, and the way peers are found (their announced
/// address in Redis).
pub struct Links {
    node: u64,
    secret: Option<Arc<[u8]>>,
    prefix: String,
    redis: ConnectionManager,
    peers: Mutex<HashMap<u64, Arc<Peer>>>,
    next_req: AtomicU64,
    rt: tokio::runtime::Handle,
}

fn encode(msg: &LinkMsg) -> Option<Bytes> {
    match wire::encode(msg) {
        Ok(b) if b.len() <= MAX_MESSAGE => Some(Bytes::from(b)),
        Ok(_) => {
            tracing::warn!("node-to-node message too large; dropped");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "node-to-node message does not encode; dropped");
            None
        }
    }
}

fn dropped(reason: &'static str) {
    metrics::counter!(crate::metrics::CLUSTER_DROPPED, "reason" => reason).increment(1);
}

/// The Redis key under which a node announces its link address.
pub fn node_key(prefix: &str, node: u64) -> String {
    format!("{prefix}:node:{node:x}")
}

impl Links {
    pub fn new(
        node: u64,
        prefix: &str,
        redis: ConnectionManager,
        secret: Option<Arc<[u8]>>,
    ) -> Arc<Self> {
        Arc::new(Links {
            node,
            secret,
            prefix: prefix.to_string(),
            redis,
            peers: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(1),
            rt: tokio::runtime::Handle::current(),
        })
    }

    fn peer(self: &Arc<Self>, node: u64) -> Arc<Peer> {
        let mut peers = self.peers.lock().expect("peers lock");
        if let Some(p) = peers.get(&node) {
            return p.clone();
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let peer = Arc::new(Peer {
            tx,
            pending: Arc::new(Mutex::new(HashMap::new())),
        });
        peers.insert(node, peer.clone());
        let links = self.clone();
        let p = peer.clone();
        self.rt.spawn(async move {
            if let Err(e) = links.run_peer(node, &p, rx).await {
                tracing::warn!(peer = %format!("{node:x}"), error = %e, "link to peer closed");
            }
            // Whatever waits on this link learns now that the peer is unreachable; the next
            // message dials afresh.
            let mut peers = links.peers.lock().expect("peers lock");
            if peers.get(&node).is_some_and(|q| Arc::ptr_eq(q, &p)) {
                peers.remove(&node);
            }
            drop(peers);
            for (_, tx) in p.pending.lock().expect("pending lock").drain() {
                let _ = tx.send(Err(RegistryError::Unreachable { node }));
            }
        });
        peer
    }

    async fn address(&self, node: u64) -> anyhow::Result<SocketAddr> {
        let mut conn = self.redis.clone();
        let addr: Option<String> = redis::cmd("GET")
            .arg(node_key(&self.prefix, node))
            .query_async(&mut conn)
            .await?;
        let addr = addr.ok_or_else(|| anyhow::anyhow!("node has no heartbeat"))?;
        Ok(addr.parse()?)
    }

    async fn run_peer(
        &self,
        node: u64,
        peer: &Peer,
        rx: mpsc::Receiver<Bytes>,
    ) -> anyhow::Result<()> {
        let addr = self.address(node).await?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await??;
        stream.set_nodelay(true)?;
        let (mut read, write) = stream.into_split();
        let nonce = match tokio::time::timeout(HELLO_TIMEOUT, read_msg(&mut read)).await?? {
            Some(LinkMsg::Challenge { nonce }) => nonce,
            _ => anyhow::bail!("peer did not open with a challenge"),
        };
        let hello = encode(&LinkMsg::Hello {
            node: self.node,
            proof: proof(self.secret.as_deref(), &nonce, self.node),
        })
        .expect("hello encodes");
        let pending = peer.pending.clone();
        // Replies come back on the same connection.
        let reader = async move {
            loop {
                let (req, result) = match read_msg(&mut read).await? {
                    Some(LinkMsg::Reply { req, result }) => (req, result),
                    Some(_) => anyhow::bail!("peer sent something other than a reply"),
                    None => anyhow::bail!("peer closed the link"),
                };
                if let Some(tx) = pending.lock().expect("pending lock").remove(&req) {
                    let _ = tx.send(result);
                }
            }
        };
        let writer = write_msgs(write, Some(hello), rx);
        tokio::select! {
            r = reader => r,
            r = writer => r,
        }
    }

    fn send(self: &Arc<Self>, node: u64, msg: &LinkMsg, what: &'static str) -> bool {
        let Some(bytes) = encode(msg) else {
            return false;
        };
        match self.peer(node).tx.try_send(bytes) {
            Ok(()) => {
                metrics::counter!(crate::metrics::CLUSTER_FORWARDED, "what" => what).increment(1);
                true
            }
            Err(_) => {
                dropped("peer_queue_full");
                false
            }
        }
    }

    /// Sends one frame for these sockets of `node`.
    pub fn frames(self: &Arc<Self>, node: u64, conns: Vec<ConnId>, frame: Frame) -> bool {
        let n = conns.len() as u64;
        let ok = self.send(node, &LinkMsg::Frames { conns, frame }, "frames");
        if ok {
            metrics::counter!(crate::metrics::CLUSTER_FORWARDED_FRAMES).increment(n);
        }
        ok
    }

    pub fn control(self: &Arc<Self>, node: u64, conn: ConnId, control: Control) -> bool {
        self.send(node, &LinkMsg::Control { conn, control }, "control")
    }

    pub fn watched(self: &Arc<Self>, node: u64, conn: ConnId, key: ActorKey, on: bool) {
        self.send(node, &LinkMsg::Watch { conn, key, on }, "watch");
    }

    /// Whether `node` still announces itself (its leases live at most as long).
    pub async fn alive(&self, nodes: &[u64]) -> anyhow::Result<Vec<bool>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.redis.clone();
        let mut cmd = redis::cmd("MGET");
        for n in nodes {
            cmd.arg(node_key(&self.prefix, *n));
        }
        let v: Vec<Option<String>> = cmd.query_async(&mut conn).await?;
        Ok(v.into_iter().map(|a| a.is_some()).collect())
    }
}

/// The `Remote` the registry forwards through.
pub struct LinkRemote(pub Arc<Links>);

impl Remote for LinkRemote {
    fn deliver(
        &self,
        node: u64,
        key: ActorKey,
        msg: Vec<u8>,
        start: bool,
        want_reply: bool,
    ) -> BoxFuture<'static, Result<Option<Vec<u8>>, RegistryError>> {
        let links = self.0.clone();
        Box::pin(async move {
            if node == links.node {
                // Only a stale owner record names this node; the caller looks again.
                return Err(RegistryError::Stopped { key });
            }
            let started = Instant::now();
            let req = links.next_req.fetch_add(1, Ordering::Relaxed);
            let peer = links.peer(node);
            let (tx, rx) = oneshot::channel();
            peer.pending.lock().expect("pending lock").insert(req, tx);
            let Some(bytes) = encode(&LinkMsg::Deliver {
                req,
                key,
                msg: Bytes::from(msg),
                start,
                want_reply,
            }) else {
                peer.pending.lock().expect("pending lock").remove(&req);
                return Err(RegistryError::Wire("message too large".into()));
            };
            if let Err(e) = peer.tx.try_send(bytes) {
                peer.pending.lock().expect("pending lock").remove(&req);
                return Err(match e {
                    mpsc::error::TrySendError::Full(_) => {
                        dropped("peer_queue_full");
                        RegistryError::Busy { key }
                    }
                    // The link just failed (the peer is down); the caller may look again.
                    mpsc::error::TrySendError::Closed(_) => RegistryError::Unreachable { node },
                });
            }
            metrics::counter!(crate::metrics::CLUSTER_FORWARDED, "what" => "deliver").increment(1);
            let result = match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
                Ok(Ok(r)) => r.map(|o| o.map(|b| b.to_vec())),
                Ok(Err(_)) => Err(RegistryError::Unreachable { node }),
                Err(_) => {
                    peer.pending.lock().expect("pending lock").remove(&req);
                    Err(RegistryError::Timeout { key })
                }
            };
            metrics::histogram!(crate::metrics::CLUSTER_RTT_SECONDS)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

fn reply(tx: &mpsc::Sender<Bytes>, req: u64, result: Result<Option<Bytes>, RegistryError>) {
    if let Some(b) = encode(&LinkMsg::Reply { req, result })
        && tx.try_send(b).is_err()
    {
        // The peer stopped reading replies; it times the delivery out.
        dropped("reply_queue_full");
    }
}

/// Writes `first`, then every queued message, length-prefixed; flushes whenever the queue
/// runs dry (one syscall for a burst, none held back when idle).
async fn write_msgs<W: AsyncWriteExt + Unpin>(
    write: W,
    first: Option<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
) -> anyhow::Result<()> {
    let mut w = BufWriter::new(write);
    if let Some(m) = first {
        w.write_u32(m.len() as u32).await?;
        w.write_all(&m).await?;
        // The other side waits for it before anything else moves.
        w.flush().await?;
    }
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for m in batch.drain(..) {
            w.write_u32(m.len() as u32).await?;
            w.write_all(&m).await?;
        }
        w.flush().await?;
    }
    Ok(())
}

async fn read_msg<R: AsyncReadExt + Unpin>(r: &mut R) -> anyhow::Result<Option<LinkMsg>> {
    let len = match r.read_u32().await {
        Ok(n) => n as usize,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    anyhow::ensure!(
        len <= MAX_MESSAGE,
        "message of {len} bytes is over the limit"
    );
    let mut buf = BytesMut::zeroed(len);
    r.read_exact(&mut buf).await?;
    Ok(Some(wire::decode(&buf)?))
}

/// Accepts peers' links: delivers their messages to this node's actors and sockets.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    hub: Arc<ConnHub>,
    watches: Arc<Watches>,
    secret: Option<Arc<[u8]>>,
) {
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (registry, hub, watches, secret) = (
            registry.clone(),
            hub.clone(),
            watches.clone(),
            secret.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = serve_peer(stream, registry, hub, watches, secret).await {
                tracing::debug!(%from, error = %e, "inbound link closed");
            }
        });
    }
}

async fn serve_peer(
    stream: TcpStream,
    registry: Registry,
    hub: Arc<ConnHub>,
    watches: Arc<Watches>,
    secret: Option<Arc<[u8]>>,
) -> anyhow::Result<()> {
    let (mut read, write) = stream.into_split();
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    let challenge = encode(&LinkMsg::Challenge {
        nonce: Bytes::copy_from_slice(&nonce),
    })
    .expect("challenge encodes");
    // Replies are few (one per forwarded delivery) and each is awaited by a waiting peer.
    let (reply_tx, reply_rx) = mpsc::channel::<Bytes>(PEER_QUEUE);
    let writer = tokio::spawn(write_msgs(write, Some(challenge), reply_rx));
    let mut authed: Option<u64> = None;
    let result = async {
        // Nothing from a peer counts before its hello proves the cluster's secret.
        let peer = match tokio::time::timeout(HELLO_TIMEOUT, read_msg(&mut read)).await?? {
            Some(LinkMsg::Hello { node, proof })
                if proof_holds(secret.as_deref(), &nonce, node, &proof) =>
            {
                node
            }
            Some(LinkMsg::Hello { .. }) => {
                dropped("bad_link_proof");
                anyhow::bail!("a link whose hello does not prove the cluster secret")
            }
            _ => anyhow::bail!("a link that did not open with a hello"),
        };
        authed = Some(peer);
        while let Some(msg) = read_msg(&mut read).await? {
            match msg {
                LinkMsg::Deliver {
                    req,
                    key,
                    msg,
                    start,
                    want_reply,
                } => {
                    // Delivered in arrival order (tells from one node stay ordered); only
                    // the wait for the reply runs apart.
                    match registry
                        .deliver_wire(key, msg.to_vec(), start, want_reply)
                        .await
                    {
                        Ok(None) => reply(&reply_tx, req, Ok(None)),
                        Ok(Some(fut)) => {
                            let tx = reply_tx.clone();
                            tokio::spawn(async move {
                                let r = fut.await.map(|b| Some(Bytes::from(b)));
                                reply(&tx, req, r);
                            });
                        }
                        Err(e) => reply(&reply_tx, req, Err(e)),
                    }
                }
                LinkMsg::Frames { conns, frame } => {
                    hub.push_many(&mut conns.into_iter(), &frame);
                }
                LinkMsg::Control { conn, control } => {
                    hub.control(conn, control);
                }
                // The watching actor runs on the dialing node.
                LinkMsg::Watch { conn, key, on } => watches.set(peer, conn, key, on),
                LinkMsg::Reply { .. } | LinkMsg::Hello { .. } | LinkMsg::Challenge { .. } => {
                    anyhow::bail!("an out-of-place message on an inbound link")
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    drop(reply_tx);
    let _ = writer.await;
    if let Some(peer) = authed {
        resync_watchers(&watches, &hub, peer);
    }
    result
}

/// Sends every socket here that watches an actor on `owner` to re-attach. The frames of
/// `owner`'s actors come only over its link to us: once that link is gone, some may have
/// been lost with it (even while both nodes live on), and re-attaching resumes from the
/// socket's last `seq`. Sockets that already moved to a new owner are not watched under
/// `owner` any more, so they are left alone.
pub fn resync_watchers(watches: &Watches, hub: &ConnHub, owner: u64) {
    for (key, conns) in watches.take(owner) {
        for conn in conns {
            hub.control(conn, Control::Resync { key });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{KeyId, Kind};

    fn conn(node: u64, seq: u64) -> ConnId {
        ConnId { node, seq }
    }

    #[test]
    fn watches_by_owner_node() {
        crate::live::features(); // registers the kinds
        let w = Watches::default();
        let room = |n| ActorKey {
            kind: Kind::new("chat_room"),
            id: KeyId::One(n),
        };
        w.set(0xa, conn(1, 1), room(1), true);
        w.set(0xa, conn(1, 2), room(1), true);
        w.set(0xb, conn(1, 1), room(2), true);
        w.set(0xa, conn(1, 2), room(1), false);
        let mut owners = w.owners();
        owners.sort();
        assert_eq!(owners, vec![0xa, 0xb]);
        w.retain_conns(|c| c.seq != 9);
        assert_eq!(w.0.lock().unwrap().entries, 2);
        assert_eq!(w.take(0xa), vec![(room(1), vec![conn(1, 1)])]);
        assert_eq!(w.0.lock().unwrap().entries, 1);
        assert_eq!(w.owners(), vec![0xb]);
        w.retain_conns(|c| c.seq != 1);
        assert!(w.owners().is_empty(), "closed sockets are forgotten");
    }

    /// A peer's link to us closes while both nodes live on: the sockets here that watch
    /// its actors are sent to re-attach, since that link carried their frames.
    #[actix_rt::test]
    async fn a_closed_link_resyncs_the_sockets_it_fed() {
        crate::live::features();
        let (registry, hub) = crate::registry::tests::registry(Duration::from_secs(60), 16).await;
        let watches = Arc::new(Watches::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(
            listener,
            registry,
            hub.clone(),
            watches.clone(),
            None,
        ));
        let bound = crate::ws::hub::QueueBound {
            frames: 8,
            bytes: 1 << 16,
        };
        let mut watcher = hub.register(crate::ids::UserId(1), bound, 4).unwrap();
        let mut bystander = hub.register(crate::ids::UserId(2), bound, 4).unwrap();
        let room = ActorKey {
            kind: Kind::new("chat_room"),
            id: KeyId::One(5),
        };
        // Node 7 dials in, proves itself and says one of its actors watches a socket here.
        let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
        let nonce = match read_msg(&mut read).await.unwrap() {
            Some(LinkMsg::Challenge { nonce }) => nonce,
            other => panic!("expected a challenge, got {other:?}"),
        };
        for m in [
            LinkMsg::Hello {
                node: 7,
                proof: proof(None, &nonce, 7),
            },
            LinkMsg::Watch {
                conn: watcher.id,
                key: room,
                on: true,
            },
        ] {
            let b = encode(&m).unwrap();
            write.write_u32(b.len() as u32).await.unwrap();
            write.write_all(&b).await.unwrap();
        }
        write.flush().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while watches.owners() != vec![7] {
            assert!(Instant::now() < deadline, "the watch was not recorded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            watcher.ctl.try_recv().is_err(),
            "no resync while the link is up"
        );
        // The link breaks.
        drop(write);
        drop(read);
        let got = tokio::time::timeout(Duration::from_secs(5), watcher.ctl.recv())
            .await
            .expect("a resync after the link closed");
        assert_eq!(got, Some(Control::Resync { key: room }));
        assert!(watches.owners().is_empty());
        assert!(bystander.ctl.try_recv().is_err(), "others are left alone");
        server.abort();
    }

    #[test]
    fn link_messages_survive_the_wire() {
        crate::live::features();
        let key = ActorKey {
            kind: Kind::new("chat_room"),
            id: KeyId::Pair(3, 4),
        };
        let msgs = [
            LinkMsg::Challenge {
                nonce: Bytes::from_static(b"0123456789abcdef"),
            },
            LinkMsg::Hello {
                node: 7,
                proof: Bytes::from_static(b"p"),
            },
            LinkMsg::Deliver {
                req: 1,
                key,
                msg: Bytes::from_static(b"\x01\x02"),
                start: true,
                want_reply: false,
            },
            LinkMsg::Reply {
                req: 1,
                result: Err(RegistryError::Unreachable { node: 9 }),
            },
            LinkMsg::Frames {
                conns: vec![conn(2, 3)],
                frame: Frame::Text("{}".into()),
            },
            LinkMsg::Control {
                conn: conn(2, 3),
                control: Control::Resync { key },
            },
            LinkMsg::Watch {
                conn: conn(2, 3),
                key,
                on: true,
            },
        ];
        for m in msgs {
            let bytes = encode(&m).unwrap();
            let back: LinkMsg = wire::decode(&bytes).unwrap();
            assert_eq!(format!("{back:?}"), format!("{m:?}"));
        }
    }

    #[test]
    fn a_hello_proves_the_secret_for_this_nonce_only() {
        let secret: &[u8] = b"cluster secret";
        let p = proof(Some(secret), b"nonce-1", 7);
        assert!(proof_holds(Some(secret), b"nonce-1", 7, &p));
        assert!(!proof_holds(Some(secret), b"nonce-2", 7, &p), "replayed");
        assert!(
            !proof_holds(Some(secret), b"nonce-1", 8, &p),
            "another node's"
        );
        assert!(
            !proof_holds(Some(b"other"), b"nonce-1", 7, &p),
            "another secret"
        );
        assert!(!proof_holds(Some(secret), b"nonce-1", 7, b""), "no proof");
        // Without a secret (loopback only) any hello is taken.
        assert!(proof(None, b"n", 7).is_empty());
        assert!(proof_holds(None, b"n", 7, b""));
    }
}
