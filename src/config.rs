//! Every setting in one place: a CLI flag, a `STUDYON_*` (or conventional) environment twin
//! and a default. `ops/studyon.env.sample` documents each one; a test keeps the two in step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "studyon",
    version,
    about = "Real-time collaboration server for study groups"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
    /// Print the OpenAPI document of the HTTP API and exit (for client generators).
    Openapi,
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct Settings {
    /// Address the HTTP and WebSocket server listens on.
    #[arg(
        long,
        env = "STUDYON_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Directory for the SQLite file and locally stored uploads.
    #[arg(
        long,
        env = "STUDYON_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// `sqlite://PATH` or `postgres://…`. Unset: a SQLite file `studyon.db` in the data dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Redis URL for the cluster registry. Unset: single node with the in-process registry.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,

    /// Where this node listens for the other nodes' links (cluster mode only). Bind it to an
    /// internal interface: the link is authenticated (`--cluster-secret`), not encrypted.
    #[arg(
        long,
        env = "STUDYON_CLUSTER_LISTEN",
        default_value = "127.0.0.1:0",
        global = true
    )]
    pub cluster_listen: std::net::SocketAddr,

    /// The address other nodes dial to reach this one. Default: the bound listen address.
    #[arg(long, env = "STUDYON_CLUSTER_ADVERTISE", global = true)]
    pub cluster_advertise: Option<std::net::SocketAddr>,

    /// A secret all nodes of the cluster share: each link proves it (HMAC over a fresh
    /// challenge), so only nodes deliver to a node, not whoever reaches the cluster port.
    /// Required when the cluster listener is not on loopback.
    #[arg(long, env = "STUDYON_CLUSTER_SECRET", global = true)]
    pub cluster_secret: Option<String>,

    /// Prefix of every Redis key this cluster uses, so clusters (and test runs) can share
    /// one Redis.
    #[arg(
        long,
        env = "STUDYON_REDIS_PREFIX",
        default_value = "studyon",
        global = true
    )]
    pub redis_prefix: String,

    /// Origin(s) browsers use to reach this server, comma-separated (e.g.
    /// `https://study.example`). Checked against `Origin` on every state-changing request and
    /// on the WebSocket upgrade. Unset: `http://` + the listen address (and `localhost` for a
    /// loopback listen address).
    #[arg(
        long,
        env = "STUDYON_PUBLIC_ORIGIN",
        value_delimiter = ',',
        global = true
    )]
    pub public_origin: Vec<String>,

    /// Reverse proxies (addresses or networks, comma-separated, e.g. `127.0.0.1,10.0.0.0/8`)
    /// whose `X-Forwarded-For` names the client for login and sign-up limits. Unset: the
    /// header is ignored and the connecting address is the client.
    #[arg(
        long,
        env = "STUDYON_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<String>,

    /// Directory holding the built web client (`npm run build` in `web/`).
    #[arg(
        long,
        env = "STUDYON_WEB_DIR",
        default_value = "./web/dist",
        global = true
    )]
    pub web_dir: PathBuf,

    /// HTTP worker threads. 0 means one per CPU core.
    #[arg(long, env = "STUDYON_WORKERS", default_value_t = 0, global = true)]
    pub workers: usize,

    /// Maximum pooled database connections.
    #[arg(
        long,
        env = "STUDYON_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub db_max_connections: u32,

    /// A session unused for this many seconds is expired.
    #[arg(long, env = "STUDYON_SESSION_IDLE_SECS", default_value_t = 7 * 24 * 3600, global = true)]
    pub session_idle_secs: u64,

    /// A session expires this many seconds after login, however active.
    #[arg(long, env = "STUDYON_SESSION_MAX_AGE_SECS", default_value_t = 30 * 24 * 3600, global = true)]
    pub session_max_age_secs: u64,

    /// Seconds between server pings on `/ws`; a socket silent for twice this is closed.
    #[arg(
        long,
        env = "STUDYON_WS_HEARTBEAT_SECS",
        default_value_t = 20,
        global = true
    )]
    pub ws_heartbeat_secs: u64,

    /// Largest WebSocket message (bytes) the server accepts; larger ones get an error frame.
    #[arg(long, env = "STUDYON_WS_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub ws_max_message_bytes: usize,

    /// Largest co-edited post body (its Yjs document, encoded bytes); an edit past it is
    /// refused with `document_too_large`. One update is also bounded by the message limit.
    #[arg(long, env = "STUDYON_DOC_MAX_BYTES", default_value_t = 2 * 1024 * 1024, global = true)]
    pub doc_max_bytes: usize,

    /// Frames queued for one socket before it counts as a slow consumer and is closed.
    #[arg(
        long,
        env = "STUDYON_WS_OUTBOUND_QUEUE",
        default_value_t = 512,
        global = true
    )]
    pub ws_outbound_queue: usize,

    /// Bytes queued for one socket before it is closed as a slow consumer: a tab that
    /// stops reading large answers must not pin megabytes per frame.
    #[arg(long, env = "STUDYON_WS_OUTBOUND_BYTES", default_value_t = 4 * 1024 * 1024, global = true)]
    pub ws_outbound_bytes: usize,

    /// Sockets one user may have open at once (tabs, across browsers); one more is closed
    /// with 4009. Every socket message of a user counts against one shared rate.
    #[arg(
        long,
        env = "STUDYON_WS_MAX_PER_USER",
        default_value_t = 16,
        global = true
    )]
    pub ws_max_per_user: usize,

    /// Sign-ups one client address may make at once; after that one every 20 s. Room for a
    /// class signing up together behind one NAT address.
    #[arg(
        long,
        env = "STUDYON_SIGNUP_BURST",
        default_value_t = 50,
        global = true
    )]
    pub signup_burst: u32,

    /// State-changing HTTP requests one user may make at once; after that 10 a second.
    /// Covers any run of clicks; raise it for a bulk-import script.
    #[arg(
        long,
        env = "STUDYON_WRITE_BURST",
        default_value_t = 120,
        global = true
    )]
    pub write_burst: u32,

    /// Socket messages one user may send per second, sustained, across all their sockets
    /// (the burst is twice this). Bounds what one account costs; a benchmark driving one
    /// document as fast as it can raises it.
    #[arg(long, env = "STUDYON_WS_RATE", default_value_t = 50, global = true)]
    pub ws_rate: u32,

    /// The UDP address the video SFU binds (one socket for all rooms). The default, an
    /// ephemeral port on loopback, serves browsers on this machine; a deployment sets a
    /// fixed port on a public interface (and opens it in the firewall).
    #[arg(
        long,
        env = "STUDYON_VIDEO_UDP_LISTEN",
        default_value = "127.0.0.1:0",
        global = true
    )]
    pub video_udp_listen: std::net::SocketAddr,

    /// The address clients reach the SFU's socket at, put in its ICE candidates (the
    /// public address when the node sits behind NAT). Default: the bound address.
    #[arg(long, env = "STUDYON_VIDEO_PUBLIC_ADDR", global = true)]
    pub video_public_addr: Option<std::net::SocketAddr>,

    /// Participants one video room takes; every participant costs each other one a
    /// download, so a room past this is better split (BigBlueButton and Jitsi use 25–50).
    #[arg(
        long,
        env = "STUDYON_VIDEO_MAX_PARTICIPANTS",
        default_value_t = 25,
        global = true
    )]
    pub video_max_participants: usize,

    /// TURN server URLs handed to clients (`turn:host:3478?transport=udp,turns:…`); empty
    /// means no TURN. See `turn/README.md`.
    #[arg(long, env = "STUDYON_TURN_URLS", value_delimiter = ',', global = true)]
    pub turn_urls: Vec<String>,

    /// The secret shared with coturn (`static-auth-secret`) for TURN REST credentials.
    #[arg(long, env = "STUDYON_TURN_SECRET", global = true)]
    pub turn_secret: Option<String>,

    /// How long a TURN credential handed out at join stays valid. coturn 4.6 checks it only
    /// when an allocation is made (refreshes of a running one pass), so it needs to cover
    /// the join and an ICE restart, not the call; shorter means a leaked one is worth less.
    #[arg(
        long,
        env = "STUDYON_TURN_TTL_SECS",
        default_value_t = 3600,
        global = true
    )]
    pub turn_ttl_secs: u64,

    /// Seconds a keyed actor with no clients stays alive before it is stopped.
    #[arg(
        long,
        env = "STUDYON_ACTOR_IDLE_SECS",
        default_value_t = 60,
        global = true
    )]
    pub actor_idle_secs: u64,

    /// Messages a keyed actor may have queued before callers get `busy`.
    #[arg(
        long,
        env = "STUDYON_ACTOR_MAILBOX",
        default_value_t = 1024,
        global = true
    )]
    pub actor_mailbox: usize,

    /// Live keyed actors of one kind (chat rooms, conversations, …) this node runs at most;
    /// starting one more answers `busy`. Bounds memory whatever clients ask for.
    #[arg(
        long,
        env = "STUDYON_ACTOR_MAX_LIVE",
        default_value_t = 10_000,
        global = true
    )]
    pub actor_max_live: usize,

    /// Seconds allowed for graceful shutdown (close sockets, drain requests, flush writes).
    #[arg(
        long,
        env = "STUDYON_SHUTDOWN_SECS",
        default_value_t = 8,
        global = true
    )]
    pub shutdown_secs: u64,

    /// Address of the Prometheus `/metrics` endpoint, apart from the app port (loopback by
    /// default: metrics are for the operator's scraper, not the public). `off` disables it.
    #[arg(
        long,
        env = "STUDYON_METRICS_LISTEN",
        default_value = "127.0.0.1:9464",
        global = true
    )]
    pub metrics_listen: String,

    /// Log filter in `tracing` syntax, e.g. `info` or `studyon=debug,info`.
    #[arg(long, env = "STUDYON_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Largest file one upload may carry, in bytes.
    #[arg(long, env = "STUDYON_UPLOAD_MAX_BYTES", default_value_t = 50 * 1024 * 1024, global = true)]
    pub upload_max_bytes: u64,

    /// Uploads one user may have in progress at once (of 32 per node), so one user cannot
    /// take every upload slot.
    #[arg(
        long,
        env = "STUDYON_UPLOADS_PER_USER",
        default_value_t = 4,
        global = true
    )]
    pub uploads_per_user: usize,

    /// Slowest upload body accepted, in bytes a second, averaged over each window below; a
    /// slower one is aborted with 408 `upload_too_slow` (8 KiB/s: a weak mobile link).
    #[arg(long, env = "STUDYON_UPLOAD_MIN_RATE", default_value_t = 8 * 1024, global = true)]
    pub upload_min_rate: u64,

    /// Seconds over which the minimum upload rate is measured.
    #[arg(
        long,
        env = "STUDYON_UPLOAD_RATE_WINDOW_SECS",
        default_value_t = 20,
        global = true
    )]
    pub upload_rate_window_secs: u64,

    /// Bytes of files one study may store in all.
    #[arg(long, env = "STUDYON_STUDY_QUOTA_BYTES", default_value_t = 1024 * 1024 * 1024, global = true)]
    pub study_quota_bytes: u64,

    /// S3 bucket for file storage. Unset: files are stored under `<data-dir>/objects`.
    /// Credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`).
    #[arg(long, env = "STUDYON_S3_BUCKET", global = true)]
    pub s3_bucket: Option<String>,

    /// S3 endpoint URL for an S3-compatible service (e.g. `http://127.0.0.1:9000`). Unset: AWS.
    #[arg(long, env = "STUDYON_S3_ENDPOINT", global = true)]
    pub s3_endpoint: Option<String>,

    /// S3 region.
    #[arg(
        long,
        env = "STUDYON_S3_REGION",
        default_value = "us-east-1",
        global = true
    )]
    pub s3_region: String,

    /// Path-style S3 addressing (`endpoint/bucket/key`), which most S3-compatible services need.
    #[arg(
        long,
        env = "STUDYON_S3_PATH_STYLE",
        default_value_t = false,
        global = true
    )]
    pub s3_path_style: bool,

    /// When the orphan sweep runs (removes stored files no row points at, once an hour old).
    /// Job schedules are cron expressions in UTC with a seconds field first (`sec min hour
    /// day month weekday`) or `@hourly`/`@daily`; empty disables the job. Each job also runs
    /// once at startup, and on one node per fire in a cluster.
    #[arg(
        long,
        env = "STUDYON_JOB_ORPHAN_SWEEP",
        default_value = crate::jobs::ORPHAN_SWEEP_DEFAULT,
        global = true
    )]
    pub job_orphan_sweep: String,

    /// When expired and revoked sessions are deleted.
    #[arg(
        long,
        env = "STUDYON_JOB_SESSION_PURGE",
        default_value = crate::jobs::SESSION_PURGE_DEFAULT,
        global = true
    )]
    pub job_session_purge: String,

    /// When studies past their last recruiting day move to in progress (and their leaders
    /// are told). Deadlines are dates, read in UTC.
    #[arg(
        long,
        env = "STUDYON_JOB_RECRUITMENT_CLOSE",
        default_value = crate::jobs::RECRUITMENT_CLOSE_DEFAULT,
        global = true
    )]
    pub job_recruitment_close: String,

    /// When the members of studies starting today are reminded (once per study).
    #[arg(
        long,
        env = "STUDYON_JOB_STUDY_REMINDERS",
        default_value = crate::jobs::STUDY_REMINDERS_DEFAULT,
        global = true
    )]
    pub job_study_reminders: String,
}

/// A setting that cannot work; the message names the setting to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Which relational store the database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl Settings {
    /// Settings with every default, for tests and tools.
    pub fn defaults() -> Self {
        Cli::parse_from(["studyon"]).settings
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("studyon.db").display()),
        }
    }

    pub fn db_kind(&self) -> Result<DbKind, ConfigError> {
        let url = self.database_url();
        if url.starts_with("sqlite:") {
            Ok(DbKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DbKind::Postgres)
        } else {
            Err(ConfigError(
                "DATABASE_URL / --database-url must start with sqlite:// or postgres://".into(),
            ))
        }
    }

    /// The origins accepted on state-changing requests, normalized (`scheme://host[:port]`).
    pub fn allowed_origins(&self, bound: SocketAddr) -> Vec<String> {
        if !self.public_origin.is_empty() {
            return self
                .public_origin
                .iter()
                .map(|o| o.trim_end_matches('/').to_string())
                .collect();
        }
        let mut v = vec![format!("http://{bound}")];
        if bound.ip().is_loopback() {
            v.push(format!("http://localhost:{}", bound.port()));
            if bound.is_ipv4() {
                v.push(format!("http://[::1]:{}", bound.port()));
            } else {
                v.push(format!("http://127.0.0.1:{}", bound.port()));
            }
        }
        v
    }

    /// Cookies get `Secure` and the `__Host-` prefix when browsers reach us over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_origin
            .first()
            .is_some_and(|o| o.starts_with("https://"))
    }

    /// The minimum rate an upload body must keep.
    pub fn upload_rate(&self) -> crate::storage::slots::RatePolicy {
        crate::storage::slots::RatePolicy {
            bytes_per_second: self.upload_min_rate,
            window: Duration::from_secs(self.upload_rate_window_secs),
        }
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listen.parse().ok()
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.ws_heartbeat_secs)
    }

    /// Checks everything that can be checked before opening any connection.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let kind = self.db_kind()?;
        if self.redis_url.is_some() && kind != DbKind::Postgres {
            return Err(ConfigError(
                "cluster mode (REDIS_URL / --redis-url is set) needs a shared database: set \
                 DATABASE_URL / --database-url to a postgres:// URL, or unset REDIS_URL for a \
                 single node"
                    .into(),
            ));
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            return Err(ConfigError(
                "STUDYON_REDIS_PREFIX must be a non-empty word".into(),
            ));
        }
        if self.redis_url.is_some()
            && !self.cluster_listen.ip().is_loopback()
            && self.cluster_secret.as_deref().is_none_or(str::is_empty)
        {
            return Err(ConfigError(
                "STUDYON_CLUSTER_LISTEN is not on loopback: set STUDYON_CLUSTER_SECRET (the same \
                 on every node) so only nodes of this cluster can use the link"
                    .into(),
            ));
        }
        if self
            .cluster_advertise
            .is_some_and(|a| a.ip().is_unspecified() || a.port() == 0)
        {
            return Err(ConfigError(
                "STUDYON_CLUSTER_ADVERTISE must be an address other nodes can dial (no 0.0.0.0, \
                 no port 0)"
                    .into(),
            ));
        }
        for o in &self.public_origin {
            let ok = url::Url::parse(o).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.path() == "/"
                    && u.query().is_none()
                    && !o.trim_end_matches('/').ends_with(':')
            });
            if !ok {
                return Err(ConfigError(format!(
                    "STUDYON_PUBLIC_ORIGIN / --public-origin: {o:?} is not an origin like \
                     https://study.example or http://127.0.0.1:8080 (no path)"
                )));
            }
        }
        if self.session_idle_secs == 0 || self.session_max_age_secs < self.session_idle_secs {
            return Err(ConfigError(
                "STUDYON_SESSION_MAX_AGE_SECS must be at least STUDYON_SESSION_IDLE_SECS, and \
                 both above 0"
                    .into(),
            ));
        }
        if self.ws_heartbeat_secs == 0 {
            return Err(ConfigError(
                "STUDYON_WS_HEARTBEAT_SECS must be above 0".into(),
            ));
        }
        if self.doc_max_bytes < 4096 {
            return Err(ConfigError(
                "STUDYON_DOC_MAX_BYTES must be at least 4096".into(),
            ));
        }
        if self.ws_max_message_bytes < 1024 {
            return Err(ConfigError(
                "STUDYON_WS_MAX_MESSAGE_BYTES must be at least 1024".into(),
            ));
        }
        if self.metrics_listen != "off" && self.metrics_listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError(
                "STUDYON_METRICS_LISTEN must be an address like 127.0.0.1:9464, or off".into(),
            ));
        }
        if self.ws_max_per_user == 0 || self.actor_max_live == 0 {
            return Err(ConfigError(
                "STUDYON_WS_MAX_PER_USER and STUDYON_ACTOR_MAX_LIVE must be at least 1".into(),
            ));
        }
        if self.ws_outbound_bytes < self.ws_max_message_bytes.min(1 << 20) {
            return Err(ConfigError(
                "STUDYON_WS_OUTBOUND_BYTES must hold at least one largest message (or 1 MiB)"
                    .into(),
            ));
        }
        if self.ws_outbound_queue < 8 || self.actor_mailbox < 8 {
            return Err(ConfigError(
                "STUDYON_WS_OUTBOUND_QUEUE and STUDYON_ACTOR_MAILBOX must be at least 8".into(),
            ));
        }
        if self.shutdown_secs == 0 || self.shutdown_secs > 9 {
            return Err(ConfigError(
                "STUDYON_SHUTDOWN_SECS must be 1–9 so the process exits within 10 s".into(),
            ));
        }
        if let Err(e) = crate::http::client_ip::parse_nets(&self.trusted_proxies) {
            return Err(ConfigError(format!("STUDYON_TRUSTED_PROXIES: {e}")));
        }
        if self.ws_rate == 0 {
            return Err(ConfigError("STUDYON_WS_RATE must be at least 1".into()));
        }
        if self.signup_burst == 0 || self.write_burst == 0 {
            return Err(ConfigError(
                "STUDYON_SIGNUP_BURST and STUDYON_WRITE_BURST must be at least 1".into(),
            ));
        }
        if self.uploads_per_user == 0 || self.upload_rate_window_secs == 0 {
            return Err(ConfigError(
                "STUDYON_UPLOADS_PER_USER and STUDYON_UPLOAD_RATE_WINDOW_SECS must be at least 1"
                    .into(),
            ));
        }
        if self.upload_max_bytes == 0 || self.study_quota_bytes < self.upload_max_bytes {
            return Err(ConfigError(
                "STUDYON_UPLOAD_MAX_BYTES must be above 0 and at most STUDYON_STUDY_QUOTA_BYTES"
                    .into(),
            ));
        }
        if self.s3_endpoint.is_some() && self.s3_bucket.is_none() {
            return Err(ConfigError(
                "STUDYON_S3_ENDPOINT is set but STUDYON_S3_BUCKET is not: set the bucket to store \
                 files on S3, or unset the endpoint to store them under the data dir"
                    .into(),
            ));
        }
        if let Some(e) = &self.s3_endpoint
            && !url::Url::parse(e).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(ConfigError(format!(
                "STUDYON_S3_ENDPOINT / --s3-endpoint: {e:?} is not an http(s) URL"
            )));
        }
        if self.video_max_participants < 2 || self.video_max_participants > 100 {
            return Err(ConfigError(
                "STUDYON_VIDEO_MAX_PARTICIPANTS must be 2–100".into(),
            ));
        }
        let advertised = self.video_public_addr.unwrap_or(self.video_udp_listen);
        if advertised.ip().is_unspecified() {
            return Err(ConfigError(
                "STUDYON_VIDEO_UDP_LISTEN binds every interface: set STUDYON_VIDEO_PUBLIC_ADDR to the address clients reach".into(),
            ));
        }
        if !self.turn_urls.is_empty() && self.turn_secret.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError(
                "STUDYON_TURN_URLS needs STUDYON_TURN_SECRET (the coturn static-auth-secret)"
                    .into(),
            ));
        }
        if self.turn_ttl_secs < 60 {
            return Err(ConfigError(
                "STUDYON_TURN_TTL_SECS must be at least 60".into(),
            ));
        }
        if self.db_max_connections == 0 {
            return Err(ConfigError(
                "STUDYON_DB_MAX_CONNECTIONS must be above 0".into(),
            ));
        }
        for job in crate::jobs::JOBS {
            if let Err(e) = crate::jobs::schedule::parse(job.schedule_in(self)) {
                return Err(ConfigError(format!(
                    "{}: {e} (or empty to disable the job)",
                    job.setting()
                )));
            }
        }
        Ok(())
    }

    /// The effective configuration as `KEY=value` lines, passwords in URLs redacted.
    pub fn redacted(&self) -> String {
        let mut out = String::new();
        let json = serde_json::to_value(self).expect("settings serialize");
        let mut add = |k: &str, v: String| out.push_str(&format!("{k}={v}\n"));
        for (field, env) in env_names() {
            let v = match field.as_str() {
                "database_url" => redact_url(&self.database_url()),
                "redis_url" => self
                    .redis_url
                    .as_deref()
                    .map(redact_url)
                    .unwrap_or_default(),
                "public_origin" => self.public_origin.join(","),
                "trusted_proxies" => self.trusted_proxies.join(","),
                "turn_urls" => self.turn_urls.join(","),
                "turn_secret" => self
                    .turn_secret
                    .as_ref()
                    .map(|_| "***".to_string())
                    .unwrap_or_default(),
                "cluster_secret" => self
                    .cluster_secret
                    .as_ref()
                    .map(|_| "***".to_string())
                    .unwrap_or_default(),
                _ => match &json[&field] {
                    // Unset optional settings print empty, as in the env sample.
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            };
            add(&env, v);
        }
        out
    }
}

/// (field name, environment variable) for every setting, read from the CLI definition itself.
pub fn env_names() -> Vec<(String, String)> {
    use clap::CommandFactory;
    Cli::command()
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            Some((a.get_id().to_string(), env))
        })
        .collect()
}

/// Replaces the password in `scheme://user:password@host/...` with `***`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Settings {
        let mut v = vec!["studyon"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).expect("parse").settings
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = Settings::defaults();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.database_url(), "sqlite://./data/studyon.db");
        assert_eq!(s.db_kind().unwrap(), DbKind::Sqlite);
        assert!(s.redis_url.is_none());
        s.validate().unwrap();
    }

    #[test]
    fn flags_work_before_and_after_the_subcommand() {
        let a = Cli::try_parse_from(["studyon", "serve", "--listen", "127.0.0.1:9"]).unwrap();
        assert_eq!(a.command, Some(Command::Serve));
        assert_eq!(a.settings.listen.port(), 9);
        let b = Cli::try_parse_from(["studyon", "--listen", "127.0.0.1:9", "migrate"]).unwrap();
        assert_eq!(b.command, Some(Command::Migrate));
        assert_eq!(b.settings.listen.port(), 9);
    }

    #[test]
    fn a_cluster_port_off_loopback_needs_a_secret() {
        let pg = ["--database-url", "postgres://x@127.0.0.1/db"];
        let base = ["--redis-url", "redis://127.0.0.1:6379"];
        let open = parse(&[&pg[..], &base[..], &["--cluster-listen", "0.0.0.0:7100"]].concat());
        let err = open.validate().unwrap_err().to_string();
        assert!(err.contains("STUDYON_CLUSTER_SECRET"), "{err}");
        let closed = parse(
            &[
                &pg[..],
                &base[..],
                &[
                    "--cluster-listen",
                    "0.0.0.0:7100",
                    "--cluster-secret",
                    "s3cret",
                ],
            ]
            .concat(),
        );
        closed.validate().unwrap();
        assert!(closed.redacted().contains("STUDYON_CLUSTER_SECRET=***"));
        assert!(!closed.redacted().contains("s3cret"));
        parse(&[&pg[..], &base[..]].concat()).validate().unwrap();
    }

    #[test]
    fn cluster_without_postgres_is_refused_naming_the_setting() {
        let s = parse(&["--redis-url", "redis://127.0.0.1:6379"]);
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--database-url", "mysql://x"]).validate().is_err());
        assert!(
            parse(&["--public-origin", "https://a.example/path"])
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--public-origin", "ftp://a.example"])
                .validate()
                .is_err()
        );
        assert!(parse(&["--shutdown-secs", "30"]).validate().is_err());
        assert!(
            parse(&["--session-idle-secs", "100", "--session-max-age-secs", "10"])
                .validate()
                .is_err()
        );
        parse(&["--public-origin", "https://a.example,http://127.0.0.1:8080"])
            .validate()
            .unwrap();
    }

    #[test]
    fn origins_default_to_the_listen_address() {
        let s = Settings::defaults();
        let o = s.allowed_origins("127.0.0.1:4000".parse().unwrap());
        assert!(o.contains(&"http://127.0.0.1:4000".to_string()));
        assert!(o.contains(&"http://localhost:4000".to_string()));
        assert!(!s.secure_cookies());
        let s = parse(&["--public-origin", "https://study.example/"]);
        assert_eq!(
            s.allowed_origins("0.0.0.0:80".parse().unwrap()),
            vec!["https://study.example"]
        );
        assert!(s.secure_cookies());
    }

    #[test]
    fn config_output_redacts_passwords() {
        let s = parse(&[
            "--database-url",
            "postgres://app:s3cret@db.internal/studyon",
        ]);
        let out = s.redacted();
        assert!(!out.contains("s3cret"), "{out}");
        assert!(
            out.contains("DATABASE_URL=postgres://app:***@db.internal/studyon"),
            "{out}"
        );
        assert!(out.contains("STUDYON_LISTEN=127.0.0.1:8080"));
    }

    /// The sample in `ops/` must name every environment variable the settings struct reads,
    /// and nothing else, so operators can trust it.
    #[test]
    fn sample_config_lists_exactly_the_settings() {
        let sample = include_str!("../ops/studyon.env.sample");
        let mut in_sample: Vec<String> = sample
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
            .filter(|k| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        in_sample.sort();
        in_sample.dedup();
        let mut in_code: Vec<String> = env_names().into_iter().map(|(_, e)| e).collect();
        in_code.sort();
        assert_eq!(
            in_sample, in_code,
            "ops/studyon.env.sample is out of step with Settings"
        );
    }
}
