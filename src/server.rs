//! Wiring: build the shared state, run the HTTP server, shut down gracefully.
//!
//! Shutdown order (SIGTERM/SIGINT, or [`RunningServer::shutdown`]): mark not-ready, stop
//! accepting and close the listener, close every socket with 1001 and a reconnect hint, stop
//! keyed actors (in a cluster: give their leases back), drain in-flight requests, flush the
//! persistence actor, close the store. All within
//! `STUDYON_SHUTDOWN_SECS` (at most 9 s) so the process exits inside 10 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::{LoginThrottle, throttle};
use crate::config::Settings;
use crate::persist::Persister;
use crate::ratelimit::{KeyedBuckets, Policy};
use crate::registry::{Deps, LocalPlacement, Placement, Registry, RegistryConfig};
use crate::storage::ObjectStore;
use crate::store::{self, Store};
use crate::ws::close_code;
use crate::ws::family::Endpoint;
use crate::ws::hub::ConnHub;
use crate::ws::router::{ConnRouter, Sockets};

/// Durable writes that may wait for a commit before callers get `busy`: a few group commits'
/// worth at MAX_BATCH each.
pub const PERSIST_MAILBOX: usize = 4096;
/// Uploads spooling at once on this node: each holds a temp file and a connection for up to
/// minutes; beyond this, callers get `busy` instead of filling the disk.
const MAX_CONCURRENT_UPLOADS: usize = 32;
/// How often free heap memory is handed back to the system.
const MEMORY_TRIM_EVERY: Duration = Duration::from_secs(30);

/// Everything request handlers and connections share.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    /// This node's sockets (the shell registers here; actors reach sockets through the
    /// router in `registry.deps().sockets`).
    pub hub: Arc<ConnHub>,
    /// The `/ws` endpoint: the live features' families.
    pub ws: Arc<Endpoint>,
    /// `/ws?binary=1`: the families that take binary frames, with no JSON at all.
    pub ws_binary: Arc<Endpoint>,
    /// The features' own endpoints, by name (`/ws/doc/{post_id}` is `doc`).
    pub endpoints: std::collections::HashMap<&'static str, Arc<Endpoint>>,
    pub persister: Persister,
    pub throttle: LoginThrottle,
    /// Unknown session tokens per client address (see `auth::throttle::TokenGate`).
    pub token_gate: throttle::TokenGate,
    /// Proxies whose `X-Forwarded-For` is believed (see `http::client_ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Sign-ups per client address.
    pub signups: KeyedBuckets<std::net::IpAddr>,
    /// State-changing requests per user (socket writes count here too).
    pub writes: KeyedBuckets<crate::ids::UserId>,
    /// Sessions whose user is over the write budget, by token hash, until it refills.
    pub refused_writes: crate::ratelimit::RefusedUntil<Vec<u8>>,
    /// Socket messages per user, across all their sockets.
    pub socket_rates: KeyedBuckets<crate::ids::UserId>,
    /// Origins accepted for state-changing requests and socket upgrades.
    pub origins: Vec<String>,
    pub metrics: PrometheusHandle,
    /// File bytes (local directory or S3).
    pub objects: Arc<dyn ObjectStore>,
    /// Where uploads are spooled before they are stored.
    pub spool_dir: std::path::PathBuf,
    /// Uploads in flight on this node, and per user.
    pub uploads: crate::storage::slots::UploadSlots,
    shutting_down: AtomicBool,
    /// This node's part of the cluster (cluster mode only).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl AppState {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Takes from the shared buckets in cluster mode; `None` on a single node, or when Redis
    /// cannot be reached (then the node's own buckets still hold).
    async fn take_shared(&self, buckets: &[(String, Policy)]) -> Option<Result<(), Duration>> {
        let c = self.cluster.as_ref()?;
        match c.limits.take(buckets).await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "shared rate limit unreachable; using this node's");
                None
            }
        }
    }

    /// Spends one of `user`'s writes (HTTP and socket writes share the budget).
    pub async fn take_write(&self, user: crate::ids::UserId) -> Result<(), Duration> {
        let bucket = [(format!("writes:{}", user.0), self.writes.policy())];
        match self.take_shared(&bucket).await {
            Some(r) => r,
            None => self.writes.take(user, Instant::now()),
        }
    }

    /// Spends one sign-up of a client address.
    pub async fn take_signup(&self, ip: std::net::IpAddr) -> Result<(), Duration> {
        let bucket = [(format!("signups:{ip}"), self.signups.policy())];
        match self.take_shared(&bucket).await {
            Some(r) => r,
            None => self.signups.take(ip, Instant::now()),
        }
    }

    /// Spends one login attempt: the address's, and the account's unless the address is
    /// `known` to the account (see `auth::throttle`).
    pub async fn check_login(
        &self,
        login_id: &str,
        ip: Option<std::net::IpAddr>,
        known: bool,
    ) -> Result<(), Duration> {
        use sha2::Digest;
        let mut buckets = Vec::with_capacity(2);
        if let Some(ip) = ip {
            buckets.push((format!("login:ip:{ip}"), throttle::PER_IP));
        }
        if !known {
            // Hashed: any string may be typed as a login id; the key stays short.
            let id = hex::encode(&sha2::Sha256::digest(login_id.as_bytes())[..16]);
            buckets.push((format!("login:account:{id}"), throttle::PER_ACCOUNT));
        }
        match self.take_shared(&buckets).await {
            Some(r) => r,
            None => self.throttle.check(login_id, ip, known, Instant::now()),
        }
    }
}

/// A started server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served (its own listener), if enabled.
    pub metrics_addr: Option<SocketAddr>,
    metrics_handle: Option<ServerHandle>,
    pub state: web::Data<AppState>,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Opens the store, applies migrations, and starts serving. Must run inside an actix System.
pub async fn start(settings: Settings) -> anyhow::Result<RunningServer> {
    settings.validate()?;
    let settings = Arc::new(settings);
    let store = store::open(&settings).await?;
    store.migrate().await?;
    let objects = crate::storage::open(&settings).await?;
    // Spool files left by a killed process belong to uploads that were never acknowledged.
    let spool_dir = settings.data_dir.join("tmp");
    let _ = std::fs::remove_dir_all(&spool_dir);
    std::fs::create_dir_all(&spool_dir)?;

    let persister = Persister::start(store.clone(), PERSIST_MAILBOX);
    let mut node = [0u8; 8];
    getrandom::fill(&mut node)?;
    let node = u64::from_le_bytes(node);
    let hub = Arc::new(ConnHub::new(node));
    let cluster = match &settings.redis_url {
        Some(url) => Some(Arc::new(
            crate::cluster::Cluster::connect(&settings, url, node).await?,
        )),
        None => None,
    };
    // One seam each for where actors run and where sockets are: this node alone, or the
    // cluster (Redis leases, node-to-node links).
    let (router, placement): (Arc<dyn ConnRouter>, Arc<dyn Placement>) = match &cluster {
        Some(c) => (
            Arc::new(crate::cluster::ClusterRouter::new(
                node,
                hub.clone(),
                c.links.clone(),
            )),
            c.placement.clone(),
        ),
        None => (hub.clone(), Arc::new(LocalPlacement::new())),
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let features = crate::live::features();
    let mut ext = crate::registry::Extensions::default();
    for make in &features.resources {
        ext.insert(make(&settings)?);
    }
    let registry = Registry::new(
        Arc::new(Deps {
            store: store.clone(),
            sockets: Sockets::new(router),
            persister: persister.clone(),
            doc_max_bytes: settings.doc_max_bytes,
            ext,
        }),
        Arc::new(features.kinds),
        placement,
        RegistryConfig {
            arbiters: cores,
            idle: Duration::from_secs(settings.actor_idle_secs),
            mailbox: settings.actor_mailbox,
            start_timeout: crate::registry::START_TIMEOUT,
            max_live: settings.actor_max_live,
        },
    );

    if let Some(c) = &cluster {
        c.start(registry.clone(), hub.clone()).await?;
    }

    let listener = std::net::TcpListener::bind(settings.listen)?;
    let addr = listener.local_addr()?;
    let state = web::Data::new(AppState {
        origins: settings.allowed_origins(addr),
        settings: settings.clone(),
        store: store.clone(),
        registry,
        hub,
        ws: Arc::new(Endpoint::json(features.families)),
        ws_binary: Arc::new(Endpoint::binary(features.binary_families)),
        endpoints: features
            .endpoints
            .into_iter()
            .map(|(name, e)| (name, Arc::new(e)))
            .collect(),
        persister,
        throttle: LoginThrottle::default(),
        token_gate: throttle::TokenGate::default(),
        trusted_proxies: crate::http::client_ip::parse_nets(&settings.trusted_proxies)
            .map_err(anyhow::Error::msg)?,
        signups: KeyedBuckets::new(
            Policy::new(settings.signup_burst, throttle::SIGNUP_REFILL_PER_SECOND),
            throttle::SIGNUP_TRACKED,
        ),
        writes: KeyedBuckets::new(
            Policy::new(settings.write_burst, throttle::USER_WRITES_PER_SECOND),
            throttle::USER_WRITES_TRACKED,
        ),
        refused_writes: crate::ratelimit::RefusedUntil::new(throttle::USER_WRITES_TRACKED),
        socket_rates: KeyedBuckets::new(
            crate::ws::conn::socket_policy(settings.ws_rate),
            crate::ws::conn::SOCKET_RATE_TRACKED,
        ),
        metrics: crate::metrics::handle(),
        objects,
        spool_dir,
        uploads: crate::storage::slots::UploadSlots::new(
            MAX_CONCURRENT_UPLOADS,
            settings.uploads_per_user,
        ),
        shutting_down: AtomicBool::new(false),
        cluster,
    });

    let app_state = state.clone();
    let workers = if settings.workers == 0 {
        cores
    } else {
        settings.workers
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(crate::http::json_config())
            .app_data(crate::http::path_config())
            .wrap(from_fn(crate::http::edge))
            .configure(|cfg| {
                crate::http::routes(cfg);
            })
            .default_service(web::to(crate::http::fallback))
    })
    // Every connection keeps a handle to cut it if a socket's close cannot complete (a peer
    // that stopped reading); see `ws::transport`.
    .on_connect(|conn, ext| {
        if let Some(socket) = crate::ws::transport::ConnSocket::capture(conn) {
            ext.insert(Arc::new(socket));
        }
    })
    .workers(workers)
    // Live frames are small: without TCP_NODELAY, Nagle holds each one until the peer's
    // delayed ACK (up to 40 ms on Linux), which is exactly the latency a chat must not have.
    .tcp_nodelay(true)
    .disable_signals()
    .shutdown_timeout(settings.shutdown_secs)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);

    // Metrics on their own listener: the app port is public, the scraper's need not be.
    let (metrics_addr, metrics_handle) = match settings.metrics_addr() {
        None => (None, None),
        Some(at) => {
            let listener = std::net::TcpListener::bind(at).map_err(|e| {
                anyhow::anyhow!("STUDYON_METRICS_LISTEN {at}: {e} (choose another address, or off)")
            })?;
            let bound = listener.local_addr()?;
            let metrics_state = state.clone();
            let metrics_server = HttpServer::new(move || {
                App::new()
                    .app_data(metrics_state.clone())
                    .route("/metrics", web::get().to(crate::http::ops::metrics))
            })
            .workers(1)
            .disable_signals()
            .shutdown_timeout(1)
            .listen(listener)?
            .run();
            let h = metrics_server.handle();
            tokio::spawn(metrics_server);
            (Some(bound), Some(h))
        }
    };

    // Scheduled jobs (orphan sweep, session purge, recruitment close, study reminders), each
    // run once now and then on its schedule; the lock lets one node of a cluster run a fire
    // (a single node takes it in process).
    let job_lock: Arc<dyn crate::jobs::JobLock> = match &state.cluster {
        Some(c) => Arc::new(crate::jobs::RedisJobLock::with_prefix(
            c.redis.clone(),
            format!("{}:", c.prefix),
        )),
        None => Arc::new(crate::jobs::LocalJobLock::new()),
    };
    crate::jobs::start(
        crate::jobs::JobsCtx::from_state(&state),
        job_lock,
        crate::jobs::shutdown_token(&state),
    );

    // Memory freed by stopped actors goes back to the system: glibc keeps freed heap pages
    // otherwise, so RSS would stay at its peak after a burst of actors stopped.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    actix_rt::spawn(async {
        let mut every = tokio::time::interval(MEMORY_TRIM_EVERY);
        loop {
            every.tick().await;
            // SAFETY: malloc_trim only releases free memory; it is thread-safe.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    });

    tracing::info!(%addr, db = ?store.kind(), "StudyOn listening");
    Ok(RunningServer {
        addr,
        metrics_addr,
        metrics_handle,
        state,
        handle,
        task,
    })
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown; see the module docs for the order.
    pub async fn shutdown(self) {
        let started = Instant::now();
        let budget = Duration::from_secs(self.state.settings.shutdown_secs);
        let state = &self.state;
        state.shutting_down.store(true, Ordering::Release);
        // Stop accepting and close the listener at once: a load balancer's new connects are
        // refused and go to another node, instead of waiting on a paused listener. The
        // workers keep serving the connections they have (the sockets closed next, requests
        // in flight) until they end or the shutdown timeout.
        let stopping = {
            let handle = self.handle.clone();
            tokio::spawn(async move { handle.stop(true).await })
        };
        // Actix closes it on its accept thread: wait for that (bounded), so no client told
        // to reconnect can land here again.
        until_refused(self.addr, budget / 8).await;
        state
            .hub
            .close_all(close_code::GOING_AWAY, "server restarting; reconnect");
        // Sockets close within a round trip; give them a bounded moment.
        let sockets_by = Instant::now() + budget / 4;
        while !state.hub.is_empty() && Instant::now() < sockets_by {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        state.registry.shutdown(budget / 8).await;
        // Give the stopped actors' leases back so their keys start elsewhere at once.
        if let Some(c) = &state.cluster {
            c.leave(budget / 8).await;
        }
        let _ = stopping.await;
        let _ = self.task.await;
        if let Some(h) = &self.metrics_handle {
            h.stop(false).await;
        }
        state.persister.shutdown().await;
        state.store.close().await;
        tracing::info!(
            took_ms = started.elapsed().as_millis() as u64,
            "StudyOn stopped"
        );
    }
}

/// Waits until `addr` refuses connections, at most `within`. A probe that still connects
/// sits in the closing listener's backlog and is reset with it.
async fn until_refused(addr: SocketAddr, within: Duration) {
    let mut probe = addr;
    if probe.ip().is_unspecified() {
        probe.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(probe).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
