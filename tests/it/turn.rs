//! The TURN server's configuration (`turn/turnserver.conf.template`) run by a real coturn on
//! loopback, with credentials from `studyon::live::video::turn`: a fresh one allocates and
//! relays, an expired or wrongly signed one is refused with 401, and the template's peer
//! rules keep relays away from loopback. Needs coturn's `turnserver` and
//! `turnutils_uclient` (ops/test.sh installs Debian's `coturn`); all traffic is on 127.0.0.1.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use studyon::ids::UserId;
use studyon::live::video::turn::{rest_credential, rest_password};

const TEMPLATE: &str = include_str!("../../turn/turnserver.conf.template");
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Relay ports for one test server: the client-to-client run needs two.
const RELAY_PORTS: u16 = 16;
/// `turnutils_uclient` waits 1 to 6 s (at random) before sending, then a few hundred ms.
const UCLIENT_LIMIT: Duration = Duration::from_secs(15);

/// A child process killed (and reaped) when dropped, so no test leaves one behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, output: &Path) -> Proc {
    let out = File::create(output).expect("output file");
    let err = out.try_clone().expect("output file");
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn() {
        Ok(child) => Proc(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not installed: the TURN tests need coturn \
             (ops/test.sh installs it; by hand: apt-get install coturn)"
        ),
        Err(e) => panic!("cannot start `{program}`: {e}"),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Which of the template's peer rules the test server keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peers {
    /// Without the `denied-peer-ip` ranges that hold 127.0.0.1, so relaying works on loopback.
    LoopbackAllowed,
    /// Every rule as in production.
    AsInProduction,
}

/// Whether an IPv4 `denied-peer-ip` value (`a` or `a-b`) holds `ip`; IPv6 values never do.
fn range_holds(value: &str, ip: Ipv4Addr) -> bool {
    let (lo, hi) = value.split_once('-').unwrap_or((value, value));
    match (lo.trim().parse::<Ipv4Addr>(), hi.trim().parse::<Ipv4Addr>()) {
        (Ok(lo), Ok(hi)) => lo <= ip && ip <= hi,
        _ => false,
    }
}

/// The template with its placeholders filled in for loopback, minus what needs a
/// certificate (the test has none), plus the test-only lines.
fn render(dir: &Path, port: u16, relay: (u16, u16), secret: &str, peers: Peers) -> String {
    let vars = [
        ("TURN_SECRET", secret.to_owned()),
        ("TURN_REALM", "studyon.test".to_owned()),
        ("TURN_LISTEN_IP", LOOPBACK.to_string()),
        ("TURN_RELAY_IP", LOOPBACK.to_string()),
        ("TURN_PORT", port.to_string()),
        ("TURN_TLS_PORT", "0".to_owned()),
        ("TURN_CERT", "unused".to_owned()),
        ("TURN_PKEY", "unused".to_owned()),
        ("TURN_MIN_PORT", relay.0.to_string()),
        ("TURN_MAX_PORT", relay.1.to_string()),
    ];
    let mut conf = TEMPLATE.to_owned();
    for (name, value) in &vars {
        conf = conf.replace(&format!("${{{name}}}"), value);
    }
    let mut out = String::new();
    for line in conf.lines() {
        let setting = line.trim();
        if setting.starts_with('#') {
            continue;
        }
        assert!(
            !setting.contains("${"),
            "placeholder the test does not fill: {line}"
        );
        let (key, value) = setting.split_once('=').unwrap_or((setting, ""));
        let keep = match key {
            "cert" | "pkey" | "tls-listening-port" => false,
            "denied-peer-ip" => peers == Peers::AsInProduction || !range_holds(value, LOOPBACK),
            _ => true,
        };
        if keep {
            out.push_str(setting);
            out.push('\n');
        }
    }
    let db = dir.join("turndb");
    let pid = dir.join("turnserver.pid");
    out.push_str(&format!(
        "# Test only: no certificate, so no TLS listener.\n\
         no-tls\n\
         # The test's peers are relay addresses on 127.0.0.1.\n\
         allow-loopback-peers\n\
         # Logs each request's user and outcome, which the test reads.\n\
         verbose\n\
         # coturn's database and pid file in the temp dir, not under /var.\n\
         userdb={}\n\
         pidfile={}\n",
        db.display(),
        pid.display()
    ));
    out
}

/// A loopback port free for both UDP and TCP (coturn listens on both) outside `avoid`.
fn free_port(avoid: (u16, u16)) -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((LOOPBACK, 0)).expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if (avoid.0..=avoid.1).contains(&port) {
            continue;
        }
        if TcpListener::bind((LOOPBACK, port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// `RELAY_PORTS` consecutive loopback UDP ports that are free now.
fn free_udp_range() -> (u16, u16) {
    for _ in 0..100 {
        let first = UdpSocket::bind((LOOPBACK, 0)).expect("bind udp");
        let lo = first.local_addr().unwrap().port();
        let Some(hi) = lo.checked_add(RELAY_PORTS - 1) else {
            continue;
        };
        let rest: Result<Vec<_>, _> = (lo + 1..=hi)
            .map(|p| UdpSocket::bind((LOOPBACK, p)))
            .collect();
        if rest.is_ok() {
            return (lo, hi);
        }
    }
    panic!("no free run of {RELAY_PORTS} loopback UDP ports");
}

/// A coturn `turnserver` on loopback, stopped when dropped.
struct Turn {
    proc: Proc,
    port: u16,
    secret: String,
    log: PathBuf,
    dir: tempfile::TempDir,
    runs: u32,
}

impl Turn {
    fn start(peers: Peers) -> Turn {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut key = [0u8; 24];
        getrandom::fill(&mut key).expect("random secret");
        let secret = hex::encode(key);
        let relay = free_udp_range();
        let port = free_port(relay);
        let conf = dir.path().join("turnserver.conf");
        std::fs::write(&conf, render(dir.path(), port, relay, &secret, peers)).unwrap();
        let log = dir.path().join("turnserver.log");
        let proc = spawn(Command::new("turnserver").arg("-c").arg(&conf), &log);
        let mut turn = Turn {
            proc,
            port,
            secret,
            log,
            dir,
            runs: 0,
        };
        turn.wait_ready();
        turn
    }

    fn log(&self) -> String {
        read(&self.log)
    }

    /// Until the server answers a STUN Binding request on its port (at most 10 s).
    fn wait_ready(&mut self) {
        let sock = UdpSocket::bind((LOOPBACK, 0)).expect("bind udp");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut request = [0u8; 20];
        request[..2].copy_from_slice(&0x0001u16.to_be_bytes()); // Binding request, no attributes
        request[4..8].copy_from_slice(&0x2112_a442u32.to_be_bytes()); // magic cookie
        getrandom::fill(&mut request[8..]).expect("transaction id");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                panic!(
                    "turnserver exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "turnserver did not answer STUN within 10 s:\n{}",
                self.log()
            );
            sock.send_to(&request, (LOOPBACK, self.port)).unwrap();
            let mut buf = [0u8; 512];
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && n >= 20
                && buf[..2] == [0x01, 0x01] // Binding success response
                && buf[8..20] == request[8..]
            {
                return;
            }
        }
    }

    /// `turnutils_uclient` as two clients that allocate a relay each and send each other 5
    /// messages of 64 bytes through them, with `user`/`password`; bounded by `UCLIENT_LIMIT`.
    fn uclient(&mut self, user: &str, password: &str) -> (ExitStatus, String) {
        self.runs += 1;
        let output = self.dir.path().join(format!("uclient-{}.log", self.runs));
        let port = self.port.to_string();
        let mut proc = spawn(
            Command::new("turnutils_uclient").args([
                "-y",
                "-c",
                "-n",
                "5",
                "-m",
                "2",
                "-l",
                "64",
                "-p",
                &port,
                "-u",
                user,
                "-w",
                password,
                "127.0.0.1",
            ]),
            &output,
        );
        let deadline = Instant::now() + UCLIENT_LIMIT;
        loop {
            if let Some(status) = proc.0.try_wait().unwrap() {
                return (status, read(&output));
            }
            assert!(
                Instant::now() < deadline,
                "turnutils_uclient ran over {UCLIENT_LIMIT:?}:\n{}",
                read(&output)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log lines naming `user` (each request is logged after it is handled,
    /// so this waits up to 2 s for one that `done` accepts).
    fn user_lines(&self, user: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let tag = format!("user <{user}>");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let lines: Vec<String> = self
                .log()
                .lines()
                .filter(|l| l.contains(&tag))
                .map(str::to_owned)
                .collect();
            if lines.iter().any(|l| done(l)) || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `(sent, received)` from the summary `turnutils_uclient` prints when it finishes.
fn relayed(output: &str) -> Option<(u64, u64)> {
    let line = output
        .lines()
        .find(|l| l.contains("start_mclient: tot_send_msgs=") && !l.contains("msz="))?;
    let count = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((count("tot_send_msgs=")?, count("tot_recv_msgs=")?))
}

fn assert_refused_401(turn: &mut Turn, user: &str, password: &str, what: &str) {
    let (status, output) = turn.uclient(user, password);
    assert!(!status.success(), "{what}: the client succeeded:\n{output}");
    assert_eq!(
        relayed(&output),
        None,
        "{what}: data was relayed:\n{output}"
    );
    let lines = turn.user_lines(user, |l| l.contains("error 401"));
    assert!(
        lines.iter().any(|l| l.contains("error 401")),
        "{what}: coturn logged no 401 for {user}:\n{}",
        turn.log()
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("ALLOCATE processed, success")),
        "{what}: coturn allocated for {user}:\n{}",
        lines.join("\n")
    );
}

/// The credential StudyOn hands out relays; one that has expired, or is signed with another
/// secret, gets no allocation.
#[test]
fn rest_credentials_allocate_until_they_expire() {
    let mut turn = Turn::start(Peers::LoopbackAllowed);
    let secret = turn.secret.clone();
    let now = now_unix();

    // Expired a day ago.
    let (user, password) = rest_credential(&secret, UserId(7), now - 86_400, 600);
    let expiry: u64 = user.split(':').next().unwrap().parse().unwrap();
    assert!(expiry < now);
    assert_refused_401(&mut turn, &user, &password, "expired credential");

    // Fresh, but signed with another secret.
    let (user, _) = rest_credential(&secret, UserId(7), now, 300);
    let password = rest_password("not-the-secret", &user);
    assert_refused_401(&mut turn, &user, &password, "wrong password");

    // Fresh and right: both clients allocate, and each one's messages reach the other
    // through the relays.
    let (user, password) = rest_credential(&secret, UserId(7), now, 600);
    let (status, output) = turn.uclient(&user, &password);
    assert!(
        status.success(),
        "fresh credential failed ({status}):\n{output}\n{}",
        turn.log()
    );
    let (sent, received) = relayed(&output).unwrap_or_else(|| panic!("no summary:\n{output}"));
    assert_eq!(sent, 10, "{output}");
    assert!(received > 0, "nothing was relayed:\n{output}");
    let lines = turn.user_lines(&user, |l| l.contains("ALLOCATE processed, success"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ALLOCATE processed, success")),
        "coturn logged no allocation for {user}:\n{}",
        turn.log()
    );
}

/// The template as it is: every `denied-peer-ip` range parses, and relaying to a loopback
/// peer is refused (403) even to a valid credential and with loopback peers allowed.
#[test]
fn production_peer_rules_refuse_loopback() {
    let mut turn = Turn::start(Peers::AsInProduction);
    let log = turn.log();
    for bad in [
        "Bad configuration format",
        "Wrong address format",
        "CONFIG ERROR",
    ] {
        assert!(
            !log.contains(bad),
            "coturn rejected part of the template ({bad}):\n{log}"
        );
    }
    let ranges = TEMPLATE
        .lines()
        .filter(|l| l.starts_with("denied-peer-ip="))
        .count();
    assert_eq!(
        log.matches("Black listing:").count(),
        ranges,
        "coturn took a different number of denied-peer-ip ranges:\n{log}"
    );

    let (user, password) = rest_credential(&turn.secret, UserId(7), now_unix(), 600);
    let (status, output) = turn.uclient(&user, &password);
    assert!(!status.success(), "relayed to loopback:\n{output}");
    assert_eq!(relayed(&output), None, "relayed to loopback:\n{output}");
    let lines = turn.user_lines(&user, |l| l.contains("error 403"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ALLOCATE processed, success")),
        "the credential should still allocate:\n{}",
        turn.log()
    );
    assert!(
        lines.iter().any(|l| l.contains("error 403")),
        "coturn logged no 403 for the loopback peer:\n{}",
        turn.log()
    );
}
