//! `loadtest video`: the SFU's forwarding cost. str0m participants (the server's own test
//! client) join one room: 1 publisher to N subscribers, then N×N. Publishers send
//! one-packet VP8 frames at a ramp of rates; subscribers count the RTP packets that reach
//! them (without decrypting, so one harness core stands in for many of them). Each stage
//! prints forwarded packets per second, the server's CPU per forwarded packet and the
//! packets per second one core would forward at that cost, next to two UDP floors
//! measured on the same core in the same run (loops of `sendto` and nothing else: to a
//! socket nobody reads, and round-robin to sockets another core reads).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use studyon::live::video::client::MediaClient;
use studyon::live::video::sfu::route::Source;
use tokio_tungstenite::tungstenite::Message;

use crate::{procs, setup};

#[derive(Args, Debug)]
pub struct VideoArgs {
    /// The StudyOn server binary (`cargo build --release --bin studyon`).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Subscribers of the one publisher (the room cap is raised to fit).
    #[arg(long, default_value_t = 24)]
    pub subscribers: usize,
    /// Participants of the N×N stage (each publishes, each receives every other).
    #[arg(long, default_value_t = 8)]
    pub mesh: usize,
    /// Rooms of the many-rooms stage: a node's usual load, many small study groups at once
    /// (each a call of `--room-size`, everyone publishing).
    #[arg(long, default_value_t = 6)]
    pub rooms: usize,
    /// Participants per room of the many-rooms stage.
    #[arg(long, default_value_t = 4)]
    pub room_size: usize,
    /// The scenarios to run (default: all three, in this order).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fanout,mesh,rooms"
    )]
    pub only: Vec<Scenario>,
    /// Frames per second per publisher to ramp through (each frame is one RTP packet).
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
    pub rates: Vec<u32>,
    /// Seconds per stage.
    #[arg(long, default_value_t = 3.0)]
    pub stage_secs: f64,
    /// Payload bytes per frame (one packet: under the MTU).
    #[arg(long, default_value_t = 1000)]
    pub frame_bytes: usize,
    /// Frames each publisher sends back to back, at the same average rate: 4 arrive the
    /// way the packets of one multi-packet camera frame do (1: each as it falls due, checked
    /// about every 2 ms, so above 500 frames/s some leave together anyway).
    #[arg(long, default_value_t = 1)]
    pub burst: u32,
    /// Quick CI check: 1→3, 3×3 and 2 rooms of 2 at 50 frames/s for 1 s; fails if fewer
    /// than 90 % of the packets arrive.
    #[arg(long)]
    pub smoke: bool,
}

/// One of the video scenarios (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 1 publisher to `--subscribers`.
    Fanout,
    /// `--mesh` × `--mesh`, everyone publishing.
    Mesh,
    /// `--rooms` calls of `--room-size` at once.
    Rooms,
}

/// What a publishing participant sends: frames of this many payload bytes, so many back to
/// back (see `--burst`).
#[derive(Debug, Clone, Copy)]
struct Frames {
    bytes: usize,
    burst: u64,
}

/// Bounds on every wait, so a broken server ends the run instead of hanging it.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

impl VideoArgs {
    pub fn apply_smoke(&mut self) {
        if self.smoke {
            self.subscribers = 3;
            self.mesh = 3;
            self.rooms = 2;
            self.room_size = 2;
            self.rates = vec![50];
            self.stage_secs = 1.0;
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.subscribers == 0 || self.subscribers > 98 || self.mesh < 2 || self.mesh > 20 {
            return Err("--subscribers must be 1..=98 and --mesh 2..=20".into());
        }
        if self.rooms == 0 || self.room_size < 2 || self.rooms * self.room_size > 98 {
            return Err("--rooms must be at least 1, --room-size at least 2, and 98 participants in all at most".into());
        }
        if self.rates.is_empty()
            || self.rates.contains(&0)
            || self.rates.iter().any(|r| *r > 20_000)
        {
            return Err("--rates must be 1..=20000 frames/s".into());
        }
        if !(16..=1100).contains(&self.frame_bytes) {
            return Err("--frame-bytes must be 16..=1100 (one packet)".into());
        }
        if !(1..=50).contains(&self.burst) {
            return Err("--burst must be 1..=50".into());
        }
        if self.only.is_empty() {
            return Err("--only needs at least one of fanout, mesh, rooms".into());
        }
        Ok(())
    }
}

/// What each participant task shares with the driver.
struct Shared {
    /// Frames per second each publisher sends now (0: paused).
    rate: AtomicU64,
    stop: AtomicBool,
    published: AtomicU64,
    received: AtomicU64,
    ready: AtomicU64,
    /// Participants that have received media.
    seeing: AtomicU64,
    /// Before the stages: publishers send a key frame now and then, since the server
    /// offers a track to the others only once media arrived on it.
    announce: AtomicBool,
}

/// How often a publisher announces its camera before the stages.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(100);

use crate::abuse::{Ws, ws as connect};

async fn send(ws: &mut Ws, v: Value) -> Result<(), String> {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// Handles one server frame: answers offers; returns it for the caller.
async fn on_frame(
    ws: &mut Ws,
    media: &mut MediaClient,
    study: &str,
    f: Value,
) -> Result<Value, String> {
    if f["type"] == "video.offer" {
        let answer = media.accept_offer(f["sdp"].as_str().unwrap_or_default())?;
        send(ws, json!({"type": "video.answer", "study_id": study.parse::<i64>().unwrap_or(0), "sdp": answer})).await?;
    }
    if f["type"] == "error" {
        return Err(format!("server refused: {f}"));
    }
    Ok(f)
}

async fn next_json(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match tokio::time::timeout(STEP_TIMEOUT, ws.next()).await {
            Err(_) => return Err("no frame within 20 s".into()),
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(&t).map_err(|e| e.to_string());
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => return Err(format!("socket ended: {other:?}")),
        }
    }
}

/// One participant: joins, publishes a camera (or nothing), then keeps signaling and
/// media running until told to stop.
async fn participant(
    addr: SocketAddr,
    origin: String,
    cookie: String,
    study: String,
    publish: Option<Frames>,
    shared: Arc<Shared>,
) -> Result<(), String> {
    let Frames {
        bytes: frame_bytes,
        burst,
    } = publish.unwrap_or(Frames {
        bytes: 16,
        burst: 1,
    });
    let publish = publish.is_some();
    let study_num: i64 = study.parse().map_err(|_| "study id")?;
    let mut ws = connect(addr, &origin, &cookie).await?;
    let hello = next_json(&mut ws).await?;
    if hello["type"] != "hello" {
        return Err(format!("expected hello, got {hello}"));
    }
    send(
        &mut ws,
        json!({"type": "video.join", "id": "j", "study_id": study_num}),
    )
    .await?;
    let mut media = MediaClient::new().await.map_err(|e| e.to_string())?;
    media.count_rtp_only = true;
    loop {
        let f = next_json(&mut ws).await?;
        let f = on_frame(&mut ws, &mut media, &study, f).await?;
        if f["type"] == "video.joined" {
            break;
        }
    }
    // A subscriber offers a microphone it never uses (a muted browser does the same), so
    // its session has media lines only, like a browser's; a data channel instead would add
    // an SCTP association to the server's work that no browser client brings.
    let sources: &[Source] = if publish {
        &[Source::Camera]
    } else {
        &[Source::Mic]
    };
    let (sdp, named) = media.offer(sources);
    send(&mut ws, json!({"type": "video.offer", "id": "o", "study_id": study_num, "sdp": sdp, "sources": named})).await?;
    loop {
        let f = next_json(&mut ws).await?;
        let f = on_frame(&mut ws, &mut media, &study, f).await?;
        if f["type"] == "video.answer" {
            media.accept_answer(f["sdp"].as_str().unwrap_or_default())?;
            break;
        }
    }
    let mut counted_ready = false;
    let mut sent: u64 = 0;
    let mut since = Instant::now();
    let mut last_rate = 0;
    let payload = vec![0x5Au8; frame_bytes];
    let mut last_rtp = 0;
    let mut counted_seeing = false;
    let mut announced: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        while let Some(msg) = ws.next().now_or_never() {
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let f: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                    on_frame(&mut ws, &mut media, &study, f).await?;
                }
                Some(Ok(_)) => {}
                other => return Err(format!("socket ended: {other:?}")),
            }
        }
        media.pump(Duration::from_millis(2)).await;
        if media.connected && !counted_ready {
            counted_ready = true;
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
        shared
            .received
            .fetch_add(media.rtp_in - last_rtp, Ordering::Relaxed);
        last_rtp = media.rtp_in;
        if media.rtp_in > 0 && !counted_seeing {
            counted_seeing = true;
            shared.seeing.fetch_add(1, Ordering::Relaxed);
        }
        if publish
            && media.connected
            && shared.announce.load(Ordering::Relaxed)
            && announced.is_none_or(|t| t.elapsed() >= ANNOUNCE_EVERY)
        {
            announced = Some(Instant::now());
            media.announce(|_| payload.clone());
        }
        let rate = shared.rate.load(Ordering::Relaxed);
        if rate != last_rate {
            last_rate = rate;
            since = Instant::now();
            sent = 0;
        }
        if publish && rate > 0 {
            let due = (since.elapsed().as_secs_f64() * rate as f64) as u64;
            // Catch up at most 50 frames at once after a stall, so a late wake-up does not
            // turn into a burst the kernel drops; with `--burst`, only whole bursts.
            let owed = due.saturating_sub(sent);
            let n = if owed < burst { 0 } else { owed.min(50) };
            for _ in 0..n {
                if media.send(Source::Camera, &payload, sent.is_multiple_of(100)) {
                    shared.published.fetch_add(1, Ordering::Relaxed);
                }
                sent += 1;
            }
        }
    }
    Ok(())
}

/// Sinks of the delivery floor: as many sockets as the 1 → N scenario's subscribers.
const FLOOR_SINKS: usize = 24;

/// The same-run baselines, in `sendto` calls per CPU second of a thread on core 0, with
/// datagrams of the frame size to loopback sockets.
struct Floors {
    /// To one socket nobody reads: once its buffer is full the kernel drops each datagram
    /// early, so this is only the send path.
    send: f64,
    /// Round-robin to [`FLOOR_SINKS`] sockets that a thread on another core reads, as the
    /// subscribers do: the send path plus the delivery into a socket being read.
    delivery: f64,
    /// The share of the delivery floor's datagrams its reader got (below 100 % the reader
    /// fell behind and some were dropped cheaply, which flatters that floor).
    delivered: f64,
}

fn floors(bytes: usize) -> Floors {
    let (send, _) = udp_floor(bytes, 1, false);
    let (delivery, delivered) = udp_floor(bytes, FLOOR_SINKS, true);
    Floors {
        send,
        delivery,
        delivered,
    }
}

/// `sendto` calls per CPU second on core 0 to `sinks` loopback sockets, read (on this
/// process's other cores) or not; and the share that was read. No user-space forwarder
/// could send more from one core here.
fn udp_floor(bytes: usize, sinks: usize, read: bool) -> (f64, f64) {
    let socks: Vec<UdpSocket> = (0..sinks)
        .filter_map(|_| UdpSocket::bind("127.0.0.1:0").ok())
        .collect();
    let to: Vec<SocketAddr> = socks.iter().filter_map(|s| s.local_addr().ok()).collect();
    if to.is_empty() {
        return (0.0, 0.0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    // The sinks stay bound until the sender is done either way: sending to a closed port
    // would measure the ICMP "port unreachable" path instead.
    let socks = Arc::new(socks);
    let reader = read.then(|| {
        let (stop, socks) = (stop.clone(), socks.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            let mut got = 0u64;
            for s in socks.iter() {
                let _ = s.set_nonblocking(true);
            }
            // Spins, so the sender never pays for waking it: a floor, not a typical case.
            while !stop.load(Ordering::Relaxed) {
                for s in socks.iter() {
                    while s.recv(&mut buf).is_ok() {
                        got += 1;
                    }
                }
            }
            got
        })
    });
    let sender = std::thread::spawn(move || {
        // SAFETY: plain libc calls on a zeroed cpu_set_t we own, for this thread only.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
        let Ok(tx) = UdpSocket::bind("127.0.0.1:0") else {
            return (0, 0.0);
        };
        let buf = vec![0u8; bytes];
        let cpu = || {
            let mut t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: writes into the timespec we pass.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
            t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
        };
        let (c0, t0) = (cpu(), Instant::now());
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_secs(1) {
            for i in 0..256 {
                let _ = tx.send_to(&buf, to[i % to.len()]);
            }
            n += 256;
        }
        (n, cpu() - c0)
    });
    let (sent, secs) = sender.join().unwrap_or((0, 0.0));
    // Let the reader take what is still queued.
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let got = reader.map_or(0, |r| r.join().unwrap_or(0));
    (
        sent as f64 / secs.max(1e-6),
        got as f64 / sent.max(1) as f64,
    )
}

struct Stage {
    name: String,
    /// Frames the stage asked of all publishers: below it, `published` is the harness's
    /// ceiling, not the rate the stage names.
    asked: u64,
    offered: u64,
    published: u64,
    received: u64,
    secs: f64,
    server_cpu: f64,
}

/// Waits (bounded) until `count` participants have done `what`; else stops them all.
async fn wait_for(
    shared: &Shared,
    count: &AtomicU64,
    want: usize,
    what: &str,
) -> Result<(), String> {
    let done = procs::wait_until(STEP_TIMEOUT, || {
        let n = count.load(Ordering::Relaxed) as usize;
        async move { n == want }
    })
    .await;
    if done {
        return Ok(());
    }
    shared.stop.store(true, Ordering::Relaxed);
    Err(format!(
        "only {} of {want} participants {what} within {STEP_TIMEOUT:?}",
        count.load(Ordering::Relaxed)
    ))
}

/// One study's call in a stage: the study, and its participants' session cookies (the
/// first `publishers` of them publish).
struct Room<'a> {
    study: &'a str,
    cookies: &'a [String],
}

/// Runs the stages with every room's call going at once; each room has `publishers`
/// publishers and `subscribers_only` others.
async fn run_rooms(
    addr: SocketAddr,
    origin: &str,
    rooms: &[Room<'_>],
    publishers: usize,
    subscribers_only: usize,
    args: &VideoArgs,
    server_pid: u32,
) -> Result<Vec<Stage>, String> {
    let shared = Arc::new(Shared {
        rate: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        published: AtomicU64::new(0),
        received: AtomicU64::new(0),
        ready: AtomicU64::new(0),
        seeing: AtomicU64::new(0),
        announce: AtomicBool::new(true),
    });
    let total = publishers + subscribers_only;
    let mut tasks = Vec::new();
    for room in rooms {
        for i in 0..total {
            let cookie = room.cookies.get(i).ok_or("fewer users than participants")?;
            let task = participant(
                addr,
                origin.to_string(),
                cookie.clone(),
                room.study.to_string(),
                (i < publishers).then_some(Frames {
                    bytes: args.frame_bytes,
                    burst: u64::from(args.burst),
                }),
                shared.clone(),
            );
            tasks.push(tokio::spawn(task));
            // Joins one at a time keep the renegotiation rounds small.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    wait_for(&shared, &shared.ready, total * rooms.len(), "connected").await?;
    // Everyone but a lone publisher has someone else's media to receive.
    let receivers = if publishers > 1 {
        total
    } else {
        subscribers_only
    };
    wait_for(
        &shared,
        &shared.seeing,
        receivers * rooms.len(),
        "received media",
    )
    .await?;
    // Let the last renegotiations settle, and the announcements drain, before measuring.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    shared.announce.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fanout = (total - 1) as u64;
    let mut stages = Vec::new();
    for &rate in &args.rates {
        let (p0, r0) = (
            shared.published.load(Ordering::Relaxed),
            shared.received.load(Ordering::Relaxed),
        );
        let c0 = procs::cpu_secs(server_pid).unwrap_or(0.0);
        let t0 = Instant::now();
        shared.rate.store(u64::from(rate), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(args.stage_secs)).await;
        shared.rate.store(0, Ordering::Relaxed);
        let p1 = shared.published.load(Ordering::Relaxed);
        // Packets in flight still count for this stage.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let secs = t0.elapsed().as_secs_f64();
        let c1 = procs::cpu_secs(server_pid).unwrap_or(0.0);
        let r1 = shared.received.load(Ordering::Relaxed);
        stages.push(Stage {
            name: format!("{rate}/s"),
            asked: (f64::from(rate) * args.stage_secs) as u64 * (publishers * rooms.len()) as u64,
            offered: (p1 - p0) * fanout,
            published: p1 - p0,
            received: r1 - r0,
            secs,
            server_cpu: c1 - c0,
        });
    }
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        match tokio::time::timeout(STEP_TIMEOUT, t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(format!("a participant failed: {e}")),
            Ok(Err(e)) => return Err(format!("a participant panicked: {e}")),
            Err(_) => return Err("a participant did not stop".into()),
        }
    }
    Ok(stages)
}

/// Prints a scenario's stages; returns its best stage's packets/s per core, and the
/// fit's at saturation when there are stages enough to fit.
fn print_stages(title: &str, stages: &[Stage], floors: &Floors) -> (f64, Option<f64>) {
    println!("{title}");
    let marginal = marginal_cost(stages);
    println!(
        "  {:>8} {:>10} {:>12} {:>8} {:>10} {:>14} {:>12} {:>8} {:>9}",
        "rate",
        "published",
        "forwarded/s",
        "arrived",
        "server CPU",
        "CPU/packet",
        "pkts/s/core",
        "vs send",
        "vs deliv."
    );
    let mut best: f64 = 0.0;
    for s in stages {
        let fwd_rate = s.received as f64 / s.secs;
        let per_pkt = if s.received > 0 {
            s.server_cpu / s.received as f64
        } else {
            0.0
        };
        let per_core = if per_pkt > 0.0 { 1.0 / per_pkt } else { 0.0 };
        best = best.max(per_core);
        println!(
            "  {:>8} {:>10} {:>12.0} {:>7.1}% {:>9.2}s {:>12.2}µs {:>12.0} {:>7.2}× {:>8.2}×",
            s.name,
            s.published,
            fwd_rate,
            100.0 * s.received as f64 / (s.offered.max(1)) as f64,
            s.server_cpu,
            per_pkt * 1e6,
            per_core,
            ratio(per_core, floors.send),
            ratio(per_core, floors.delivery),
        );
    }
    for s in stages.iter().filter(|s| short_of_asked(s)) {
        println!(
            "  WARNING: at {} the harness published {} of the {} frames asked for: that stage shows the harness's ceiling",
            s.name, s.published, s.asked
        );
    }
    if let Some((idle, per_pkt)) = marginal {
        println!(
            "  fit over the stages: {:.0} % of a core with no media (the sessions' timers), then {:.2} µs per packet = {:.0} packets/s per core at saturation",
            idle * 100.0,
            per_pkt * 1e6,
            1.0 / per_pkt
        );
    }
    (best, marginal.map(|(_, per_pkt)| 1.0 / per_pkt))
}

/// The publishers sent under 90 % of what the stage asked for.
fn short_of_asked(s: &Stage) -> bool {
    (s.published as f64) < 0.9 * s.asked as f64
}

/// Least-squares fit of server CPU = idle × seconds + per_packet × packets over the stages:
/// the room's fixed cost (timers) apart from what each forwarded packet costs.
fn marginal_cost(stages: &[Stage]) -> Option<(f64, f64)> {
    if stages.len() < 2 {
        return None;
    }
    // Two unknowns, normal equations of [secs, packets] · [idle, per_pkt] = cpu.
    let (mut ss, mut sp, mut pp, mut sc, mut pc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for st in stages {
        let (t, n, c) = (st.secs, st.received as f64, st.server_cpu);
        ss += t * t;
        sp += t * n;
        pp += n * n;
        sc += t * c;
        pc += n * c;
    }
    let det = ss * pp - sp * sp;
    if det.abs() < 1e-9 {
        return None;
    }
    let idle = (sc * pp - sp * pc) / det;
    let per_pkt = (ss * pc - sp * sc) / det;
    (per_pkt > 0.0).then_some((idle.max(0.0), per_pkt))
}

pub async fn run(args: VideoArgs, bin: PathBuf, pin: bool) -> Result<bool, String> {
    if !bin.is_file() {
        return Err(format!(
            "no server binary at {} (cargo build --release --bin studyon)",
            bin.display()
        ));
    }
    crate::warn_if_stale(&bin);
    println!(
        "load average {} (the machine is shared; figures move with it)",
        procs::loadavg()
    );
    let floors = floors(args.frame_bytes);
    println!(
        "UDP send floor on core 0: {:.0} packets/s per core ({} bytes to a socket nobody reads)",
        floors.send, args.frame_bytes
    );
    println!(
        "UDP delivery floor on core 0: {:.0} packets/s per core (to {FLOOR_SINKS} sockets read on another core; {:.0} % read)",
        floors.delivery,
        floors.delivered * 100.0
    );
    if args.burst > 1 {
        println!(
            "publishers send frames in bursts of {} (as a multi-packet frame arrives)",
            args.burst
        );
    }

    let scratch = procs::Scratch::new("video")?;
    let addr: SocketAddr = ([127, 0, 0, 1], procs::free_port()?).into();
    let users = (args.subscribers + 1)
        .max(args.mesh)
        .max(args.rooms * args.room_size);
    let server_args: Vec<String> = [
        "serve",
        "--listen",
        &addr.to_string(),
        "--data-dir",
        &scratch.0.join("data").to_string_lossy(),
        "--workers",
        "1",
        "--log",
        "warn",
        "--signup-burst",
        "1000",
        "--video-max-participants",
        &users.max(2).to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    println!("  server: {} {}", bin.display(), server_args.join(" "));
    let log = scratch.0.join("server.log");
    let args = &args;
    let wants = |x: Scenario| args.only.contains(&x);
    let (one, mesh, many) =
        crate::with_studyon(&bin, &server_args, pin, log, addr, |pid| async move {
            let origin = format!("http://{addr}");
            let s = setup::run(addr, &origin, users).await?;
            let all = [Room {
                study: &s.study_id,
                cookies: &s.cookies,
            }];
            // Each scenario reuses the same users in fresh calls (everyone left the last).
            let mut one = None;
            if wants(Scenario::Fanout) {
                one = Some(run_rooms(addr, &origin, &all, 1, args.subscribers, args, pid).await?);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let mut mesh = None;
            if wants(Scenario::Mesh) {
                mesh = Some(run_rooms(addr, &origin, &all, args.mesh, 0, args, pid).await?);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let mut many = None;
            if wants(Scenario::Rooms) {
                // A study per group of users, each group led by its first.
                let groups: Vec<&[String]> =
                    s.cookies.chunks(args.room_size).take(args.rooms).collect();
                let mut studies = Vec::new();
                for g in &groups {
                    studies.push(setup::study_of(addr, &origin, g).await?);
                }
                let rooms: Vec<Room> = studies
                    .iter()
                    .zip(&groups)
                    .map(|(study, cookies)| Room { study, cookies })
                    .collect();
                many = Some(run_rooms(addr, &origin, &rooms, args.room_size, 0, args, pid).await?);
            }
            Ok((one, mesh, many))
        })
        .await?;
    println!();
    let ran = [
        (
            "1 → N",
            format!("1 publisher → {} subscribers", args.subscribers),
            one,
        ),
        (
            "N × N",
            format!("{0}×{0} (every participant publishes)", args.mesh),
            mesh,
        ),
        (
            "rooms",
            format!(
                "{0} rooms of {1}×{1} at once (every participant publishes)",
                args.rooms, args.room_size
            ),
            many,
        ),
    ];
    let mut bests = Vec::new();
    for (shape, title, stages) in &ran {
        if let Some(stages) = stages {
            bests.push((*shape, print_stages(title, stages, &floors)));
        }
    }
    let best = bests.iter().map(|(_, (b, _))| *b).fold(0.0, f64::max);
    println!();
    println!(
        "best: {best:.0} forwarded packets/s per core of server CPU ({:.2}× the UDP send floor, {:.2}× the delivery floor; target 100 000; LiveKit publishes 75–94k)",
        ratio(best, floors.send),
        ratio(best, floors.delivery)
    );
    println!(
        "target: at least {TARGET_PER_CORE:.0} packets/s per core and {TARGET_RATIO}× the send floor (the issue's {TARGET_PER_CORE:.0} of a {ISSUE_FLOOR:.0} floor)"
    );
    for (shape, (b, fit)) in bests {
        println!("  {shape}, best stage: {}", verdict(b, floors.send));
        if let Some(f) = fit {
            println!("  {shape}, fit at saturation: {}", verdict(f, floors.send));
        }
    }
    println!("load average {}", procs::loadavg());
    let arrived = |st: &[Stage]| {
        st.iter()
            .all(|s| s.received as f64 >= 0.9 * s.offered as f64 && s.received > 0)
    };
    if args.smoke {
        let ok = ran
            .iter()
            .filter_map(|(_, _, stages)| stages.as_deref())
            .all(arrived);
        println!(
            "smoke: {}",
            if ok {
                "ok"
            } else {
                "FAILED (packets lost or nothing forwarded)"
            }
        );
        return Ok(ok);
    }
    Ok(true)
}

fn ratio(x: f64, floor: f64) -> f64 {
    if floor > 0.0 { x / floor } else { 0.0 }
}

/// The issue's target: 100 000 forwarded packets/s per core, on a machine whose UDP send
/// floor it measured at about 200 000. Floors here differ by 2× between VMs, so the target
/// is also read as that share of the floor measured in the same run.
const TARGET_PER_CORE: f64 = 100_000.0;
const ISSUE_FLOOR: f64 = 200_000.0;
const TARGET_RATIO: f64 = TARGET_PER_CORE / ISSUE_FLOOR;

/// One shape's figure (a best stage, or the fit at saturation) against both readings of
/// the target.
fn verdict(per_core: f64, send_floor: f64) -> String {
    let r = ratio(per_core, send_floor);
    let mark = |met: bool| if met { "met" } else { "NOT met" };
    format!(
        "{per_core:.0} packets/s per core ({}), {r:.2}× the send floor ({})",
        mark(per_core >= TARGET_PER_CORE),
        mark(r >= TARGET_RATIO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_reads_the_target_both_ways() {
        assert_eq!(
            verdict(150_000.0, 400_000.0),
            "150000 packets/s per core (met), 0.38× the send floor (NOT met)"
        );
        assert_eq!(
            verdict(210_000.0, 400_000.0),
            "210000 packets/s per core (met), 0.53× the send floor (met)"
        );
        assert_eq!(
            verdict(90_000.0, 150_000.0),
            "90000 packets/s per core (NOT met), 0.60× the send floor (met)"
        );
        // No floor measured: never a pass.
        assert!(verdict(150_000.0, 0.0).ends_with("0.00× the send floor (NOT met)"));
    }

    #[test]
    fn a_stage_the_publishers_fell_short_of_is_flagged() {
        let stage = |published| Stage {
            name: "2000/s".into(),
            asked: 6000,
            offered: published * 24,
            published,
            received: published * 24,
            secs: 3.3,
            server_cpu: 0.5,
        };
        assert!(!short_of_asked(&stage(6000)));
        assert!(!short_of_asked(&stage(5500)));
        // What a publisher capped at 1 000 frames/s sent of 2 000/s.
        assert!(short_of_asked(&stage(3000)));
    }
}
