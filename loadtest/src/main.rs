//! `loadtest`: load harness for the StudyOn server. See `loadtest/README.md`.

mod abuse;
mod cluster;
mod doc;
mod fanout;
mod http;
mod procs;
mod setup;
mod video;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use fanout::{Kind, Plan, RunResult, Target};

#[derive(Parser)]
#[command(name = "loadtest", about = "Load harness for the StudyOn server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Chat fan-out: many sockets in one room, an open-loop send-rate ramp, against StudyOn
    /// and a plain Node `ws` broadcast baseline, both pinned to core 0.
    ChatFanout(FanoutArgs),
    /// Every attack a signed-up user could make, at once, while honest users chat and
    /// upload; compared with the same honest load on a quiet server.
    Abuse(abuse::AbuseArgs),
    /// Co-edited documents (y-protocols): 1 writer and 200 readers, then 20 concurrent
    /// writers, an open-loop update-rate ramp, memory per loaded document; against the stock
    /// y-websocket server, both pinned to core 0.
    Doc(doc::DocArgs),
    /// Group video (the SFU): str0m participants, 1 publisher to N subscribers and N×N,
    /// a ramp of frame rates; forwarded packets per second per core of server CPU, next
    /// to the UDP send and delivery floors measured on the same core.
    Video(video::VideoArgs),
    /// Cluster chat fan-out: many rooms over 1 node, then 2 nodes (each pinned to a core) on
    /// one Postgres and a Redis of the run's own; deliveries/s, the 2/1 ratio, and p99 of
    /// cross-node deliveries next to same-node ones.
    ClusterFanout(cluster::ClusterArgs),
}

#[derive(Args, Debug)]
struct FanoutArgs {
    /// The StudyOn server binary (build it with `cargo build --release --bin studyon`).
    /// Default: `studyon` next to this executable (same target dir), else
    /// /root/.cache/studyon/target/release/studyon.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// WebSocket connections, all in the same room.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Users the connections are spread over (a study holds at most 100). 100 because each
    /// user may send 5 messages a second into a room: 100 users can offer 500 msg/s, which
    /// fans out to 100k deliveries/s over 200 clients, the target.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Total send rates to ramp through, messages per second (500 is what 100 users may send).
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,300,400,500")]
    rates: Vec<u32>,
    /// Seconds of sending per stage.
    #[arg(long, default_value_t = 5.0)]
    stage_secs: f64,
    /// Most seconds to wait after a stage for its deliveries (what is missing then is lost).
    #[arg(long, default_value_t = 5.0)]
    drain_secs: f64,
    /// A stage whose p99 is above this counts as saturated and ends the ramp.
    #[arg(long, default_value_t = 100.0)]
    p99_limit_ms: f64,
    /// Skip the Node `ws` baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Quick CI check: 10 clients, 2 users, one stage of 8 msg/s for 2 s, no baseline; exits
    /// non-zero if anything is lost, duplicated or refused, or nothing arrives.
    #[arg(long)]
    smoke: bool,
    /// An extra argument for `studyon serve` (repeatable), e.g.
    /// `--server-arg=--ws-heartbeat-secs=2`.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Node.js for the baseline.
    #[arg(long, default_value = "node")]
    node: PathBuf,
}

const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let mut args = match Cli::parse().cmd {
        Cmd::ChatFanout(args) => args,
        Cmd::Abuse(args) => return abuse_main(args),
        Cmd::Doc(args) => return doc_main(args),
        Cmd::Video(args) => return video_main(args),
        Cmd::ClusterFanout(args) => return cluster_main(args),
    };
    if args.smoke {
        args.clients = 10;
        args.users = 2;
        args.rates = vec![8];
        args.stage_secs = 2.0;
        args.no_baseline = true;
    }
    if let Err(e) = validate(&args) {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    // Before the runtime starts its threads, so they all inherit it.
    let cpus = procs::pin_self_off_core0();
    let rt = harness_runtime(&cpus);
    exit_code(rt.block_on(chat_fanout(args, cpus)))
}

/// The harness's runtime on the cores it pinned itself to. One harness core: a
/// current-thread runtime saves the cross-thread wake-ups.
fn harness_runtime<T>(cpus: &[T]) -> tokio::runtime::Runtime {
    if cpus.len() <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cpus.len())
            .enable_all()
            .build()
    }
    .expect("tokio runtime")
}

fn doc_main(mut args: doc::DocArgs) -> ExitCode {
    args.apply_smoke();
    if let Err(e) = args.validate() {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    let cpus = procs::pin_self_off_core0();
    let rt = harness_runtime(&cpus);
    exit_code(rt.block_on(doc::run(args, cpus)))
}

fn video_main(mut args: video::VideoArgs) -> ExitCode {
    args.apply_smoke();
    if let Err(e) = args.validate() {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    let cpus = procs::pin_self_off_core0();
    let rt = harness_runtime(&cpus);
    let (bin, pin) = server_under_test(args.server_bin.as_ref(), &cpus);
    exit_code(rt.block_on(video::run(args, bin, pin)))
}

fn cluster_main(mut args: cluster::ClusterArgs) -> ExitCode {
    args.apply_smoke();
    if let Err(e) = args.validate() {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    // Not pinned: the nodes take cores 0 and 1, and the harness shares them (one thread).
    let rt = harness_runtime(&[()]);
    let bin = resolve_server_bin(args.server_bin.as_ref());
    exit_code(rt.block_on(cluster::run(args, bin)))
}

/// The server binary and whether it can be pinned to core 0, announced.
fn server_under_test(given: Option<&PathBuf>, cpus: &[usize]) -> (PathBuf, bool) {
    let bin = resolve_server_bin(given);
    let pin = procs::taskset().is_some();
    println!(
        "server {}{}; harness on CPUs {cpus:?}",
        bin.display(),
        if pin {
            " pinned to core 0"
        } else {
            " (not pinned: no taskset)"
        }
    );
    (bin, pin)
}

/// A scenario's outcome as the process's exit status.
fn exit_code(r: Result<bool, String>) -> ExitCode {
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::from(1)
        }
    }
}

fn abuse_main(args: abuse::AbuseArgs) -> ExitCode {
    let cpus = procs::pin_self_off_core0();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus.len().max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (bin, pin) = server_under_test(args.server_bin.as_ref(), &cpus);
    exit_code(rt.block_on(abuse::run(args, bin, pin)))
}

fn validate(a: &FanoutArgs) -> Result<(), String> {
    if a.users == 0 || a.users > 100 {
        return Err("--users must be 1..=100 (a study holds at most 100 members)".into());
    }
    if a.clients < a.users {
        return Err("--clients must be at least --users".into());
    }
    if a.rates.is_empty() || a.rates.contains(&0) {
        return Err("--rates needs positive rates".into());
    }
    if a.stage_secs <= 0.0 || a.stage_secs > 60.0 || !(0.0..=60.0).contains(&a.drain_secs) {
        return Err("--stage-secs must be in (0, 60], --drain-secs in [0, 60]".into());
    }
    Ok(())
}

async fn chat_fanout(args: FanoutArgs, cpus: Vec<usize>) -> Result<bool, String> {
    let started = Instant::now();
    let pin = procs::taskset().is_some();
    println!(
        "chat-fanout: {} clients over {} users, rates {:?} msg/s, {} s per stage",
        args.clients, args.users, args.rates, args.stage_secs
    );
    if pin {
        println!("servers pinned to core 0 with taskset; harness on CPUs {cpus:?}");
    } else {
        println!(
            "WARNING: taskset not found: servers run WITHOUT core pinning (figures are not one-core figures); harness on CPUs {cpus:?}"
        );
    }
    let mut plan = Plan {
        clients: args.clients,
        users: args.users,
        rates: args.rates.clone(),
        stage_secs: args.stage_secs,
        drain_secs: args.drain_secs,
        p99_limit_ms: args.p99_limit_ms,
        harness_cpus: cpus.len().max(1),
        pad_to: 0,
    };

    println!("\n== StudyOn ({})", server_bin(&args).display());
    let studyon = run_studyon(&args, &plan, pin).await;
    if let Err(e) = &studyon {
        println!("  StudyOn run failed: {e}");
    }

    let baseline = if args.no_baseline {
        None
    } else {
        println!("\n== Baseline (Node ws broadcast, loadtest/baseline/broadcast.mjs)");
        if let Ok(s) = &studyon {
            plan.pad_to = s.avg_frame_bytes.round() as usize;
            println!(
                "  frames padded to {} bytes, StudyOn's average chat.message frame",
                plan.pad_to
            );
        }
        let b = run_baseline(&args, &plan, pin).await;
        if let Err(e) = &b {
            println!("  baseline run failed: {e}");
        }
        Some(b)
    };

    println!();
    let ok = summarize(&studyon, baseline.as_ref(), args.smoke);
    println!("total run time {:.0} s", started.elapsed().as_secs_f64());
    Ok(ok)
}

async fn http_ready(addr: SocketAddr, path: &str) -> bool {
    matches!(
        http::request(addr, "GET", path, &[], None, Duration::from_secs(2)).await,
        Ok(r) if r.status == 200
    )
}

const DEFAULT_SERVER_BIN: &str = "/root/.cache/studyon/target/release/studyon";

fn server_bin(args: &FanoutArgs) -> PathBuf {
    resolve_server_bin(args.server_bin.as_ref())
}

/// `--server-bin` if given, else `studyon` next to this executable, else the default path.
fn resolve_server_bin(given: Option<&PathBuf>) -> PathBuf {
    if let Some(p) = given {
        return p.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("studyon")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SERVER_BIN))
}

/// The newest modification time of the files under `dir`.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let t = if entry.file_type().ok()?.is_dir() {
            newest_mtime(&entry.path())
        } else {
            entry.metadata().ok()?.modified().ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// Says so when the server binary is older than the newest file in `src/`.
fn warn_if_stale(bin: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src");
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(edited)) = (built, newest_mtime(&src))
        && edited > built
    {
        println!(
            "  warning: {} is older than the newest file in src/: rebuild it to measure the current code",
            bin.display()
        );
    }
}

async fn run_studyon(args: &FanoutArgs, plan: &Plan, pin: bool) -> Result<RunResult, String> {
    let bin = server_bin(args);
    if !bin.is_file() {
        return Err(format!(
            "no server binary at {} (build it: cargo build --release --bin studyon)",
            bin.display()
        ));
    }
    warn_if_stale(&bin);
    let scratch = procs::Scratch::new("studyon")?;
    let port = procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let data = scratch.0.join("data");
    let server_args: Vec<String> = [
        "serve",
        "--listen",
        &addr.to_string(),
        "--data-dir",
        &data.to_string_lossy(),
        "--workers",
        "1",
        "--log",
        "warn",
        "--metrics-listen",
        "127.0.0.1:0",
        // Every simulated user signs up from this one loopback address.
        "--signup-burst",
        "1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(args.server_arg.iter().cloned())
    .collect();
    let log = scratch.0.join("server.log");
    with_studyon(&bin, &server_args, pin, log, addr, |pid| async move {
        let origin = format!("http://{addr}");
        let t = Instant::now();
        let s = setup::run(addr, &origin, args.users).await?;
        println!(
            "  setup: {} users signed up, joined one study, room {} created in {:.1} s",
            s.cookies.len(),
            s.room_id,
            t.elapsed().as_secs_f64()
        );
        let target = Target {
            kind: Kind::StudyOn,
            name: "studyon",
            addr,
            url: format!("ws://{addr}/ws"),
            origin: Some(origin),
            cookies: s.cookies,
            room_json: s.room_id.to_string(),
            pid,
        };
        fanout::run(&target, plan).await
    })
    .await
}

/// Runs `scenario` (given the server's pid) against a StudyOn server started with
/// `args`: first waits for `/readyz`; adds the server's output to an error, or prints it,
/// when the server died; stops the server after.
async fn with_studyon<T, F, Fut>(
    bin: &Path,
    args: &[String],
    pin: bool,
    log: PathBuf,
    addr: SocketAddr,
    scenario: F,
) -> Result<T, String>
where
    F: FnOnce(u32) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut server = procs::spawn("studyon", bin, args, pin, log, None)?;
    let result = if procs::wait_until(READY_TIMEOUT, || http_ready(addr, "/readyz")).await {
        scenario(server.pid).await
    } else {
        Err(format!(
            "GET /readyz did not answer 200 within {READY_TIMEOUT:?}; server output:\n{}",
            server.log_tail(20)
        ))
    };
    let result = match result {
        Err(e) if !server.alive() => Err(format!(
            "{e}\nthe server exited; its output:\n{}",
            server.log_tail(20)
        )),
        Ok(_) if !server.alive() => {
            println!(
                "  the server exited during the run; its output:\n{}",
                server.log_tail(20)
            );
            result
        }
        r => r,
    };
    server.stop().await;
    result
}

/// `npm ci` in `dir` unless `probe` (a file under it) shows the packages are installed.
async fn npm_ci(dir: &Path, probe: &str) -> Result<(), String> {
    if dir.join(probe).is_file() {
        return Ok(());
    }
    println!(
        "  installing the baseline's packages: npm ci in {}",
        dir.display()
    );
    let child = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(Duration::from_secs(180), child).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(format!("npm ci failed ({s})")),
        Ok(Err(e)) => Err(format!("cannot run npm: {e}")),
        Err(_) => Err("npm ci took over 180 s".into()),
    }
}

async fn run_baseline(args: &FanoutArgs, plan: &Plan, pin: bool) -> Result<RunResult, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline");
    npm_ci(&dir, "node_modules/ws/package.json").await?;
    let scratch = procs::Scratch::new("baseline")?;
    let port = procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let server = procs::spawn(
        "node",
        &args.node,
        &["broadcast.mjs".to_string(), port.to_string()],
        pin,
        scratch.0.join("node.log"),
        Some(&dir),
    )?;
    let result = async {
        let listening = procs::wait_until(READY_TIMEOUT, || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        if !listening {
            return Err(format!(
                "the Node baseline did not listen within {READY_TIMEOUT:?}; output:\n{}",
                server.log_tail(20)
            ));
        }
        let target = Target {
            kind: Kind::Baseline,
            name: "baseline",
            addr,
            url: format!("ws://{addr}/"),
            origin: None,
            cookies: Vec::new(),
            room_json: String::new(),
            pid: server.pid,
        };
        fanout::run(&target, plan).await
    }
    .await;
    server.stop().await;
    result
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".into()
    }
}

/// Prints the summary; returns whether the run passed (smoke: nothing lost, duplicated or
/// refused and something arrived; full run: the StudyOn part ran and nothing was lost or
/// duplicated below saturation).
fn summarize(
    studyon: &Result<RunResult, String>,
    baseline: Option<&Result<RunResult, String>>,
    smoke: bool,
) -> bool {
    println!("== Summary");
    let mut ok = true;
    for run in std::iter::once(studyon).chain(baseline) {
        let Ok(r) = run else {
            ok = false;
            continue;
        };
        let lost: u64 = r.stages.iter().map(|s| s.lost).sum();
        let dup: u64 = r.stages.iter().map(|s| s.dup).sum();
        let gaps: u64 = r.stages.iter().map(|s| s.gaps).sum();
        let delivered: u64 = r.stages.iter().map(|s| s.delivered).sum();
        let rl: u64 = r.stages.iter().map(|s| s.rate_limited).sum();
        let other: u64 = r.stages.iter().map(|s| s.other_errors()).sum();
        match &r.stop {
            Some(why) => println!(
                "{:<8} ramp stopped at {} msg/s: {why}",
                r.name,
                r.stages.last().map(|s| s.rate).unwrap_or(0)
            ),
            None => println!("{:<8} no saturation up to the highest rate", r.name),
        }
        if let Some(p) = r.peak() {
            println!(
                "{:<8} peak {:.0} deliveries/s at {} msg/s (p99 {:.2} ms, {}/delivery); lost {lost}, duplicated {dup}, seq gaps {gaps}, rate_limited {rl}, other errors {other}",
                r.name,
                p.dps,
                p.rate,
                p.p99_ms,
                fanout::fmt_cpu(p.cpu_per_delivery)
            );
        }
        match r
            .stages
            .iter()
            .filter(|s| s.p99_ms < 10.0 && s.lost == 0)
            .max_by(|a, b| a.dps.total_cmp(&b.dps))
        {
            Some(s) => println!(
                "{:<8} most deliveries/s with p99 < 10 ms: {:.0} at {} msg/s (p99 {:.2} ms)",
                r.name, s.dps, s.rate, s.p99_ms
            ),
            None => println!("{:<8} no stage had p99 < 10 ms", r.name),
        }
        if r.name == "studyon"
            && (dup > 0 || (smoke && (lost > 0 || gaps > 0 || rl + other > 0 || delivered == 0)))
        {
            ok = false;
        }
        if r.name == "studyon" && !smoke && lost > 0 {
            // Loss past saturation is reported; below it, it is a failure.
            let below: u64 = r
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

    if let (Ok(s), Some(Ok(b))) = (studyon, baseline) {
        println!("\nStudyOn / baseline (same run, same machine, both on core 0):");
        if s.stages.iter().any(|x| x.rate_limited > 0) {
            println!(
                "  note: StudyOn's ramp ended on its per-user chat limit ({} msg/s per user), so its peak is a limit of the setup (--users {}), not its saturation point",
                fanout::PER_USER_RATE,
                s.stages.first().map(|x| x.sender_users).unwrap_or(0)
            );
        }
        if let (Some(sp), Some(bp)) = (s.peak(), b.peak()) {
            println!(
                "  peak deliveries/s      {:>10.0} / {:>10.0} = {}",
                sp.dps,
                bp.dps,
                ratio(sp.dps, bp.dps)
            );
            println!(
                "  CPU s per delivery     {:>10} / {:>10} = {}  (at each one's peak stage)",
                fanout::fmt_cpu(sp.cpu_per_delivery),
                fanout::fmt_cpu(bp.cpu_per_delivery),
                ratio(
                    sp.cpu_per_delivery.unwrap_or(f64::NAN),
                    bp.cpu_per_delivery.unwrap_or(f64::NAN)
                )
            );
            println!(
                "  p99 at peak            {:>7.2} ms / {:>7.2} ms = {}",
                sp.p99_ms,
                bp.p99_ms,
                ratio(sp.p99_ms, bp.p99_ms)
            );
        }
        println!(
            "  per rate (both ran it):  rate | deliveries/s S/B | CPU per delivery S/B | p99 S/B"
        );
        for ss in &s.stages {
            if let Some(bs) = b.stages.iter().find(|x| x.rate == ss.rate) {
                println!(
                    "    {:>6} msg/s | {:>8.0} / {:>8.0} = {:>6} | {:>9} / {:>9} = {:>6} | {:>7.2} / {:>7.2} ms = {}{}",
                    ss.rate,
                    ss.dps,
                    bs.dps,
                    ratio(ss.dps, bs.dps),
                    fanout::fmt_cpu(ss.cpu_per_delivery),
                    fanout::fmt_cpu(bs.cpu_per_delivery),
                    ratio(
                        ss.cpu_per_delivery.unwrap_or(f64::NAN),
                        bs.cpu_per_delivery.unwrap_or(f64::NAN)
                    ),
                    ss.p99_ms,
                    bs.p99_ms,
                    ratio(ss.p99_ms, bs.p99_ms),
                    if ss.rate_limited > 0 {
                        "  (StudyOn rate-limited: not comparable)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    println!("\nresult: {}", if ok { "PASS" } else { "FAIL" });
    ok
}
