//! Cluster mode (on when `--redis-url` is set): every actor key is owned by exactly one node
//! through a Redis lease ([`placement`]), messages for keys owned elsewhere and frames for
//! sockets on other nodes cross a persistent node-to-node link ([`link`], [`router`]), and
//! nodes announce their link address in Redis with a heartbeat.
//!
//! A node's id is random per process start: a restarted node is a new node, so nothing can
//! confuse its new claims with its previous life's.

pub mod limits;
pub mod link;
pub mod placement;
pub mod router;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Settings;
use crate::registry::Registry;
use crate::ws::hub::ConnHub;

pub use link::{LinkRemote, Links, Watches};
pub use placement::RedisPlacement;
pub use router::ClusterRouter;

/// A node re-announces itself this often.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A node that stopped announcing is forgotten after this: the same as a lease, so a dead
/// node's address and its leases go away together.
pub const NODE_TTL: Duration = placement::LEASE_TTL;
/// One Redis command may take this long before it counts as failed: Redis answers in well
/// under a millisecond on one network; a stall must not hold a claim or a renewal round.
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Connecting to Redis gives up after this (then the manager retries with backoff).
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// This node's part of the cluster.
pub struct Cluster {
    pub node: u64,
    pub prefix: String,
    pub redis: ConnectionManager,
    pub placement: Arc<RedisPlacement>,
    pub links: Arc<Links>,
    /// Login, sign-up and write limits shared by every node.
    pub limits: limits::RedisLimits,
    /// Sockets here watched by actors on other nodes.
    pub watches: Arc<Watches>,
    /// What every link proves (cluster mode with a secret).
    secret: Option<Arc<[u8]>>,
    /// Where peers dial this node.
    pub advertise: SocketAddr,
    listener: std::sync::Mutex<Option<tokio::net::TcpListener>>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// How often this node checks that the nodes whose actors its sockets watch still live: a
/// dead node's watchers re-attach within this of its leases lapsing.
const OWNER_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Sends the watchers of a dead node's actors to re-attach (the clients re-join with their
/// last seq and the keys start on live nodes), and forgets closed sockets' entries.
async fn watch_owners(links: Arc<Links>, watches: Arc<Watches>, hub: Arc<ConnHub>) {
    let mut every = tokio::time::interval(OWNER_CHECK_EVERY);
    loop {
        every.tick().await;
        watches.retain_conns(|c| hub.user_of(*c).is_some());
        let owners = watches.owners();
        let Ok(alive) = links.alive(&owners).await else {
            continue; // Redis unreachable: decide nothing.
        };
        for (owner, alive) in owners.into_iter().zip(alive) {
            if alive {
                continue;
            }
            tracing::warn!(node = %format!("{owner:x}"), "node gone; its watchers re-attach");
            link::resync_watchers(&watches, &hub, owner);
        }
    }
}

/// Sets this node's heartbeat key (its link address) for another [`NODE_TTL`].
async fn announce(mut redis: ConnectionManager, key: &str, addr: &str) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(key)
        .arg(addr)
        .arg("PX")
        .arg(NODE_TTL.as_millis() as u64)
        .query_async(&mut redis)
        .await
}

/// The Redis the unit tests use (`ops/test.sh` starts it); an unreachable one fails the test.
#[cfg(test)]
pub(crate) async fn test_redis() -> ConnectionManager {
    let url =
        std::env::var("STUDYON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    connect_redis(&url)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is not reachable ({e}): ops/test.sh starts it"))
}

/// A Redis connection that reconnects by itself (after a Redis restart, say).
pub async fn connect_redis(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
        // Reconnect quickly: leases lapse in seconds.
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}

impl Cluster {
    /// Connects to Redis and binds the node-to-node listener.
    pub async fn connect(settings: &Settings, url: &str, node: u64) -> anyhow::Result<Cluster> {
        let redis = connect_redis(url)
            .await
            .map_err(|e| anyhow::anyhow!("REDIS_URL: cannot reach Redis: {e}"))?;
        let listener = tokio::net::TcpListener::bind(settings.cluster_listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!("STUDYON_CLUSTER_LISTEN {}: {e}", settings.cluster_listen)
            })?;
        let bound = listener.local_addr()?;
        let advertise = settings.cluster_advertise.unwrap_or(bound);
        let prefix = settings.redis_prefix.clone();
        let secret: Option<Arc<[u8]>> = settings
            .cluster_secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| Arc::from(s.as_bytes()));
        Ok(Cluster {
            secret: secret.clone(),
            node,
            placement: Arc::new(RedisPlacement::new(node, &prefix, redis.clone())),
            links: Links::new(node, &prefix, redis.clone(), secret.clone()),
            watches: Arc::new(Watches::default()),
            limits: limits::RedisLimits::new(&prefix, redis.clone()),
            prefix,
            redis,
            advertise,
            listener: std::sync::Mutex::new(Some(listener)),
            tasks: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Starts serving peers, announcing this node and renewing its leases.
    pub async fn start(&self, registry: Registry, hub: Arc<ConnHub>) -> anyhow::Result<()> {
        registry.set_remote(Arc::new(LinkRemote(self.links.clone())));
        let (key, addr) = (
            link::node_key(&self.prefix, self.node),
            self.advertise.to_string(),
        );
        announce(self.redis.clone(), &key, &addr).await?;
        let listener = self
            .listener
            .lock()
            .expect("listener lock")
            .take()
            .expect("started once");
        let mut tasks = self.tasks.lock().expect("tasks lock");
        tasks.push(tokio::spawn(link::serve(
            listener,
            registry.clone(),
            hub.clone(),
            self.watches.clone(),
            self.secret.clone(),
        )));
        tasks.push(tokio::spawn(watch_owners(
            self.links.clone(),
            self.watches.clone(),
            hub,
        )));
        tasks.push(tokio::spawn(self.placement.clone().run_renewals(registry)));
        let redis = self.redis.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = announce(redis.clone(), &key, &addr).await {
                    tracing::warn!(error = %e, "node heartbeat failed");
                }
            }
        }));
        tracing::info!(node = %format!("{:x}", self.node), advertise = %self.advertise, "cluster node up");
        Ok(())
    }

    /// Leaves the cluster at the end of a drain: waits (bounded) for the stopped actors'
    /// leases to be given back, stops announcing and renewing, and removes the heartbeat.
    pub async fn leave(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.placement.held_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
        let mut redis = self.redis.clone();
        let _: redis::RedisResult<()> = redis::cmd("DEL")
            .arg(link::node_key(&self.prefix, self.node))
            .query_async(&mut redis)
            .await;
    }
}
