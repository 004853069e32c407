//! The `chat-fanout` engine: N WebSocket clients in one room, an open-loop rate ramp, and per
//! stage latency, throughput, loss, duplicates and server CPU. The same engine drives StudyOn
//! (`chat.send` → `chat.message`) and the Node baseline (any text frame is relayed as is).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::procs;

/// Per user and room: StudyOn's chat limit (PROTOCOL.md, "Chat rooms").
pub const PER_USER_RATE: f64 = 5.0;
/// Per socket: StudyOn's socket-wide request limit is 50/s; stay below it.
const PER_SOCKET_RATE: f64 = 40.0;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Per-socket read buffer, bytes.
const READ_BUFFER: usize = 8 * 1024;
/// Cores used by other processes during a stage above which its figures count as noisy.
const NOISE_CORES: f64 = 0.2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    StudyOn,
    Baseline,
}

pub struct Target {
    pub kind: Kind,
    pub name: &'static str,
    pub addr: SocketAddr,
    pub url: String,
    pub origin: Option<String>,
    /// `Cookie` header per user; empty for the baseline (which has no users).
    pub cookies: Vec<String>,
    /// The room id as JSON text (StudyOn only).
    pub room_json: String,
    pub pid: u32,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub clients: usize,
    pub users: usize,
    pub rates: Vec<u32>,
    pub stage_secs: f64,
    pub drain_secs: f64,
    pub p99_limit_ms: f64,
    pub harness_cpus: usize,
    /// Baseline only: pad each frame to about this many bytes (StudyOn's average
    /// `chat.message` frame), so both sides move the same bytes per delivery.
    pub pad_to: usize,
}

#[derive(Clone, Debug, Default)]
pub struct StageResult {
    pub rate: u32,
    pub sent: u64,
    /// Messages the server took: `chat.ack`ed (StudyOn) or sent (baseline).
    pub accepted: u64,
    pub delivered: u64,
    pub expected: u64,
    pub offered_dps: f64,
    pub dps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub server_cpu_s: f64,
    /// Server CPU time ÷ wall time of the stage and its drain (1.0 = its whole core).
    pub server_util: f64,
    pub cpu_per_delivery: Option<f64>,
    pub harness_util: f64,
    /// CPU used by everything but the server and the harness, in cores (noise from elsewhere).
    pub other_cores: f64,
    pub lost: u64,
    pub dup: u64,
    pub gaps: u64,
    pub rate_limited: u64,
    pub errors: BTreeMap<String, u64>,
    pub closed: usize,
    pub sender_users: usize,
    pub sender_sockets: usize,
    pub stop: Option<String>,
}

impl StageResult {
    pub fn other_errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

pub struct RunResult {
    pub name: &'static str,
    pub stages: Vec<StageResult>,
    /// Why the ramp stopped (None: it ran every rate without saturating).
    pub stop: Option<String>,
    /// Average size of a received `chat.message` frame, bytes.
    pub avg_frame_bytes: f64,
}

impl RunResult {
    /// The stage with the most deliveries per second.
    pub fn peak(&self) -> Option<&StageResult> {
        self.stages.iter().max_by(|a, b| a.dps.total_cmp(&b.dps))
    }
}

#[derive(Default)]
struct StageCounters {
    sent: AtomicU64,
    acked: AtomicU64,
    rate_limited: AtomicU64,
    other_errors: AtomicU64,
    delivered: AtomicU64,
    last_arrival_us: AtomicU64,
    codes: Mutex<BTreeMap<String, u64>>,
}

struct Shared {
    base: Instant,
    kind: Kind,
    stages: Vec<StageCounters>,
    closed: AtomicUsize,
    frame_bytes: AtomicU64,
    frames: AtomicU64,
}

impl Shared {
    fn us(&self, t: Instant) -> u64 {
        t.duration_since(self.base).as_micros() as u64
    }
}

struct ConnStats {
    hist: Vec<Histogram<u32>>,
    recv: Vec<u64>,
    dup: Vec<u64>,
    gaps: Vec<u64>,
    /// StudyOn: the newest room seq seen (from `chat.joined`, then each message).
    last_seq: u64,
    /// Baseline: the next per-sender counter expected from each sender socket.
    next_from: HashMap<u32, u64>,
    closed: Option<String>,
}

impl ConnStats {
    fn new(stages: usize, last_seq: u64) -> ConnStats {
        ConnStats {
            hist: (0..stages).map(|_| new_hist()).collect(),
            recv: vec![0; stages],
            dup: vec![0; stages],
            gaps: vec![0; stages],
            last_seq,
            next_from: HashMap::new(),
            closed: None,
        }
    }
}

fn new_hist() -> Histogram<u32> {
    // Microseconds, 1 µs to 120 s, two significant digits (1 % resolution).
    Histogram::new_with_bounds(1, 120_000_000, 2).expect("histogram bounds")
}

type Ws = WebSocketStream<TcpStream>;

/// One client socket run by a reader and a writer task; `S` is what its reader records.
/// The chat and document scenarios share it.
pub struct Conn<S> {
    pub tx: mpsc::UnboundedSender<Message>,
    pub stats: Arc<Mutex<S>>,
    pub reader: JoinHandle<()>,
    pub writer: JoinHandle<()>,
}

/// The text of the next frame, skipping control frames; bounded by `limit`.
async fn next_text(ws: &mut Ws, limit: Duration) -> Result<String, String> {
    let end = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(end, ws.next())
            .await
            .map_err(|_| format!("no frame within {limit:?}"))?;
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_string()),
            Some(Ok(Message::Close(f))) => return Err(format!("closed by the server: {f:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".into()),
        }
    }
}

/// Opens client `idx` (user `idx % users`); on StudyOn waits for `hello`, joins the room and
/// waits for `chat.joined`. Returns the socket and the room's newest seq at join.
async fn open(target: &Target, idx: usize, users: usize) -> Result<(Ws, u64), String> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).ok();
    let mut req = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Some(origin) = &target.origin {
        req.headers_mut().insert(
            "Origin",
            HeaderValue::from_str(origin).map_err(|e| e.to_string())?,
        );
    }
    if !target.cookies.is_empty() {
        let cookie = &target.cookies[idx % users];
        req.headers_mut().insert(
            "Cookie",
            HeaderValue::from_str(cookie).map_err(|e| e.to_string())?,
        );
    }
    // tungstenite zero-fills its read buffer up to this size before every read: the 128 KiB
    // default made memset the harness's top cost. Frames here are a few hundred bytes.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(config))
        .await
        .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    if target.kind == Kind::Baseline {
        return Ok((ws, 0));
    }
    loop {
        let t = next_text(&mut ws, CONNECT_TIMEOUT).await?;
        let v: Value = serde_json::from_str(&t).map_err(|e| format!("bad frame {t}: {e}"))?;
        if v["type"] == "hello" {
            break;
        }
    }
    let join = format!(
        r#"{{"type":"chat.join","id":"j","room_id":{}}}"#,
        target.room_json
    );
    ws.send(Message::text(join))
        .await
        .map_err(|e| format!("send chat.join: {e}"))?;
    loop {
        let t = next_text(&mut ws, CONNECT_TIMEOUT).await?;
        let v: Value = serde_json::from_str(&t).map_err(|e| format!("bad frame {t}: {e}"))?;
        match v["type"].as_str() {
            Some("chat.joined") => return Ok((ws, v["last_seq"].as_u64().unwrap_or(0))),
            Some("error") => return Err(format!("chat.join refused: {t}")),
            _ => {}
        }
    }
}

/// The value after `key` in `text`, up to the next `"`, `,` or `}`.
fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let i = text.find(key)? + key.len();
    let rest = &text[i..];
    let end = rest.find(['"', ',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// What a `chat.message` frame tells us: (room seq, stage, scheduled send µs, sender, n).
fn parse_message(text: &str) -> Option<(u64, usize, u64, u32, u64)> {
    // Fast path without building a JSON tree: these frames are most of the traffic, and the
    // harness shares one core with the kernel's side of every socket.
    let seq: u64 = after(text, "\"seq\":")?.trim().parse().ok()?;
    let body = after(text, "\"lt:")?;
    let mut parts = body.split(':');
    let stage = parts.next()?.parse().ok()?;
    let t = parts.next()?.parse().ok()?;
    let p = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    Some((seq, stage, t, p, n))
}

fn stage_of_id(id: &Value) -> Option<usize> {
    // Send ids are "s<stage>.<n>".
    let s = id.as_str()?.strip_prefix('s')?;
    s.split('.').next()?.parse().ok()
}

fn on_text(text: &str, shared: &Shared, stats: &Mutex<ConnStats>) {
    if text.contains("\"type\":\"chat.message\"") {
        let now = shared.us(Instant::now());
        let Some((seq, stage, sent_us, sender, n)) = parse_message(text) else {
            return;
        };
        if stage >= shared.stages.len() {
            return;
        }
        let counters = &shared.stages[stage];
        counters.delivered.fetch_add(1, Relaxed);
        shared.frames.fetch_add(1, Relaxed);
        shared.frame_bytes.fetch_add(text.len() as u64, Relaxed);
        counters.last_arrival_us.fetch_max(now, Relaxed);
        let mut guard = stats.lock().unwrap();
        let st = &mut *guard;
        st.hist[stage].saturating_record(now.saturating_sub(sent_us).max(1));
        st.recv[stage] += 1;
        match shared.kind {
            Kind::StudyOn => {
                if seq <= st.last_seq {
                    st.dup[stage] += 1;
                } else {
                    st.gaps[stage] += seq - st.last_seq - 1;
                    st.last_seq = seq;
                }
            }
            Kind::Baseline => {
                let next = st.next_from.entry(sender).or_insert(0);
                if n < *next {
                    st.dup[stage] += 1;
                } else {
                    st.gaps[stage] += n - *next;
                    *next = n + 1;
                }
            }
        }
        return;
    }
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let ty = v["type"].as_str().unwrap_or("");
    let stage = stage_of_id(&v["id"]);
    match (ty, stage) {
        ("chat.ack", Some(s)) if s < shared.stages.len() => {
            shared.stages[s].acked.fetch_add(1, Relaxed);
        }
        ("error", s) => {
            let s = s.unwrap_or(0).min(shared.stages.len() - 1);
            let code: Cow<str> = v["error"].as_str().map(Cow::Borrowed).unwrap_or("?".into());
            if code == "rate_limited" {
                shared.stages[s].rate_limited.fetch_add(1, Relaxed);
            } else {
                shared.stages[s].other_errors.fetch_add(1, Relaxed);
                *shared.stages[s]
                    .codes
                    .lock()
                    .unwrap()
                    .entry(code.into_owned())
                    .or_insert(0) += 1;
            }
        }
        _ => {}
    }
}

/// A socket's writer task: sends what is queued, in order, and closes the socket when the
/// queue's senders are gone (or stops at the first failed send).
pub fn spawn_writer<S>(mut sink: S) -> (mpsc::UnboundedSender<Message>, tokio::task::JoinHandle<()>)
where
    S: futures_util::Sink<Message> + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    (tx, writer)
}

fn spawn_conn(ws: Ws, last_seq: u64, shared: Arc<Shared>) -> Conn<ConnStats> {
    let (sink, mut stream): (SplitSink<Ws, Message>, SplitStream<Ws>) = ws.split();
    let stats = Arc::new(Mutex::new(ConnStats::new(shared.stages.len(), last_seq)));
    let (tx, writer) = crate::fanout::spawn_writer(sink);
    let st = stats.clone();
    let reader = tokio::spawn(async move {
        // Reading also answers the server's pings: tungstenite queues the pong and flushes it
        // on the next read.
        let reason = loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => on_text(t.as_str(), &shared, &st),
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

/// Sender sockets for a stage: every user sends (spreading the per-user limit), with more
/// tabs per user where one socket would pass `PER_SOCKET_RATE`. Client `i` belongs to user
/// `i % users`, so taking clients `0..k` walks the users round-robin.
fn senders(rate: u32, clients: usize, users: usize) -> Vec<usize> {
    let per_socket = (rate as f64 / PER_SOCKET_RATE).ceil() as usize;
    let k = per_socket.max(users).div_ceil(users) * users;
    (0..k.min(clients)).collect()
}

/// Users needed for `rate` msg/s under the per-user chat limit.
pub fn users_needed(rate: u32) -> usize {
    (rate as f64 / PER_USER_RATE).ceil() as usize
}

/// Connects every client, runs the ramp and returns the figures; closes the clients at the end.
pub async fn run(target: &Target, plan: &Plan) -> Result<RunResult, String> {
    let shared = Arc::new(Shared {
        base: Instant::now(),
        kind: target.kind,
        // A slot per stage run: each rate at most twice (one repeat when noisy).
        stages: (0..plan.rates.len() * 2)
            .map(|_| StageCounters::default())
            .collect(),
        closed: AtomicUsize::new(0),
        frame_bytes: AtomicU64::new(0),
        frames: AtomicU64::new(0),
    });
    let users = if target.kind == Kind::StudyOn {
        plan.users
    } else {
        plan.users.max(1)
    };

    // Connect 16 at a time.
    let t_connect = Instant::now();
    let mut conns: Vec<Conn<ConnStats>> = Vec::with_capacity(plan.clients);
    let mut idx = 0;
    while idx < plan.clients {
        let batch: Vec<_> = (idx..(idx + 16).min(plan.clients))
            .map(|i| async move {
                tokio::time::timeout(CONNECT_TIMEOUT * 2, open(target, i, users))
                    .await
                    .map_err(|_| "connect and join took too long".to_string())
                    .and_then(|r| r)
                    .map_err(|e| format!("client {i}: {e}"))
            })
            .collect();
        for r in futures_util::future::join_all(batch).await {
            let (ws, last_seq) = match r {
                Ok(x) => x,
                Err(e) => {
                    close_all(conns).await;
                    return Err(e);
                }
            };
            conns.push(spawn_conn(ws, last_seq, shared.clone()));
        }
        idx += 16;
    }
    println!(
        "  {}: {} clients connected{} in {:.1} s",
        target.name,
        conns.len(),
        if target.kind == Kind::StudyOn {
            " and joined"
        } else {
            ""
        },
        t_connect.elapsed().as_secs_f64()
    );
    // Let the join/presence traffic settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut next_n = vec![0u64; conns.len()];
    let mut stages = Vec::new();
    let mut stop = None;
    let mut slot = 0;
    let mut repeated = false;
    let mut ri = 0;
    while ri < plan.rates.len() {
        let rate = plan.rates[ri];
        if !repeated && target.kind == Kind::StudyOn && users_needed(rate) > plan.users {
            println!(
                "  {}: note: {rate} msg/s needs at least {} users at {} msg/s per user and room; \
                 only {} exist, so expect rate_limited (use --users, at most 100)",
                target.name,
                users_needed(rate),
                PER_USER_RATE,
                plan.users
            );
        }
        let r = run_stage(target, plan, &shared, &conns, &mut next_n, slot, rate).await;
        slot += 1;
        print_stage(target.name, &r);
        // Saturation while something else ate CPU may be that something: run the rate once more.
        let noisy_saturation = r
            .stop
            .as_deref()
            .is_some_and(|w| w.starts_with("saturated"))
            && r.other_cores > NOISE_CORES;
        if noisy_saturation && !repeated {
            println!(
                "  {}: other processes used {:.2} cores in that stage: running {rate} msg/s once more",
                target.name, r.other_cores
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
    close_all(conns).await;
    let frames = shared.frames.load(Relaxed);
    Ok(RunResult {
        name: target.name,
        stages,
        stop,
        avg_frame_bytes: shared.frame_bytes.load(Relaxed) as f64 / frames.max(1) as f64,
    })
}

/// Closes every socket (its writer ends with the channel) and waits up to 5 s for the
/// tasks, aborting what is left.
pub async fn close_all<S>(conns: Vec<Conn<S>>) {
    let mut handles = Vec::new();
    for c in conns {
        drop(c.tx);
        handles.push(c.writer);
        handles.push(c.reader);
    }
    let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
    if tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(handles),
    )
    .await
    .is_err()
    {
        for a in aborts {
            a.abort();
        }
    }
}

async fn run_stage(
    target: &Target,
    plan: &Plan,
    shared: &Shared,
    conns: &[Conn<ConnStats>],
    next_n: &mut [u64],
    si: usize,
    rate: u32,
) -> StageResult {
    let counters = &shared.stages[si];
    let send_to = senders(rate, conns.len(), plan.users);
    let total = (rate as f64 * plan.stage_secs).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let cpu0 = procs::cpu_secs(target.pid);
    let own0 = procs::own_cpu_secs();
    let busy0 = procs::machine_busy_secs();
    let t0 = Instant::now();
    let t0_us = shared.us(t0);

    // Open loop: message i goes out at t0 + i/rate whatever the replies; its timestamp is the
    // scheduled time, so a harness that falls behind shows up as latency, not as a lower rate.
    let mut i = 0u64;
    while i < total {
        let now = Instant::now();
        while i < total {
            let due = t0 + interval.mul_f64(i as f64);
            if due > now {
                break;
            }
            let s = send_to[(i % send_to.len() as u64) as usize];
            let n = next_n[s];
            next_n[s] += 1;
            let due_us = shared.us(due);
            let body = format!("lt:{si}:{due_us}:{s}:{n}");
            let frame = match target.kind {
                Kind::StudyOn => format!(
                    r#"{{"type":"chat.send","id":"s{si}.{i}","room_id":{},"client_id":"lt-{si}-{s}-{n}","body":"{body}"}}"#,
                    target.room_json
                ),
                Kind::Baseline => {
                    let mut f =
                        format!(r#"{{"type":"chat.message","message":{{"seq":0,"body":"{body}"}}"#);
                    // `,"pad":""}` is 10 bytes.
                    if plan.pad_to > f.len() + 10 {
                        f.push_str(r#","pad":""#);
                        f.extend(std::iter::repeat_n('x', plan.pad_to - f.len() - 2));
                        f.push('"');
                    }
                    f.push('}');
                    f
                }
            };
            counters.sent.fetch_add(1, Relaxed);
            let _ = conns[s].tx.send(Message::text(frame));
            i += 1;
        }
        if i < total {
            tokio::time::sleep_until((t0 + interval.mul_f64(i as f64)).into()).await;
        }
    }
    let send_end = Instant::now();

    // Drain: wait (bounded) until every client has every accepted message of this stage.
    let clients = conns.len() as u64;
    let drain_end = send_end + Duration::from_secs_f64(plan.drain_secs);
    loop {
        let sent = counters.sent.load(Relaxed);
        let answered = counters.acked.load(Relaxed)
            + counters.rate_limited.load(Relaxed)
            + counters.other_errors.load(Relaxed);
        let accepted = match target.kind {
            Kind::StudyOn => counters.acked.load(Relaxed),
            Kind::Baseline => sent,
        };
        let all_answered = target.kind == Kind::Baseline || answered >= sent;
        if all_answered && counters.delivered.load(Relaxed) >= accepted * clients {
            break;
        }
        if Instant::now() >= drain_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = procs::cpu_secs(target.pid);
    let own1 = procs::own_cpu_secs();
    let busy1 = procs::machine_busy_secs();

    let sent = counters.sent.load(Relaxed);
    let accepted = match target.kind {
        Kind::StudyOn => counters.acked.load(Relaxed),
        Kind::Baseline => sent,
    };
    let mut hist = new_hist();
    let (mut recv_total, mut lost, mut dup, mut gaps, mut closed) = (0, 0, 0, 0, 0);
    for c in conns {
        let st = c.stats.lock().unwrap();
        hist.add(&st.hist[si]).ok();
        recv_total += st.recv[si];
        let unique = st.recv[si] - st.dup[si];
        lost += accepted.saturating_sub(unique);
        dup += st.dup[si];
        gaps += st.gaps[si];
        if st.closed.is_some() {
            closed += 1;
        }
    }
    let last = counters.last_arrival_us.load(Relaxed);
    let span = ((last.saturating_sub(t0_us)) as f64 / 1e6).max(plan.stage_secs);
    let dps = recv_total as f64 / span;
    let offered_dps = rate as f64 * clients as f64;
    let server_cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let mut r = StageResult {
        rate,
        sent,
        accepted,
        delivered: recv_total,
        expected: accepted * clients,
        offered_dps,
        dps,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: hist.max() as f64 / 1000.0,
        server_cpu_s,
        server_util: server_cpu_s / wall,
        cpu_per_delivery: (recv_total > 0 && server_cpu_s.is_finite())
            .then(|| server_cpu_s / recv_total as f64),
        harness_util: (own1 - own0) / wall / plan.harness_cpus.max(1) as f64,
        other_cores: ((busy1 - busy0) - (own1 - own0) - server_cpu_s.max(0.0)).max(0.0) / wall,
        lost,
        dup,
        gaps,
        rate_limited: counters.rate_limited.load(Relaxed),
        errors: counters.codes.lock().unwrap().clone(),
        closed,
        sender_users: plan.users.min(send_to.len()),
        sender_sockets: send_to.len(),
        stop: None,
    };
    r.stop = if r.delivered == 0 {
        Some("no message arrived".into())
    } else if r.closed > 0 {
        Some(format!("{} sockets closed by the server", r.closed))
    } else if r.rate_limited > 0 {
        Some(format!(
            "per-user chat rate limit ({} rate_limited): {rate} msg/s needs at least {} sender users, \
             {} used — a limit of the setup, not server saturation",
            r.rate_limited,
            users_needed(rate),
            r.sender_users
        ))
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
    } else if r.lost > 0 || r.dup > 0 {
        Some(format!("{} lost, {} duplicated", r.lost, r.dup))
    } else {
        None
    };
    r
}

pub fn fmt_cpu(c: Option<f64>) -> String {
    match c {
        Some(s) => format!("{:.2} µs", s * 1e6),
        None => "n/a".into(),
    }
}

fn print_stage(name: &str, r: &StageResult) {
    let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "  {name:<8} {:>5} msg/s ({} sent, {} accepted, {}/{} delivered) → offered {:>8.0} del/s, achieved {:>8.0} del/s | p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.1} ms | server CPU {:.2} s ({:.0}% of a core) = {}/delivery | lost {} dup {} gaps {} rate_limited {} errors {}{} | {} senders ({} users), harness CPU {:.0}%",
        r.rate,
        r.sent,
        r.accepted,
        r.delivered,
        r.expected,
        r.offered_dps,
        r.dps,
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.server_cpu_s,
        r.server_util * 100.0,
        fmt_cpu(r.cpu_per_delivery),
        r.lost,
        r.dup,
        r.gaps,
        r.rate_limited,
        r.other_errors(),
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join(", "))
        },
        r.sender_sockets,
        r.sender_users,
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
            "  {name:<8} warning: the harness used {:.0}% of its CPU: this stage's figures may be the harness's limit, not the server's",
            r.harness_util * 100.0
        );
    }
    if let Some(why) = &r.stop {
        println!("  {name:<8} stop: {why}");
    }
}

/// How a server's close frame reads in the report: `close CODE REASON`.
pub fn close_reason(f: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    f.map(|f| format!("close {} {}", u16::from(f.code), f.reason))
        .unwrap_or_else(|| "close".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_chat_message_frame() {
        let f = r#"{"type":"chat.message","room_id":3,"message":{"seq":17,"client_id":"lt-1-4-9","author":{"id":2,"display_name":"Load 1"},"body":"lt:1:123456:4:9","created_at":"x","edited_at":null,"deleted":false,"reactions":{},"mentions":[]}}"#;
        assert_eq!(parse_message(f), Some((17, 1, 123456, 4, 9)));
    }

    #[test]
    fn senders_walk_users_and_respect_the_socket_limit() {
        assert_eq!(senders(50, 200, 20).len(), 20);
        assert_eq!(senders(1600, 200, 20).len(), 40);
        assert_eq!(senders(100, 10, 2).len(), 4);
        assert_eq!(senders(10_000, 10, 2).len(), 10);
        assert_eq!(users_needed(1600), 320);
    }
}
