//! `abuse`: the attacks any signed-up user could make, all at once, against one server while
//! honest users chat and upload; the same honest load runs first on a quiet server (a fresh
//! one), so the figures are ratios measured in the same run.
//!
//! Honest users (50 by default) sit in one room of one study: each sends a chat message a
//! second (latency: send → `chat.ack`, which comes after the commit) and uploads a 64 KiB
//! file every 5 s to their own post (latency: the whole request). Attackers, each a separate
//! account: `dm.sync` sprays naming users that do not exist; one user opening 300 sockets and
//! flooding pings; 32 uploads that send a head and one byte; 1,200 4 KiB `prefs.set`; an
//! apply/withdraw loop against the honest study; a socket that stops reading; wrong-password
//! logins for an honest user's login id.
//!
//! Printed: the honest p50/p99 for both runs and their ratio, honest requests refused or
//! lost, the attack's outcomes, and the server's peak RSS (VmHWM). Targets (the issue's):
//! honest p99 within 2× the quiet run, no honest request refused, peak RSS under 300 MB.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::{http, procs, setup};

const TIMEOUT: Duration = Duration::from_secs(30);
/// An honest upload: small enough for a study group's notes, big enough to take a while.
const UPLOAD_BYTES: usize = 64 * 1024;

#[derive(clap::Args, Debug)]
pub struct AbuseArgs {
    /// The StudyOn server binary (default: `studyon` beside this executable).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Honest users (each one socket in the room and one post to upload to).
    #[arg(long, default_value_t = 50)]
    pub honest: usize,
    /// Seconds of honest load in each run.
    #[arg(long, default_value_t = 20.0)]
    pub secs: f64,
    /// Quick check: 10 honest users for 6 s.
    #[arg(long)]
    pub quick: bool,
    /// Run only these attacks (comma-separated: spray, hoard, loris, prefs, flip, reader,
    /// login), to see what each costs. Default: all.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// What the honest users saw in one run.
struct Honest {
    chat: Histogram<u64>,
    uploads: Histogram<u64>,
    sent: u64,
    refused: u64,
    lost: u64,
    /// The first few refusals, to say what they were.
    samples: Vec<String>,
}

/// What the attacks achieved.
#[derive(Default)]
struct AttackTally {
    frames_sent: AtomicU64,
    refusals: AtomicU64,
    sockets_accepted: AtomicU64,
    sockets_refused: AtomicU64,
    slow_uploads_dropped: AtomicU64,
    slow_uploads_busy: AtomicU64,
    prefs_stored: AtomicU64,
    applications: AtomicU64,
    logins_limited: AtomicU64,
    slow_reader_closed: AtomicBool,
}

struct RunFigures {
    honest: Honest,
    peak_rss_mb: f64,
    end_rss_mb: f64,
    directchats_live: Option<f64>,
}

pub async fn run(args: AbuseArgs, bin: PathBuf, pin: bool) -> Result<bool, String> {
    let (honest, secs) = if args.quick {
        (10, 6.0)
    } else {
        (args.honest, args.secs)
    };
    println!(
        "abuse: {honest} honest users (a chat message a second, a 64 KiB upload every 5 s) for {secs} s, quiet then attacked"
    );
    println!("\n== quiet run");
    let quiet = one_run(&bin, pin, honest, secs, false, &[]).await?;
    report("quiet", &quiet, None);
    println!("\n== attacked run");
    let attacked = one_run(&bin, pin, honest, secs, true, &args.only).await?;
    report("attacked", &attacked, Some(&quiet));

    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    let chat_ratio = p99(&attacked.honest.chat) / p99(&quiet.honest.chat).max(0.001);
    let upload_ratio = p99(&attacked.honest.uploads) / p99(&quiet.honest.uploads).max(0.001);
    println!("\n== Summary (load {})", procs::loadavg());
    println!(
        "honest chat p99 {:.2} ms attacked vs {:.2} ms quiet: {:.2}× (target ≤ 2×)",
        p99(&attacked.honest.chat),
        p99(&quiet.honest.chat),
        chat_ratio
    );
    println!(
        "honest upload p99 {:.2} ms attacked vs {:.2} ms quiet: {:.2}× (target ≤ 2×)",
        p99(&attacked.honest.uploads),
        p99(&quiet.honest.uploads),
        upload_ratio
    );
    let refused = attacked.honest.refused + attacked.honest.lost;
    println!("honest requests refused or lost under attack: {refused} (target 0)");
    println!(
        "server peak RSS {:.0} MB attacked, {:.0} MB quiet (target < 300 MB)",
        attacked.peak_rss_mb, quiet.peak_rss_mb
    );
    let ok = refused == 0
        && quiet.honest.refused + quiet.honest.lost == 0
        && chat_ratio <= 2.0
        && upload_ratio <= 2.0
        && attacked.peak_rss_mb < 300.0;
    println!("{}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

fn report(name: &str, r: &RunFigures, _quiet: Option<&RunFigures>) {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "  {name}: chat acks p50 {:.2} ms p99 {:.2} ms ({} acked); uploads p50 {:.1} ms p99 {:.1} ms ({} stored); sent {}, refused {}, lost {}",
        ms(&r.honest.chat, 0.5),
        ms(&r.honest.chat, 0.99),
        r.honest.chat.len(),
        ms(&r.honest.uploads, 0.5),
        ms(&r.honest.uploads, 0.99),
        r.honest.uploads.len(),
        r.honest.sent,
        r.honest.refused,
        r.honest.lost
    );
    for s in &r.honest.samples {
        println!("    refused: {s}");
    }
    println!(
        "  {name}: server RSS peak {:.0} MB, at the end {:.0} MB; live direct_chat actors {}",
        r.peak_rss_mb,
        r.end_rss_mb,
        r.directchats_live
            .map_or("n/a".to_string(), |n| format!("{n:.0}"))
    );
}

async fn one_run(
    bin: &std::path::Path,
    pin: bool,
    honest: usize,
    secs: f64,
    attack: bool,
    only: &[String],
) -> Result<RunFigures, String> {
    let scratch = procs::Scratch::new("abuse")?;
    let port = procs::free_port()?;
    let metrics_port = procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let args: Vec<String> = [
        "serve".to_string(),
        "--listen".into(),
        addr.to_string(),
        "--data-dir".into(),
        scratch.0.join("data").to_string_lossy().into_owned(),
        "--workers".into(),
        "1".into(),
        "--log".into(),
        "error".into(),
        "--metrics-listen".into(),
        format!("127.0.0.1:{metrics_port}"),
        // Everyone signs up from this one loopback address.
        "--signup-burst".into(),
        "1000".into(),
    ]
    .to_vec();
    let server = procs::spawn(
        "studyon",
        bin,
        &args,
        pin,
        scratch.0.join("server.log"),
        None,
    )?;
    let result = async {
        let ready = procs::wait_until(Duration::from_secs(30), || async {
            matches!(http::request(addr, "GET", "/readyz", &[], None, Duration::from_secs(2)).await, Ok(r) if r.status == 200)
        })
        .await;
        if !ready {
            return Err(format!("the server did not get ready: {}", server.log_tail(20)));
        }
        let origin = format!("http://{addr}");
        let s = setup::run(addr, &origin, honest).await?;
        let posts = honest_posts(addr, &origin, &s).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(AttackTally::default());
        let attackers = if attack {
            start_attacks(addr, &origin, &s, stop.clone(), tally.clone(), only).await?
        } else {
            Vec::new()
        };
        // Let the attacks ramp up before measuring.
        if attack {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let honest_result = honest_load(addr, &origin, &s, &posts, secs).await?;
        stop.store(true, Relaxed);
        for a in attackers {
            a.abort();
        }
        let metrics = http::request(
            ([127, 0, 0, 1], metrics_port).into(),
            "GET",
            "/metrics",
            &[],
            None,
            Duration::from_secs(5),
        )
        .await
        .ok()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned());
        // Metrics read and no direct_chat gauge at all: none was ever started.
        let directchats_live = metrics.as_deref().map(|m| {
            m.lines()
                .find(|l| l.starts_with("studyon_actors_live") && l.contains("direct_chat"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        });
        if attack {
            print_tally(&tally);
        }
        // The server's own count of uploads by outcome (honest and attackers' together).
        if let Some(m) = metrics.as_deref() {
            let by_result: Vec<String> = m
                .lines()
                .filter_map(|l| l.strip_prefix("studyon_uploads_total{result=\""))
                .filter_map(|l| l.split_once("\"} "))
                .map(|(result, n)| format!("{result} {n}"))
                .collect();
            println!("  server uploads by result: {}", by_result.join(", "));
        }
        Ok(RunFigures {
            honest: honest_result,
            peak_rss_mb: procs::status_kb(server.pid, "VmHWM").unwrap_or(0) as f64 / 1024.0,
            end_rss_mb: procs::status_kb(server.pid, "VmRSS").unwrap_or(0) as f64 / 1024.0,
            directchats_live,
        })
    }
    .await;
    server.stop().await;
    result
}

fn print_tally(t: &AttackTally) {
    println!(
        "  attacks: {} frames sent, {} refused by the server; sockets accepted {} / closed at once {}; slow uploads dropped {} / refused (busy or rate) {}; prefs stored {}; applications accepted {}; logins rate-limited {}; slow reader cut off: {}",
        t.frames_sent.load(Relaxed),
        t.refusals.load(Relaxed),
        t.sockets_accepted.load(Relaxed),
        t.sockets_refused.load(Relaxed),
        t.slow_uploads_dropped.load(Relaxed),
        t.slow_uploads_busy.load(Relaxed),
        t.prefs_stored.load(Relaxed),
        t.applications.load(Relaxed),
        t.logins_limited.load(Relaxed),
        t.slow_reader_closed.load(Relaxed)
    );
}

/// One task and one post per honest user (each uploads to their own post).
async fn honest_posts(
    addr: SocketAddr,
    origin: &str,
    s: &setup::Setup,
) -> Result<Vec<String>, String> {
    let study = &s.study_id;
    let task_id = setup::create_task(addr, origin, s, "notes").await?;
    let mut posts = Vec::new();
    for (i, c) in s.cookies.iter().enumerate() {
        let r = setup::post(
            addr,
            origin,
            Some(c),
            &format!("/api/studies/{study}/tasks/{task_id}/posts"),
            json!({ "title": format!("notes of {i}"), "body": "" }),
        )
        .await?;
        let post = setup::expect(&r, 201, "create post")?;
        posts.push(setup::id_text(&post["post"]["id"]).ok_or("no post id")?);
    }
    Ok(posts)
}

pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A `/ws` socket signed in with `cookie` (the scenarios that speak JSON share it).
pub async fn ws(addr: SocketAddr, origin: &str, cookie: &str) -> Result<Ws, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).ok();
    let mut req = format!("ws://{addr}/ws")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "Origin",
        HeaderValue::from_str(origin).map_err(|e| e.to_string())?,
    );
    req.headers_mut().insert(
        "Cookie",
        HeaderValue::from_str(cookie).map_err(|e| e.to_string())?,
    );
    let (ws, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    Ok(ws)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

/// The honest load: chat and uploads for `secs`, then up to 10 s for outstanding acks.
async fn honest_load(
    addr: SocketAddr,
    origin: &str,
    s: &setup::Setup,
    posts: &[String],
    secs: f64,
) -> Result<Honest, String> {
    let chat = Arc::new(Mutex::new(histogram()));
    let uploads = Arc::new(Mutex::new(histogram()));
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let users = s.cookies.len().max(1) as u64;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (i, cookie) in s.cookies.iter().enumerate() {
        let mut socket = ws(addr, origin, cookie).await?;
        let room = s.room_id.clone();
        socket
            .send(Message::text(
                json!({ "type": "chat.join", "id": "j", "room_id": room }).to_string(),
            ))
            .await
            .map_err(|e| e.to_string())?;
        let (chat_h, sent_c, refused_c, lost_c, samples_c) = (
            chat.clone(),
            sent.clone(),
            refused.clone(),
            lost.clone(),
            samples.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (chat, sent, refused, lost, samples) =
                (chat_h, sent_c, refused_c, lost_c, samples_c);
            let (mut tx, mut rx) = socket.split();
            let pending: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
            let reader = {
                let (pending, chat, refused, samples) = (
                    pending.clone(),
                    chat.clone(),
                    refused.clone(),
                    samples.clone(),
                );
                tokio::spawn(async move {
                    while let Some(Ok(m)) = rx.next().await {
                        let Message::Text(t) = m else { continue };
                        let Ok(f) = serde_json::from_str::<Value>(&t) else {
                            continue;
                        };
                        match f["type"].as_str() {
                            Some("chat.ack") => {
                                let id = f["client_id"].as_str().unwrap_or("").to_string();
                                if let Some(at) = pending.lock().unwrap().remove(&id) {
                                    let _ = chat
                                        .lock()
                                        .unwrap()
                                        .record(at.elapsed().as_micros().max(1) as u64);
                                }
                            }
                            Some("error") => {
                                let id = f["id"].as_str().unwrap_or("").to_string();
                                pending.lock().unwrap().remove(&id);
                                refused.fetch_add(1, Relaxed);
                                let mut s = samples.lock().unwrap();
                                if s.len() < 5 {
                                    s.push(format!("chat: {f}"));
                                }
                            }
                            _ => {}
                        }
                    }
                })
            };
            // Spread the users over the second.
            // Spread evenly over the second, so the load is steady rather than a burst a second.
            tokio::time::sleep(Duration::from_millis(i as u64 * 1000 / users)).await;
            let mut n = 0u64;
            while Instant::now() < until {
                let id = format!("h{i}-{n}");
                let frame = json!({ "type": "chat.send", "id": id, "room_id": room,
                    "client_id": id, "body": format!("honest message {n}") });
                pending.lock().unwrap().insert(id, Instant::now());
                if tx.send(Message::text(frame.to_string())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Relaxed);
                n += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // Outstanding acks get 10 s.
            for _ in 0..100 {
                if pending.lock().unwrap().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            lost.fetch_add(pending.lock().unwrap().len() as u64, Relaxed);
            reader.abort();
        }));
        // The upload loop of this user.
        let (uploads, sent, refused, samples) = (
            uploads.clone(),
            sent.clone(),
            refused.clone(),
            samples.clone(),
        );
        let (cookie, origin) = (cookie.clone(), origin.to_string());
        let path_base = format!("/api/studies/{}/posts/{}/attachments", s.study_id, posts[i]);
        tasks.push(tokio::spawn(async move {
            // Spread evenly over the 5 s: 50 uploads at once would be a burst no group makes.
            tokio::time::sleep(Duration::from_millis(i as u64 * 5000 / users)).await;
            let body = vec![b'x'; UPLOAD_BYTES];
            let mut n = 0;
            // A post takes 10 files; 4 in 20 s leaves room.
            while Instant::now() < until && n < 9 {
                let path = format!("{path_base}?name=part{n}.bin");
                let headers = [("Origin", origin.as_str()), ("Cookie", cookie.as_str())];
                let at = Instant::now();
                sent.fetch_add(1, Relaxed);
                match http::request_bytes(
                    addr,
                    &path,
                    &headers,
                    "application/octet-stream",
                    &body,
                    TIMEOUT,
                )
                .await
                {
                    Ok(r) if r.status == 201 => {
                        let _ = uploads
                            .lock()
                            .unwrap()
                            .record(at.elapsed().as_micros().max(1) as u64);
                    }
                    other => {
                        refused.fetch_add(1, Relaxed);
                        let mut s = samples.lock().unwrap();
                        if s.len() < 5 {
                            s.push(match other {
                                Ok(r) => format!("upload: HTTP {} {}", r.status, r.text()),
                                Err(e) => format!("upload: {e}"),
                            });
                        }
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let take = |h: &Arc<Mutex<Histogram<u64>>>| h.lock().unwrap().clone();
    Ok(Honest {
        chat: take(&chat),
        uploads: take(&uploads),
        sent: sent.load(Relaxed),
        refused: refused.load(Relaxed),
        lost: lost.load(Relaxed),
        samples: samples.lock().unwrap().clone(),
    })
}

async fn sign_up(addr: SocketAddr, origin: &str, name: &str) -> Result<String, String> {
    let r = setup::post(
        addr,
        origin,
        None,
        "/api/auth/signup",
        json!({ "login_id": name, "display_name": name, "password": setup::PASSWORD }),
    )
    .await?;
    setup::expect(&r, 201, "attacker sign-up")?;
    r.session_cookie().ok_or_else(|| "no cookie".to_string())
}

/// Starts every attack; they run until `stop` (or their task is aborted).
async fn start_attacks(
    addr: SocketAddr,
    origin: &str,
    s: &setup::Setup,
    stop: Arc<AtomicBool>,
    tally: Arc<AttackTally>,
    only: &[String],
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let mut tasks = Vec::new();
    let origin = origin.to_string();
    let on = |name: &str| only.is_empty() || only.iter().any(|o| o == name);

    // [spray] 1. dm.sync sprays naming users that do not exist: 10 accounts, 5 sockets each.
    if on("spray") {
        for a in 0..10 {
            let cookie = sign_up(addr, &origin, &format!("spray_{a}")).await?;
            for k in 0..5 {
                let Ok(mut socket) = ws(addr, &origin, &cookie).await else {
                    continue;
                };
                let (stop, tally) = (stop.clone(), tally.clone());
                tasks.push(tokio::spawn(async move {
                    let mut n: u64 = 0;
                    while !stop.load(Relaxed) {
                        let with = 10_000_000 + a * 1_000_000 + k * 100_000 + n as i64;
                        let f = json!({ "type": "dm.sync", "with": with, "last_seq": 0 });
                        if socket.send(Message::text(f.to_string())).await.is_err() {
                            break;
                        }
                        tally.frames_sent.fetch_add(1, Relaxed);
                        n += 1;
                        // Drain what came back so this socket is not the slow one.
                        while let Ok(Some(Ok(m))) =
                            tokio::time::timeout(Duration::ZERO, socket.next()).await
                        {
                            if matches!(&m, Message::Text(t) if t.contains("\"error\"")) {
                                tally.refusals.fetch_add(1, Relaxed);
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }));
            }
        }
    }

    // [hoard] 2. One account opening 300 sockets and flooding pings on the ones it gets.
    if on("hoard") {
        let hoarder = sign_up(addr, &origin, "hoarder").await?;
        {
            let (stop, tally, origin) = (stop.clone(), tally.clone(), origin.clone());
            tasks.push(tokio::spawn(async move {
                let mut held = Vec::new();
                for _ in 0..300 {
                    let Ok(mut socket) = ws(addr, &origin, &hoarder).await else {
                        continue;
                    };
                    match tokio::time::timeout(Duration::from_secs(2), socket.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) if t.contains("\"hello\"") => {
                            tally.sockets_accepted.fetch_add(1, Relaxed);
                            held.push(socket);
                        }
                        _ => {
                            tally.sockets_refused.fetch_add(1, Relaxed);
                        }
                    }
                }
                while !stop.load(Relaxed) {
                    for socket in &mut held {
                        let _ = socket
                            .send(Message::text(r#"{"type":"ping"}"#.to_string()))
                            .await;
                        tally.frames_sent.fetch_add(1, Relaxed);
                        while let Ok(Some(Ok(_))) =
                            tokio::time::timeout(Duration::ZERO, socket.next()).await
                        {
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }));
        }
    }

    // [loris] 3. A slowloris: 32 uploads that send a head and one byte, renewed when dropped.
    if on("loris") {
        let loris = sign_up(addr, &origin, "loris").await?;
        let r = setup::post(
            addr,
            &origin,
            Some(&loris),
            "/api/studies",
            json!({ "title": "loris", "description": "", "tags": [], "capacity": 5,
                "recruit_opens_on": "2026-01-01", "recruit_closes_on": "2027-02-01",
                "starts_on": "2027-03-01", "ends_on": "2027-06-01" }),
        )
        .await?;
        let loris_study = setup::id_text(&setup::expect(&r, 201, "loris study")?["study"]["id"])
            .ok_or("no study id")?;
        for _ in 0..32 {
            let (stop, tally, origin, loris, study) = (
                stop.clone(),
                tally.clone(),
                origin.clone(),
                loris.clone(),
                loris_study.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let Ok(mut tcp) = TcpStream::connect(addr).await else {
                        break;
                    };
                    let head = format!(
                        "POST /api/studies/{study}/attachments?name=slow.bin HTTP/1.1\r\nHost: {addr}\r\n\
                         Origin: {origin}\r\nCookie: {loris}\r\nContent-Type: application/octet-stream\r\n\
                         Content-Length: 10000000\r\n\r\nx"
                    );
                    if tcp.write_all(head.as_bytes()).await.is_err() {
                        break;
                    }
                    let mut buf = vec![0u8; 4096];
                    let n = tokio::time::timeout(
                        Duration::from_secs(60),
                        tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
                    )
                    .await;
                    let text = match n {
                        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
                        _ => String::new(),
                    };
                    if text.contains(" 408 ") {
                        tally.slow_uploads_dropped.fetch_add(1, Relaxed);
                    } else if text.contains(" 503 ") || text.contains(" 429 ") {
                        // Refused (no slot, or the user's write budget is spent): a slowloris
                        // comes back for a slot soon, not in a tight loop (that is a request
                        // flood, which costs the attacker's CPU on this machine as much as ours).
                        tally.slow_uploads_busy.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }));
        }
    }

    // [prefs] 4. 1,200 preferences of 4 KiB, as fast as the server takes them.
    if on("prefs") {
        let hoarder_prefs = sign_up(addr, &origin, "prefs_spam").await?;
        if let Ok(mut socket) = ws(addr, &origin, &hoarder_prefs).await {
            let (stop, tally) = (stop.clone(), tally.clone());
            tasks.push(tokio::spawn(async move {
                let value = "v".repeat(4096);
                for i in 0..1200 {
                    if stop.load(Relaxed) {
                        break;
                    }
                    let f =
                        json!({ "type": "prefs.set", "id": i, "key": format!("k{i}"), "value": value });
                    if socket.send(Message::text(f.to_string())).await.is_err() {
                        break;
                    }
                    tally.frames_sent.fetch_add(1, Relaxed);
                    while let Ok(Some(Ok(Message::Text(t)))) =
                        tokio::time::timeout(Duration::ZERO, socket.next()).await
                    {
                        if t.contains("\"ack\"") {
                            tally.prefs_stored.fetch_add(1, Relaxed);
                        } else if t.contains("\"error\"") {
                            tally.refusals.fetch_add(1, Relaxed);
                        }
                    }
                }
            }));
        }
    }

    // [flip] 5. Apply and withdraw, over and over, against the honest study.
    if on("flip") {
        let flipper = sign_up(addr, &origin, "flipper").await?;
        {
            let (stop, tally, origin, study) = (
                stop.clone(),
                tally.clone(),
                origin.clone(),
                s.study_id.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let r = setup::post(
                        addr,
                        &origin,
                        Some(&flipper),
                        &format!("/api/studies/{study}/applications"),
                        json!({ "message": "again" }),
                    )
                    .await;
                    if let Ok(r) = r
                        && r.status == 201
                    {
                        tally.applications.fetch_add(1, Relaxed);
                        if let Some(app) = r
                            .json()
                            .ok()
                            .and_then(|v| setup::id_text(&v["application"]["id"]))
                        {
                            let _ = setup::post(
                                addr,
                                &origin,
                                Some(&flipper),
                                &format!("/api/studies/{study}/applications/{app}/withdraw"),
                                json!({}),
                            )
                            .await;
                        }
                    } else {
                        tally.refusals.fetch_add(1, Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }));
        }
    }

    // [reader] 6. A socket that asks for big answers and never reads them.
    if on("reader") {
        let reader = sign_up(addr, &origin, "slow_reader").await?;
        if let Ok(mut socket) = ws(addr, &origin, &reader).await {
            let (stop, tally) = (stop.clone(), tally.clone());
            tasks.push(tokio::spawn(async move {
                let value = "r".repeat(4096);
                for i in 0..60 {
                    let f =
                        json!({ "type": "prefs.set", "id": i, "key": format!("r{i}"), "value": value });
                    let _ = socket.send(Message::text(f.to_string())).await;
                }
                while !stop.load(Relaxed) {
                    if socket
                        .send(Message::text(r#"{"type":"prefs.get"}"#.to_string()))
                        .await
                        .is_err()
                    {
                        tally.slow_reader_closed.store(true, Relaxed);
                        break;
                    }
                    tally.frames_sent.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }));
        }
    }

    // [login] 7. Wrong passwords for an honest user's login id.
    if on("login") {
        {
            let (stop, tally, origin) = (stop.clone(), tally.clone(), origin.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let r = setup::post(
                        addr,
                        &origin,
                        None,
                        "/api/auth/login",
                        json!({ "login_id": "load_user_001", "password": "not the password" }),
                    )
                    .await;
                    if matches!(r, Ok(ref r) if r.status == 429) {
                        tally.logins_limited.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }));
        }
    }

    Ok(tasks)
}
