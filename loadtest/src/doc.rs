//! `doc`: co-edited post bodies under load. One document with 1 writer and `--readers`
//! readers, then one with `--writers` concurrent writers and the same readers; an open-loop
//! rate ramp of small Yjs updates; per stage the updates delivered per second, latency, server
//! CPU per delivered frame, loss and duplicates; and the server's memory per loaded document.
//! The same run drives the stock y-websocket server (`baseline-yjs/`, in memory, no
//! persistence), pinned to the same core, and prints StudyOn / baseline ratios.
//!
//! Wire: raw y-protocols messages in binary frames (lib0 encoding). On connect each server
//! sends its sync step 1; the client answers with an empty step 2 and its own step 1, and
//! counts as ready when the server's step 2 comes back. Writers keep their own Yrs document
//! (distinct client ids, never merged with the others', as concurrent editors are) and send
//! `[0, 2, varUint8Array(update)]` for each insert. The inserted text is a marker
//! `~lt{stage}.{writer}.{id}.{due}~` (hex): string content appears verbatim in a v1 update,
//! so readers find it in the raw frame without integrating anything and learn which update
//! arrived and when it was scheduled.

use crate::fanout::close_reason;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use yrs::{GetString, Text, Transact};

use crate::{procs, setup};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Per-socket read buffer (tungstenite zero-fills it before each read; frames are tiny).
const READ_BUFFER: usize = 8 * 1024;
/// Cores used by other processes during a stage above which its figures count as noisy.
const NOISE_CORES: f64 = 0.2;
/// The reference on this machine, server on one core: y-sweet (Rust, yrs).
const YSWEET_FRAMES_PER_SEC: f64 = 80_000.0;
const YSWEET_CPU_PER_FRAME_US: f64 = 10.0;
const TARGET_VS_YSWEET: f64 = 1.2;
/// Where the update marker starts in the inserted text.
const MARK: &[u8] = b"~lt";
/// y-protocols messages the harness sends.
const STEP1_EMPTY: [u8; 4] = [0, 0, 1, 0]; // sync step 1, an empty state vector
const STEP2_EMPTY: [u8; 5] = [0, 1, 2, 0, 0]; // sync step 2, an empty v1 update

#[derive(clap::Args, Debug, Clone)]
pub struct DocArgs {
    /// The StudyOn server binary (default: `studyon` beside this executable, else
    /// /root/.cache/studyon/target/release/studyon).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Readers of each scenario's document (they never write).
    #[arg(long, default_value_t = 200)]
    pub readers: usize,
    /// Writers in the second scenario (the first has one). They read each other too.
    #[arg(long, default_value_t = 20)]
    pub writers: usize,
    /// Users the sockets are spread over, round-robin (StudyOn; a study holds at most 100).
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// Update rates to ramp through, updates per second (all writers together).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,200,300,400,600,800,1000,1500,2000,3000"
    )]
    pub rates: Vec<u32>,
    /// Seconds of sending per stage.
    #[arg(long, default_value_t = 5.0)]
    pub stage_secs: f64,
    /// Most seconds to wait after a stage for its deliveries (what is missing then is lost).
    #[arg(long, default_value_t = 5.0)]
    pub drain_secs: f64,
    /// A stage whose p99 is above this counts as saturated and ends the ramp.
    #[arg(long, default_value_t = 100.0)]
    pub p99_limit_ms: f64,
    /// Documents loaded for the memory figure, one editor socket each.
    #[arg(long, default_value_t = 100)]
    pub docs: usize,
    /// Text in each of those documents, bytes.
    #[arg(long, default_value_t = 1024)]
    pub doc_bytes: usize,
    /// Skip the y-websocket baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Quick CI check: 2 users, 8 readers, 3 writers, one 2 s stage of 20 updates/s, 5
    /// documents for the memory figure, no baseline; exits non-zero on any lost, duplicated,
    /// reordered or refused update, a closed socket, or nothing delivered.
    #[arg(long)]
    pub smoke: bool,
    /// An extra argument for `studyon serve` (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// Node.js for the baseline.
    #[arg(long, default_value = "node")]
    pub node: PathBuf,
}

impl DocArgs {
    pub fn apply_smoke(&mut self) {
        if self.smoke {
            self.users = 2;
            self.readers = 8;
            self.writers = 3;
            self.rates = vec![20];
            self.stage_secs = 2.0;
            self.docs = 5;
            self.no_baseline = true;
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.users == 0 || self.users > 100 {
            return Err("--users must be 1..=100 (a study holds at most 100 members)".into());
        }
        if self.readers == 0 || self.writers == 0 || self.readers + self.writers > 5000 {
            return Err("--readers and --writers must be at least 1 (5000 sockets at most)".into());
        }
        if self.rates.is_empty() || self.rates.contains(&0) {
            return Err("--rates needs positive rates".into());
        }
        if self.stage_secs <= 0.0
            || self.stage_secs > 60.0
            || !(0.0..=60.0).contains(&self.drain_secs)
        {
            return Err("--stage-secs must be in (0, 60], --drain-secs in [0, 60]".into());
        }
        if self.docs > 1000 || self.doc_bytes > 64 * 1024 {
            return Err("--docs at most 1000, --doc-bytes at most 65536".into());
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    StudyOn,
    Baseline,
}

/// A server under test and where its documents are.
struct Target {
    kind: Kind,
    name: &'static str,
    addr: SocketAddr,
    origin: Option<String>,
    /// `Cookie` per user (StudyOn); empty for the baseline.
    cookies: Vec<String>,
    pid: u32,
    /// One document per scenario.
    scenario_urls: Vec<String>,
    /// The documents of the memory figure.
    mem_urls: Vec<String>,
    /// StudyOn's Prometheus endpoint (what it stored, per scenario).
    metrics: Option<SocketAddr>,
}

impl Target {
    fn cookie(&self, socket: usize) -> Option<&str> {
        (!self.cookies.is_empty()).then(|| self.cookies[socket % self.cookies.len()].as_str())
    }
}

struct Scenario {
    name: &'static str,
    writers: usize,
    readers: usize,
}

impl Scenario {
    /// Deliveries each update owes: every peer but its writer.
    fn fanout(&self) -> u64 {
        (self.writers + self.readers - 1) as u64
    }
}

#[derive(Clone, Debug, Default)]
pub struct StageResult {
    rate: u32,
    sent: u64,
    delivered: u64,
    expected: u64,
    offered_dps: f64,
    dps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    server_cpu_s: f64,
    server_util: f64,
    cpu_per_delivery: Option<f64>,
    harness_util: f64,
    other_cores: f64,
    lost: u64,
    dup: u64,
    reordered: u64,
    denied: u64,
    closed: usize,
    echoes: u64,
    unmarked: u64,
    merged: u64,
    stop: Option<String>,
}

struct ScenarioResult {
    name: &'static str,
    writers: usize,
    readers: usize,
    stages: Vec<StageResult>,
    stop: Option<String>,
    /// Server RSS before the sockets connected, after they connected, after the ramp (kB).
    rss_kb: [u64; 3],
}

impl ScenarioResult {
    fn peak(&self) -> Option<&StageResult> {
        self.stages.iter().max_by(|a, b| a.dps.total_cmp(&b.dps))
    }

    /// The stage with the most deliveries/s among those that did not saturate.
    fn sustained(&self) -> Option<&StageResult> {
        self.stages
            .iter()
            .filter(|s| s.stop.is_none())
            .max_by(|a, b| a.dps.total_cmp(&b.dps))
    }
}

struct MemResult {
    docs: usize,
    rss_before_kb: u64,
    rss_loaded_kb: u64,
    rss_closed_kb: u64,
}

impl MemResult {
    fn per_doc_kb(&self) -> f64 {
        (self.rss_loaded_kb as f64 - self.rss_before_kb as f64) / self.docs.max(1) as f64
    }
}

struct SideResult {
    name: &'static str,
    mem: Result<MemResult, String>,
    scenarios: Vec<Result<ScenarioResult, String>>,
}

// ---------------------------------------------------------------------------------------
// Wire helpers

fn put_var_uint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `[0, 2, varUint8Array(update)]`: a y-protocols sync update message.
fn update_frame(update: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(update.len() + 6);
    f.extend_from_slice(&[0, 2]);
    put_var_uint(&mut f, update.len() as u64);
    f.extend_from_slice(update);
    f
}

/// The text a writer inserts for update `id` of `writer` in stage slot `stage`.
fn marker(stage: usize, writer: usize, id: u64, due_us: u64) -> String {
    format!("~lt{stage:x}.{writer:x}.{id:x}.{due_us:x}~")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    stage: usize,
    writer: usize,
    id: u64,
    due_us: u64,
}

/// The marker whose fields start `data` (just past [`MARK`]), if it is one.
fn parse_mark(data: &[u8]) -> Option<Mark> {
    let end = data.iter().take(64).position(|&b| b == b'~')?;
    let text = std::str::from_utf8(&data[..end]).ok()?;
    let mut f = text.split('.');
    let mut hex = || u64::from_str_radix(f.next()?, 16).ok();
    let m = Mark {
        stage: hex()? as usize,
        writer: hex()? as usize,
        id: hex()?,
        due_us: hex()?,
    };
    f.next().is_none().then_some(m)
}

/// Every marker in a frame (a relayed update normally carries one).
fn marks(data: &[u8], mut found: impl FnMut(Mark)) {
    let mut i = 0;
    while i + MARK.len() <= data.len() {
        if &data[i..i + MARK.len()] == MARK
            && let Some(m) = parse_mark(&data[i + MARK.len()..])
        {
            found(m);
        }
        i += 1;
    }
}

/// Filler text for the memory figure's documents.
fn filler(doc: usize, bytes: usize) -> String {
    let mut s = format!("Load test document {doc}.");
    while s.len() < bytes {
        s.push_str(" Notes on chapter three, with a list of questions for the group.");
    }
    s.truncate(bytes);
    s
}

// ---------------------------------------------------------------------------------------
// Sockets

type Ws = WebSocketStream<TcpStream>;

async fn connect(target: &Target, url: &str, socket: usize) -> Result<Ws, String> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).ok();
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(origin) = &target.origin {
        req.headers_mut().insert(
            "Origin",
            HeaderValue::from_str(origin).map_err(|e| e.to_string())?,
        );
    }
    if let Some(cookie) = target.cookie(socket) {
        req.headers_mut().insert(
            "Cookie",
            HeaderValue::from_str(cookie).map_err(|e| e.to_string())?,
        );
    }
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(config))
        .await
        .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    Ok(ws)
}

/// The next binary frame whose first two bytes are `head`, skipping others; bounded.
async fn expect_frame(ws: &mut Ws, head: [u8; 2], what: &str) -> Result<Vec<u8>, String> {
    let end = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        let msg = tokio::time::timeout_at(end, ws.next())
            .await
            .map_err(|_| format!("no {what} within {CONNECT_TIMEOUT:?}"))?;
        match msg {
            Some(Ok(Message::Binary(b))) if b.starts_with(&head) => return Ok(b.to_vec()),
            Some(Ok(Message::Binary(b))) if b.starts_with(&[2, 0]) => {
                return Err(format!(
                    "permission denied: {}",
                    String::from_utf8_lossy(b.get(3..).unwrap_or(&[]))
                ));
            }
            Some(Ok(Message::Close(f))) => return Err(format!("closed by the server: {f:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".into()),
        }
    }
}

async fn send_bytes(ws: &mut Ws, bytes: Vec<u8>) -> Result<(), String> {
    ws.send(Message::binary(bytes))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// What a y-websocket client does on connect: wait for the server's step 1, answer with
/// what the server lacks (`content`, or an empty update) and ask for the state with an
/// empty step 1; ready when the server's step 2 arrives (so it processed ours).
async fn open(
    target: &Target,
    url: &str,
    socket: usize,
    content: Option<Vec<u8>>,
) -> Result<Ws, String> {
    let mut ws = connect(target, url, socket).await?;
    expect_frame(&mut ws, [0, 0], "sync step 1 from the server").await?;
    let step2 = match content {
        Some(update) => {
            let mut f = vec![0, 1];
            put_var_uint(&mut f, update.len() as u64);
            f.extend_from_slice(&update);
            f
        }
        None => STEP2_EMPTY.to_vec(),
    };
    send_bytes(&mut ws, step2).await?;
    send_bytes(&mut ws, STEP1_EMPTY.to_vec()).await?;
    expect_frame(&mut ws, [0, 1], "sync step 2 from the server").await?;
    Ok(ws)
}

/// Opens `n` sockets, 16 at a time; `make(i)` gives socket `i`'s URL and step-2 content.
async fn open_many(
    target: &Target,
    n: usize,
    make: impl Fn(usize) -> (String, Option<Vec<u8>>),
) -> Result<Vec<Ws>, String> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + 16).min(n))
            .map(|k| {
                let (url, content) = make(k);
                async move {
                    tokio::time::timeout(CONNECT_TIMEOUT * 2, open(target, &url, k, content))
                        .await
                        .map_err(|_| "connect and sync took too long".to_string())
                        .and_then(|r| r)
                        .map_err(|e| format!("socket {k}: {e}"))
                }
            })
            .collect();
        for r in futures_util::future::join_all(batch).await {
            match r {
                Ok(ws) => out.push(ws),
                Err(e) => {
                    close_raw(out).await;
                    return Err(e);
                }
            }
        }
        i += 16;
    }
    Ok(out)
}

async fn close_raw(sockets: Vec<Ws>) {
    let closes = sockets.into_iter().map(|mut ws| async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    });
    futures_util::future::join_all(closes).await;
}

// ---------------------------------------------------------------------------------------
// Receiving

#[derive(Default)]
struct StageCounters {
    delivered: AtomicU64,
    last_arrival_us: AtomicU64,
}

struct Shared {
    base: Instant,
    stages: Vec<StageCounters>,
    closed: AtomicUsize,
    denied: AtomicU64,
    echoes: AtomicU64,
    unmarked: AtomicU64,
    /// Update frames that carried more than one writer's update (each counts as a delivery).
    merged: AtomicU64,
    denied_reasons: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn us(&self, t: Instant) -> u64 {
        t.duration_since(self.base).as_micros() as u64
    }
}

struct RecvStats {
    hist: Vec<Histogram<u32>>,
    /// Updates received per stage slot (duplicates included), and duplicates.
    recv: Vec<u64>,
    dup: Vec<u64>,
    reordered: Vec<u64>,
    /// Update ids seen (a bit per id): exactly once, whatever the order.
    seen: Vec<u64>,
    /// The newest id seen from each writer (each writer's updates come in order).
    last_from: Vec<Option<u64>>,
    closed: Option<String>,
}

fn new_hist() -> Histogram<u32> {
    // Microseconds, 1 µs to 120 s, two significant digits (1 % resolution).
    Histogram::new_with_bounds(1, 120_000_000, 2).expect("histogram bounds")
}

impl RecvStats {
    fn new(stages: usize, writers: usize) -> RecvStats {
        RecvStats {
            hist: (0..stages).map(|_| new_hist()).collect(),
            recv: vec![0; stages],
            dup: vec![0; stages],
            reordered: vec![0; stages],
            seen: Vec::new(),
            last_from: vec![None; writers],
            closed: None,
        }
    }

    /// Marks `id` seen; false if it was already.
    fn first_time(&mut self, id: u64) -> bool {
        let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let fresh = self.seen[word] & bit == 0;
        self.seen[word] |= bit;
        fresh
    }
}

/// One frame received by socket `me` (writers are sockets `0..writers`).
fn on_binary(data: &[u8], me: usize, shared: &Shared, stats: &Mutex<RecvStats>) {
    if data.starts_with(&[2, 0]) {
        // y-protocols permission denied: the server refused something this socket sent.
        shared.denied.fetch_add(1, Relaxed);
        let reason = String::from_utf8_lossy(data.get(3..).unwrap_or(&[])).into_owned();
        *shared
            .denied_reasons
            .lock()
            .unwrap()
            .entry(reason)
            .or_insert(0) += 1;
        return;
    }
    if !data.starts_with(&[0, 2]) {
        return; // step 1 or 2, awareness: not an update
    }
    let now = shared.us(Instant::now());
    let mut found = 0;
    let mut guard = stats.lock().unwrap();
    let st = &mut *guard;
    marks(data, |m| {
        found += 1;
        if m.writer == me {
            // The baseline sends each update back to its writer too.
            shared.echoes.fetch_add(1, Relaxed);
            return;
        }
        if m.stage >= shared.stages.len() || m.writer >= st.last_from.len() {
            return;
        }
        let c = &shared.stages[m.stage];
        c.delivered.fetch_add(1, Relaxed);
        c.last_arrival_us.fetch_max(now, Relaxed);
        st.hist[m.stage].saturating_record(now.saturating_sub(m.due_us).max(1));
        st.recv[m.stage] += 1;
        if !st.first_time(m.id) {
            st.dup[m.stage] += 1;
        }
        let last = &mut st.last_from[m.writer];
        if last.is_some_and(|l| m.id < l) {
            st.reordered[m.stage] += 1;
        } else {
            *last = Some(m.id);
        }
    });
    match found {
        0 => shared.unmarked.fetch_add(1, Relaxed),
        1 => 0,
        _ => shared.merged.fetch_add(1, Relaxed),
    };
}

type Conn = crate::fanout::Conn<RecvStats>;

fn spawn_conn(ws: Ws, me: usize, writers: usize, shared: Arc<Shared>) -> Conn {
    let (sink, mut stream) = ws.split();
    let stats = Arc::new(Mutex::new(RecvStats::new(shared.stages.len(), writers)));
    let (tx, writer) = crate::fanout::spawn_writer(sink);
    let st = stats.clone();
    let reader = tokio::spawn(async move {
        // Reading also answers pings (tungstenite queues the pong, flushed on the next read).
        let reason = loop {
            match stream.next().await {
                Some(Ok(Message::Binary(b))) => on_binary(&b, me, &shared, &st),
                Some(Ok(Message::Close(f))) => break close_reason(f),
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "ended".into(),
            }
        };
        shared.closed.fetch_add(1, Relaxed);
        st.lock().unwrap().closed = Some(reason);
    });
    Conn {
        tx,
        stats,
        reader,
        writer,
    }
}

// ---------------------------------------------------------------------------------------
// The runs

struct Plan {
    rates: Vec<u32>,
    stage_secs: f64,
    drain_secs: f64,
    p99_limit_ms: f64,
    harness_cpus: usize,
    docs: usize,
    doc_bytes: usize,
}

/// StudyOn's counters (`name value` lines of /metrics, labels kept in the name).
async fn server_metrics(target: &Target) -> Option<BTreeMap<String, f64>> {
    let addr = target.metrics?;
    let r = crate::http::request(addr, "GET", "/metrics", &[], None, Duration::from_secs(5))
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&r.body);
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
            .collect(),
    )
}

fn rss_kb(pid: u32) -> u64 {
    procs::status_kb(pid, "VmRSS").unwrap_or(0)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Loads `plan.docs` documents with one editor socket each and reads the server's RSS
/// before, with them loaded, and after the sockets closed.
async fn memory(target: &Target, plan: &Plan) -> Result<MemResult, String> {
    let rss_before_kb = rss_kb(target.pid);
    let t = Instant::now();
    let sockets = open_many(target, plan.docs, |i| {
        let url = target.mem_urls[i].clone();
        // StudyOn's documents hold their text already (the post body becomes the first
        // stored update); the baseline's start empty, so the editor sends the same text.
        let content = (target.kind == Kind::Baseline).then(|| {
            let doc = yrs::Doc::with_client_id(900_000 + i as u64);
            let text = doc.get_or_insert_text("body");
            let mut txn = doc.transact_mut();
            text.push(&mut txn, &filler(i, plan.doc_bytes));
            txn.encode_update_v1()
        });
        (url, content)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_loaded_kb = rss_kb(target.pid);
    close_raw(sockets).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_closed_kb = rss_kb(target.pid);
    let m = MemResult {
        docs: plan.docs,
        rss_before_kb,
        rss_loaded_kb,
        rss_closed_kb,
    };
    println!(
        "  {}: memory: {} documents of {} bytes loaded, one editor socket each, in {:.1} s: RSS {:.1} → {:.1} MB = {:.1} kB per loaded document (with its socket); {:.1} MB after the sockets closed",
        target.name,
        m.docs,
        plan.doc_bytes,
        t.elapsed().as_secs_f64(),
        mb(m.rss_before_kb),
        mb(m.rss_loaded_kb),
        m.per_doc_kb(),
        mb(m.rss_closed_kb)
    );
    Ok(m)
}

async fn run_scenario(
    target: &Target,
    plan: &Plan,
    sc: &Scenario,
    url: &str,
    client_base: u64,
) -> Result<ScenarioResult, String> {
    let shared = Arc::new(Shared {
        base: Instant::now(),
        // A slot per stage run: each rate at most twice (one repeat when noisy).
        stages: (0..plan.rates.len() * 2)
            .map(|_| StageCounters::default())
            .collect(),
        closed: AtomicUsize::new(0),
        denied: AtomicU64::new(0),
        echoes: AtomicU64::new(0),
        unmarked: AtomicU64::new(0),
        merged: AtomicU64::new(0),
        denied_reasons: Mutex::new(BTreeMap::new()),
    });
    let rss0 = rss_kb(target.pid);
    let metrics0 = server_metrics(target).await;
    let n = sc.writers + sc.readers;
    let t = Instant::now();
    let sockets = open_many(target, n, |_| (url.to_string(), None)).await?;
    let conns: Vec<Conn> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| spawn_conn(ws, i, sc.writers, shared.clone()))
        .collect();
    let rss1 = rss_kb(target.pid);
    println!(
        "  {} [{}]: {} writers + {} readers connected and synced in {:.1} s (server RSS {:.1} → {:.1} MB)",
        target.name,
        sc.name,
        sc.writers,
        sc.readers,
        t.elapsed().as_secs_f64(),
        mb(rss0),
        mb(rss1)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Each writer: its own document, its own client id, like a separate browser.
    let writers: Vec<(yrs::Doc, yrs::TextRef)> = (0..sc.writers)
        .map(|w| {
            let doc = yrs::Doc::with_client_id(client_base + w as u64);
            let text = doc.get_or_insert_text("body");
            (doc, text)
        })
        .collect();
    let mut next_id = 0u64;
    let mut stages = Vec::new();
    let mut stop = None;
    let mut slot = 0;
    let mut repeated = false;
    let mut ri = 0;
    while ri < plan.rates.len() {
        let rate = plan.rates[ri];
        let r = run_stage(
            target,
            plan,
            sc,
            &shared,
            &conns,
            &writers,
            &mut next_id,
            slot,
            rate,
        )
        .await;
        slot += 1;
        print_stage(target.name, sc.name, &r);
        let noisy_saturation = r
            .stop
            .as_deref()
            .is_some_and(|w| w.starts_with("saturated"))
            && r.other_cores > NOISE_CORES;
        if noisy_saturation && !repeated {
            println!(
                "  {} [{}]: other processes used {:.2} cores in that stage: running {rate} updates/s once more",
                target.name, sc.name, r.other_cores
            );
            repeated = true;
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        repeated = false;
        ri += 1;
        let stop_now = r.stop.clone();
        stages.push(r);
        if let Some(why) = stop_now {
            stop = Some(why);
            break;
        }
    }
    let rss2 = rss_kb(target.pid);
    // The writers' own view of what they typed (a sanity check that updates were real).
    let typed: usize = writers
        .iter()
        .map(|(d, t)| t.get_string(&d.transact()).len())
        .sum();
    println!(
        "  {} [{}]: {next_id} updates ({typed} bytes of text) sent; server RSS after the ramp {:.1} MB; load average {}",
        target.name,
        sc.name,
        mb(rss2),
        procs::loadavg()
    );
    if let (Some(a), Some(b)) = (&metrics0, server_metrics(target).await) {
        let d = |k: &str| b.get(k).copied().unwrap_or(0.0) - a.get(k).copied().unwrap_or(0.0);
        let commits = d("studyon_doc_commit_seconds_count");
        println!(
            "  {} [{}]: the server applied {:.0} updates and stored them in {:.0} log rows ({:.1} updates per commit{}), {:.0} compactions; it counts {:.0} frames relayed",
            target.name,
            sc.name,
            d("studyon_doc_updates_applied_total"),
            d("studyon_doc_log_rows_total"),
            d("studyon_doc_updates_applied_total") / d("studyon_doc_log_rows_total").max(1.0),
            if commits > 0.0 {
                format!(
                    ", {:.2} ms per commit on average",
                    d("studyon_doc_commit_seconds_sum") / commits * 1e3
                )
            } else {
                String::new()
            },
            d("studyon_doc_compactions_total"),
            d("studyon_doc_frames_relayed_total"),
        );
    }
    let reasons = shared.denied_reasons.lock().unwrap().clone();
    if !reasons.is_empty() {
        println!(
            "  {} [{}]: refusals (permission denied): {reasons:?}",
            target.name, sc.name
        );
    }
    crate::fanout::close_all(conns).await;
    Ok(ScenarioResult {
        name: sc.name,
        writers: sc.writers,
        readers: sc.readers,
        stages,
        stop,
        rss_kb: [rss0, rss1, rss2],
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_stage(
    target: &Target,
    plan: &Plan,
    sc: &Scenario,
    shared: &Shared,
    conns: &[Conn],
    writers: &[(yrs::Doc, yrs::TextRef)],
    next_id: &mut u64,
    si: usize,
    rate: u32,
) -> StageResult {
    let counters = &shared.stages[si];
    let total = (rate as f64 * plan.stage_secs).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut sent_by = vec![0u64; sc.writers];
    let closed0 = shared.closed.load(Relaxed);
    let denied0 = shared.denied.load(Relaxed);
    let echoes0 = shared.echoes.load(Relaxed);
    let unmarked0 = shared.unmarked.load(Relaxed);
    let merged0 = shared.merged.load(Relaxed);
    let cpu0 = procs::cpu_secs(target.pid);
    let own0 = procs::own_cpu_secs();
    let busy0 = procs::machine_busy_secs();
    let t0 = Instant::now();
    let t0_us = shared.us(t0);

    // Open loop: update i goes out at t0 + i/rate whatever happens; it carries that scheduled
    // time, so a harness or server that falls behind shows up as latency.
    let mut i = 0u64;
    while i < total {
        let now = Instant::now();
        while i < total {
            let due = t0 + interval.mul_f64(i as f64);
            if due > now {
                break;
            }
            let w = (i % sc.writers as u64) as usize;
            let (doc, text) = &writers[w];
            let update = {
                let mut txn = doc.transact_mut();
                text.push(&mut txn, &marker(si, w, *next_id, shared.us(due)));
                txn.encode_update_v1()
            };
            *next_id += 1;
            sent_by[w] += 1;
            let _ = conns[w].tx.send(Message::binary(update_frame(&update)));
            i += 1;
        }
        if i < total {
            tokio::time::sleep_until((t0 + interval.mul_f64(i as f64)).into()).await;
        }
    }
    let send_end = Instant::now();
    let sent: u64 = sent_by.iter().sum();
    let expected = sent * sc.fanout();

    // Drain: wait (bounded) until every peer has every update of this stage.
    let drain_end = send_end + Duration::from_secs_f64(plan.drain_secs);
    while counters.delivered.load(Relaxed) < expected
        && Instant::now() < drain_end
        && shared.closed.load(Relaxed) == closed0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = procs::cpu_secs(target.pid);
    let own1 = procs::own_cpu_secs();
    let busy1 = procs::machine_busy_secs();

    let mut hist = new_hist();
    let mut close_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let (mut delivered, mut lost, mut dup, mut reordered, mut closed) = (0, 0, 0, 0, 0);
    for (k, c) in conns.iter().enumerate() {
        let st = c.stats.lock().unwrap();
        hist.add(&st.hist[si]).ok();
        delivered += st.recv[si];
        let owed = sent - if k < sc.writers { sent_by[k] } else { 0 };
        lost += owed.saturating_sub(st.recv[si] - st.dup[si]);
        dup += st.dup[si];
        reordered += st.reordered[si];
        if let Some(why) = &st.closed {
            closed += 1;
            let who = if k < sc.writers { "writer" } else { "reader" };
            *close_reasons.entry(format!("{who}: {why}")).or_insert(0) += 1;
        }
    }
    if !close_reasons.is_empty() {
        println!(
            "  {} [{}]: sockets closed by the server: {close_reasons:?}",
            target.name, sc.name
        );
    }
    let last = counters.last_arrival_us.load(Relaxed);
    let span = (last.saturating_sub(t0_us) as f64 / 1e6).max(plan.stage_secs);
    let server_cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let mut r = StageResult {
        rate,
        sent,
        delivered,
        expected,
        offered_dps: rate as f64 * sc.fanout() as f64,
        dps: delivered as f64 / span,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: hist.max() as f64 / 1000.0,
        server_cpu_s,
        server_util: server_cpu_s / wall,
        cpu_per_delivery: (delivered > 0 && server_cpu_s.is_finite())
            .then(|| server_cpu_s / delivered as f64),
        harness_util: (own1 - own0) / wall / plan.harness_cpus.max(1) as f64,
        other_cores: ((busy1 - busy0) - (own1 - own0) - server_cpu_s.max(0.0)).max(0.0) / wall,
        lost,
        dup,
        reordered,
        denied: shared.denied.load(Relaxed) - denied0,
        closed,
        echoes: shared.echoes.load(Relaxed) - echoes0,
        unmarked: shared.unmarked.load(Relaxed) - unmarked0,
        merged: shared.merged.load(Relaxed) - merged0,
        stop: None,
    };
    r.stop = if r.delivered == 0 {
        Some("no update arrived".into())
    } else if r.closed > 0 {
        Some(format!("{} sockets closed by the server", r.closed))
    } else if r.denied > 0 {
        Some(format!("{} updates refused by the server", r.denied))
    } else if r.p99_ms > plan.p99_limit_ms {
        Some(format!(
            "saturated: p99 {:.1} ms > {} ms",
            r.p99_ms, plan.p99_limit_ms
        ))
    } else if r.dps < 0.8 * r.offered_dps {
        Some(format!(
            "saturated: {:.0} deliveries/s < 80% of the {:.0} offered",
            r.dps, r.offered_dps
        ))
    } else if r.lost > 0 || r.dup > 0 || r.reordered > 0 {
        Some(format!(
            "{} lost, {} duplicated, {} out of order",
            r.lost, r.dup, r.reordered
        ))
    } else {
        None
    };
    r
}

fn fmt_us(c: Option<f64>) -> String {
    match c {
        Some(s) => format!("{:.2} µs", s * 1e6),
        None => "n/a".into(),
    }
}

fn print_stage(name: &str, scenario: &str, r: &StageResult) {
    println!(
        "  {name:<8} [{scenario}] {:>5} upd/s ({} sent, {}/{} delivered) → offered {:>7.0} del/s, achieved {:>7.0} del/s | p50 {:>6.2} ms  p99 {:>7.2} ms  max {:>7.1} ms | server CPU {:.2} s ({:.0}% of a core) = {}/delivery | lost {} dup {} reordered {} refused {} closed {}{}{}{} | harness CPU {:.0}%",
        r.rate,
        r.sent,
        r.delivered,
        r.expected,
        r.offered_dps,
        r.dps,
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.server_cpu_s,
        r.server_util * 100.0,
        fmt_us(r.cpu_per_delivery),
        r.lost,
        r.dup,
        r.reordered,
        r.denied,
        r.closed,
        if r.echoes > 0 {
            format!(" | {} echoes to writers (not counted)", r.echoes)
        } else {
            String::new()
        },
        if r.unmarked > 0 {
            format!(" | {} update frames without a marker", r.unmarked)
        } else {
            String::new()
        },
        if r.merged > 0 {
            format!(" | {} frames carried several updates", r.merged)
        } else {
            String::new()
        },
        r.harness_util * 100.0,
    );
    if r.other_cores > NOISE_CORES {
        println!(
            "  {name:<8} warning: other processes used {:.2} cores during this stage: figures are noisy",
            r.other_cores
        );
    }
    if r.harness_util > 0.9 {
        println!(
            "  {name:<8} warning: the harness used {:.0}% of its CPU: this stage may show the harness's limit, not the server's",
            r.harness_util * 100.0
        );
    }
    if let Some(why) = &r.stop {
        println!("  {name:<8} stop: {why}");
    }
}

const SCENARIO_ONE: &str = "1 writer";
const SCENARIO_MANY: &str = "writers";

fn scenarios(args: &DocArgs) -> Vec<Scenario> {
    vec![
        Scenario {
            name: SCENARIO_ONE,
            writers: 1,
            readers: args.readers,
        },
        Scenario {
            name: SCENARIO_MANY,
            writers: args.writers,
            readers: args.readers,
        },
    ]
}

async fn run_side(target: &Target, plan: &Plan, args: &DocArgs) -> SideResult {
    let mem = memory(target, plan).await;
    if let Err(e) = &mem {
        println!("  {}: memory figure failed: {e}", target.name);
    }
    let mut results = Vec::new();
    for (k, sc) in scenarios(args).iter().enumerate() {
        let r = run_scenario(
            target,
            plan,
            sc,
            &target.scenario_urls[k],
            10_000 * (k as u64 + 1),
        )
        .await;
        if let Err(e) = &r {
            println!("  {} [{}]: failed: {e}", target.name, sc.name);
        }
        results.push(r);
    }
    SideResult {
        name: target.name,
        mem,
        scenarios: results,
    }
}

// ---------------------------------------------------------------------------------------
// The servers

/// Creates a task and `n` posts (spread over the users: each has a write budget), the
/// first `plain` with a short body, the rest with `doc_bytes` of filler; returns post ids.
async fn create_posts(
    addr: SocketAddr,
    origin: &str,
    s: &setup::Setup,
    plain: usize,
    filled: usize,
    doc_bytes: usize,
) -> Result<Vec<String>, String> {
    let study = &s.study_id;
    let task_id = setup::create_task(addr, origin, s, "co-editing load").await?;
    let n = plain + filled;
    let mut ids = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + 8).min(n))
            .map(|k| {
                let cookie = s.cookies[(k + 1) % s.cookies.len()].clone();
                let path = format!("/api/studies/{study}/tasks/{task_id}/posts");
                let body = if k < plain {
                    format!("Co-edited by the load test, scenario {k}.")
                } else {
                    filler(k - plain, doc_bytes)
                };
                async move {
                    let r = setup::post(
                        addr,
                        origin,
                        Some(&cookie),
                        &path,
                        json!({ "title": format!("load doc {k}"), "body": body }),
                    )
                    .await?;
                    let post = setup::expect(&r, 201, "create post")?;
                    setup::id_text(&post["post"]["id"]).ok_or("create post: no post.id".to_string())
                }
            })
            .collect();
        for r in futures_util::future::join_all(batch).await {
            ids.push(r?);
        }
        i += 8;
    }
    Ok(ids)
}

async fn run_studyon(args: &DocArgs, plan: &Plan, pin: bool) -> Result<SideResult, String> {
    let bin = crate::resolve_server_bin(args.server_bin.as_ref());
    if !bin.is_file() {
        return Err(format!(
            "no server binary at {} (build it: cargo build --release --bin studyon)",
            bin.display()
        ));
    }
    crate::warn_if_stale(&bin);
    let scratch = procs::Scratch::new("doc")?;
    let port = procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], procs::free_port()?).into();
    let data = scratch.0.join("data");
    let sockets = scenarios(args)
        .iter()
        .map(|s| s.writers + s.readers)
        .max()
        .unwrap_or(0)
        .max(args.docs);
    let server_args: Vec<String> = [
        "serve".to_string(),
        "--listen".into(),
        addr.to_string(),
        "--data-dir".into(),
        data.to_string_lossy().into_owned(),
        "--workers".into(),
        "1".into(),
        "--log".into(),
        "warn".into(),
        "--metrics-listen".into(),
        metrics_addr.to_string(),
        // Every simulated user signs up from this one loopback address.
        "--signup-burst".into(),
        "1000".into(),
    ]
    .into_iter()
    .chain(
        [
            // Measure the server, not the per-user socket message limit (50/s by default).
            ("--ws-rate", "100000".to_string()),
            // Many sockets per user (the default is 16 tabs).
            (
                "--ws-max-per-user",
                (sockets.div_ceil(args.users) + 4).to_string(),
            ),
            // The default ramp sends about 2 MB of updates to one document (cap: 2 MiB).
            ("--doc-max-bytes", (64 << 20).to_string()),
        ]
        .into_iter()
        // A `--server-arg` naming the same setting wins (the server takes each once).
        .filter(|(flag, _)| {
            !args
                .server_arg
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        })
        .flat_map(|(flag, value)| [flag.to_string(), value]),
    )
    .chain(args.server_arg.iter().cloned())
    .collect();
    println!("  server: {} {}", bin.display(), server_args.join(" "));
    let log = scratch.0.join("server.log");
    crate::with_studyon(&bin, &server_args, pin, log, addr, |pid| async move {
        let origin = format!("http://{addr}");
        let t = Instant::now();
        let s = setup::run(addr, &origin, args.users).await?;
        let posts = create_posts(addr, &origin, &s, 2, args.docs, args.doc_bytes).await?;
        println!(
            "  setup: {} users in one study, {} posts in {:.1} s",
            s.cookies.len(),
            posts.len(),
            t.elapsed().as_secs_f64()
        );
        let url = |p: &String| format!("ws://{addr}/ws/doc/{p}");
        let target = Target {
            kind: Kind::StudyOn,
            name: "studyon",
            addr,
            origin: Some(origin.clone()),
            cookies: s.cookies.clone(),
            pid,
            scenario_urls: posts[..2].iter().map(url).collect(),
            mem_urls: posts[2..].iter().map(url).collect(),
            metrics: Some(metrics_addr),
        };
        Ok(run_side(&target, plan, args).await)
    })
    .await
}

const BASELINE_DIR: &str = "baseline-yjs";
const BASELINE_SERVER: &str = "node_modules/@y/websocket-server/src/server.js";

async fn run_baseline(args: &DocArgs, plan: &Plan, pin: bool) -> Result<SideResult, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(BASELINE_DIR);
    crate::npm_ci(&dir, "node_modules/@y/websocket-server/package.json").await?;
    let scratch = procs::Scratch::new("baseline-yjs")?;
    let port = procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let server = procs::spawn_with_env(
        "y-websocket",
        &args.node,
        &[BASELINE_SERVER.to_string()],
        &[("HOST", "127.0.0.1".into()), ("PORT", port.to_string())],
        pin,
        scratch.0.join("node.log"),
        Some(&dir),
    )?;
    let result = async {
        let listening = procs::wait_until(crate::READY_TIMEOUT, || async {
            TcpStream::connect(addr).await.is_ok()
        })
        .await;
        if !listening {
            return Err(format!(
                "y-websocket did not listen within {:?}; output:\n{}",
                crate::READY_TIMEOUT,
                server.log_tail(20)
            ));
        }
        let target = Target {
            kind: Kind::Baseline,
            name: "yjs",
            addr,
            origin: None,
            cookies: Vec::new(),
            pid: server.pid,
            scenario_urls: (0..2).map(|k| format!("ws://{addr}/lt-doc-{k}")).collect(),
            mem_urls: (0..plan.docs)
                .map(|k| format!("ws://{addr}/lt-mem-{k}"))
                .collect(),
            metrics: None,
        };
        Ok(run_side(&target, plan, args).await)
    }
    .await;
    server.stop().await;
    result
}

// ---------------------------------------------------------------------------------------
// Entry and summary

pub async fn run(mut args: DocArgs, cpus: Vec<usize>) -> Result<bool, String> {
    args.apply_smoke();
    let started = Instant::now();
    let pin = procs::taskset().is_some();
    println!(
        "doc: one document with 1 writer + {r} readers, one with {w} writers + {r} readers; rates {:?} updates/s, {} s per stage; memory over {} documents",
        args.rates,
        args.stage_secs,
        args.docs,
        r = args.readers,
        w = args.writers,
    );
    if pin {
        println!("servers pinned to core 0 with taskset; harness on CPUs {cpus:?}");
    } else {
        println!(
            "WARNING: taskset not found: servers run WITHOUT core pinning (figures are not one-core figures); harness on CPUs {cpus:?}"
        );
    }
    println!("machine load average at the start: {}", procs::loadavg());
    let plan = Plan {
        rates: args.rates.clone(),
        stage_secs: args.stage_secs,
        drain_secs: args.drain_secs,
        p99_limit_ms: args.p99_limit_ms,
        harness_cpus: cpus.len().max(1),
        docs: args.docs,
        doc_bytes: args.doc_bytes,
    };

    println!("\n== StudyOn (persists every update in SQLite before relaying it)");
    let studyon = run_studyon(&args, &plan, pin).await;
    if let Err(e) = &studyon {
        println!("  StudyOn run failed: {e}");
    }
    let baseline = if args.no_baseline {
        None
    } else {
        println!(
            "\n== Baseline: stock y-websocket server (@y/websocket-server 0.1.1, loadtest/{BASELINE_DIR}; documents in memory only, nothing persisted)"
        );
        let b = run_baseline(&args, &plan, pin).await;
        if let Err(e) = &b {
            println!("  baseline run failed: {e}");
        }
        Some(b)
    };
    println!();
    let ok = summarize(&studyon, baseline.as_ref(), args.smoke);
    println!(
        "machine load average at the end: {}; total run time {:.0} s",
        procs::loadavg(),
        started.elapsed().as_secs_f64()
    );
    println!("\nresult: {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

fn ratio(a: f64, b: f64) -> String {
    crate::ratio(a, b)
}

fn summarize(
    studyon: &Result<SideResult, String>,
    baseline: Option<&Result<SideResult, String>>,
    smoke: bool,
) -> bool {
    println!("== Summary");
    let mut ok = true;
    for side in std::iter::once(studyon).chain(baseline) {
        let Ok(side) = side else {
            ok = false;
            continue;
        };
        let is_studyon = side.name == "studyon";
        match &side.mem {
            Ok(m) => println!(
                "{:<8} memory per loaded document (1 KiB-ish text, one editor socket): {:.1} kB ({} documents, RSS {:.1} → {:.1} MB)",
                side.name,
                m.per_doc_kb(),
                m.docs,
                mb(m.rss_before_kb),
                mb(m.rss_loaded_kb)
            ),
            Err(_) => ok = false,
        }
        for sc in &side.scenarios {
            let Ok(sc) = sc else {
                ok = false;
                continue;
            };
            let lost: u64 = sc.stages.iter().map(|s| s.lost).sum();
            let dup: u64 = sc.stages.iter().map(|s| s.dup).sum();
            let reordered: u64 = sc.stages.iter().map(|s| s.reordered).sum();
            let denied: u64 = sc.stages.iter().map(|s| s.denied).sum();
            let closed: usize = sc.stages.iter().map(|s| s.closed).max().unwrap_or(0);
            let delivered: u64 = sc.stages.iter().map(|s| s.delivered).sum();
            let label = format!("{} [{}]", side.name, sc.name);
            match &sc.stop {
                Some(why) => println!(
                    "{label}: ramp stopped at {} updates/s: {why}",
                    sc.stages.last().map(|s| s.rate).unwrap_or(0)
                ),
                None => println!("{label}: no saturation up to the highest rate"),
            }
            if let Some(p) = sc.sustained() {
                println!(
                    "{label}: most deliveries/s in a stage that kept up: {:.0} at {} updates/s (p50 {:.2} ms, p99 {:.2} ms, {}/delivery, {:.0}% of the core)",
                    p.dps,
                    p.rate,
                    p.p50_ms,
                    p.p99_ms,
                    fmt_us(p.cpu_per_delivery),
                    p.server_util * 100.0
                );
            }
            if let Some(p) = sc.peak() {
                println!(
                    "{label}: peak {:.0} deliveries/s at {} updates/s (p99 {:.2} ms, {}/delivery); lost {lost}, duplicated {dup}, out of order {reordered}, refused {denied}, sockets closed {closed}; RSS {:.1} MB with {} sockets, {:.1} MB after the ramp",
                    p.dps,
                    p.rate,
                    p.p99_ms,
                    fmt_us(p.cpu_per_delivery),
                    mb(sc.rss_kb[1]),
                    sc.writers + sc.readers,
                    mb(sc.rss_kb[2])
                );
            }
            if is_studyon
                && (dup > 0
                    || reordered > 0
                    || (smoke && (lost > 0 || denied > 0 || closed > 0 || delivered == 0)))
            {
                ok = false;
            }
            if is_studyon && !smoke {
                let below: u64 = sc
                    .stages
                    .iter()
                    .filter(|s| s.stop.is_none())
                    .map(|s| s.lost)
                    .sum();
                if below > 0 {
                    ok = false;
                }
            }
        }
    }

    // The target: 1.2 × y-sweet's relay rate, on one core, persisting every update.
    if let Ok(s) = studyon
        && let Some(Ok(one)) = s.scenarios.first()
        && !smoke
    {
        let target = YSWEET_FRAMES_PER_SEC * TARGET_VS_YSWEET;
        let best = one.sustained().map(|x| x.dps).unwrap_or(0.0);
        let cpu = one
            .sustained()
            .or(one.peak())
            .and_then(|x| x.cpu_per_delivery);
        println!(
            "\nTarget (1 writer, {} readers): ≥ {:.0} frames/s = {TARGET_VS_YSWEET}× y-sweet's ≈ {:.0} on this machine class: StudyOn kept up with {:.0} frames/s ({} y-sweet's reference) — {}",
            one.readers,
            target,
            YSWEET_FRAMES_PER_SEC,
            best,
            ratio(best, YSWEET_FRAMES_PER_SEC),
            if best >= target { "MET" } else { "NOT MET" }
        );
        if let Some(c) = cpu {
            println!(
                "  server CPU per delivered frame there: {:.2} µs (y-sweet ≈ {YSWEET_CPU_PER_FRAME_US} µs). The cost per frame falls as the rate rises (more frames per send), so it is no fixed ceiling; see each stage's share of the core.",
                c * 1e6
            );
        }
    }

    if let (Ok(s), Some(Ok(b))) = (studyon, baseline) {
        println!(
            "\nStudyOn / y-websocket (same run, same machine, both on core 0; StudyOn stores every update in SQLite before relaying it, y-websocket keeps documents in memory only):"
        );
        if let (Ok(sm), Ok(bm)) = (&s.mem, &b.mem) {
            println!(
                "  memory per loaded document   {:>8.1} kB / {:>8.1} kB = {}",
                sm.per_doc_kb(),
                bm.per_doc_kb(),
                ratio(sm.per_doc_kb(), bm.per_doc_kb())
            );
        }
        for (ss, bs) in s.scenarios.iter().zip(&b.scenarios) {
            let (Ok(ss), Ok(bs)) = (ss, bs) else {
                continue;
            };
            println!(
                "  [{}] {} writer(s), {} readers:",
                ss.name, ss.writers, ss.readers
            );
            if let (Some(sp), Some(bp)) = (ss.sustained(), bs.sustained()) {
                println!(
                    "    most deliveries/s that kept up {:>8.0} / {:>8.0} = {}",
                    sp.dps,
                    bp.dps,
                    ratio(sp.dps, bp.dps)
                );
            }
            if let (Some(sp), Some(bp)) = (ss.peak(), bs.peak()) {
                println!(
                    "    peak deliveries/s              {:>8.0} / {:>8.0} = {}",
                    sp.dps,
                    bp.dps,
                    ratio(sp.dps, bp.dps)
                );
                println!(
                    "    CPU per delivery at peak       {:>8} / {:>8} = {}",
                    fmt_us(sp.cpu_per_delivery),
                    fmt_us(bp.cpu_per_delivery),
                    ratio(
                        sp.cpu_per_delivery.unwrap_or(f64::NAN),
                        bp.cpu_per_delivery.unwrap_or(f64::NAN)
                    )
                );
                println!(
                    "    p99 at peak                 {:>8.2} ms / {:>8.2} ms = {}",
                    sp.p99_ms,
                    bp.p99_ms,
                    ratio(sp.p99_ms, bp.p99_ms)
                );
            }
            println!(
                "    per rate (both ran it): upd/s | deliveries/s S/B | CPU per delivery S/B | p50 S/B | p99 S/B"
            );
            for x in &ss.stages {
                if let Some(y) = bs.stages.iter().find(|y| y.rate == x.rate) {
                    println!(
                        "      {:>5} | {:>7.0} / {:>7.0} = {:>6} | {:>9} / {:>9} = {:>6} | {:>6.2} / {:>6.2} ms = {:>6} | {:>7.2} / {:>7.2} ms = {}",
                        x.rate,
                        x.dps,
                        y.dps,
                        ratio(x.dps, y.dps),
                        fmt_us(x.cpu_per_delivery),
                        fmt_us(y.cpu_per_delivery),
                        ratio(
                            x.cpu_per_delivery.unwrap_or(f64::NAN),
                            y.cpu_per_delivery.unwrap_or(f64::NAN)
                        ),
                        x.p50_ms,
                        y.p50_ms,
                        ratio(x.p50_ms, y.p50_ms),
                        x.p99_ms,
                        y.p99_ms,
                        ratio(x.p99_ms, y.p99_ms)
                    );
                }
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;

    #[test]
    fn var_uint_is_lib0s() {
        let enc = |v| {
            let mut o = Vec::new();
            put_var_uint(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [127]);
        assert_eq!(enc(128), [0x80, 1]);
        assert_eq!(enc(300), [0xac, 2]);
    }

    #[test]
    fn a_writers_update_carries_its_marker_verbatim() {
        let doc = yrs::Doc::with_client_id(10_001);
        let text = doc.get_or_insert_text("body");
        let mut frames = Vec::new();
        for id in 0..3u64 {
            let mut txn = doc.transact_mut();
            text.push(&mut txn, &marker(2, 5, 1000 + id, 0xabcdef + id));
            frames.push(update_frame(&txn.encode_update_v1()));
        }
        for (id, f) in frames.iter().enumerate() {
            assert_eq!(&f[..2], &[0, 2]);
            let mut found = Vec::new();
            marks(f, |m| found.push(m));
            assert_eq!(
                found,
                [Mark {
                    stage: 2,
                    writer: 5,
                    id: 1000 + id as u64,
                    due_us: 0xabcdef + id as u64
                }]
            );
        }
        // The update is a real one: another document takes it and shows the text.
        let other = yrs::Doc::with_client_id(1);
        let t2 = other.get_or_insert_text("body");
        for f in &frames {
            let update = yrs::Update::decode_v1(&f[3..]).unwrap();
            other.transact_mut().apply_update(update).unwrap();
        }
        assert!(t2.get_string(&other.transact()).starts_with("~lt2.5.3e8."));
    }

    #[test]
    fn broken_markers_are_skipped() {
        let mut found = Vec::new();
        marks(b"xx~lt1.2~~lt~lt1.2.3.4~zz~ltq.1.1.1~", |m| found.push(m));
        assert_eq!(
            found,
            [Mark {
                stage: 1,
                writer: 2,
                id: 3,
                due_us: 4
            }]
        );
    }

    #[test]
    fn ids_count_once() {
        let mut st = RecvStats::new(1, 1);
        assert!(st.first_time(0));
        assert!(st.first_time(200));
        assert!(!st.first_time(200));
        assert!(!st.first_time(0));
    }
}
