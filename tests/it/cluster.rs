//! Cluster mode with real server processes: three nodes on one Postgres database and one
//! Redis (each test starts its own `redis-server` on a free loopback port, so tests never
//! share keys and one may restart its Redis). Covers cross-node chat, DMs and
//! notifications, frames batched per node, `kill -9` failover with resume and no loss, the
//! SIGTERM drain, a node paused past its lease, and a Redis restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::chat::{join, room_with_members};
use crate::common::*;

/// A `redis-server` of this test's own, on a free loopback port, keeping nothing on disk.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(dir: PathBuf) -> Redis {
        let port = free_port();
        let mut r = Redis {
            child: None,
            port,
            dir,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &self.dir.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (ops/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the test nodes' links prove.
const CLUSTER_SECRET: &str = "test-cluster-secret";

/// One `studyon serve` process.
struct Node {
    /// Behind a lock so a test can kill one node while its tabs hold the others.
    child: std::sync::Mutex<Option<Child>>,
    url: String,
    metrics: String,
    log: PathBuf,
}

impl Target for Node {
    fn url(&self) -> String {
        self.url.clone()
    }
}

impl Node {
    fn pid(&self) -> i32 {
        self.child.lock().unwrap().as_ref().expect("running").id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap();
        child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn kill9(&self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.lock().unwrap().take().map(|mut c| c.wait());
    }

    /// Waits for the process to exit; returns how long it took.
    fn wait_exit(&self, within: Duration) -> Duration {
        let started = Instant::now();
        let mut c = self.child.lock().unwrap().take().expect("running");
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "drained node exits cleanly: {status}");
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "node did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn metric(&self, name: &str) -> f64 {
        let body = client()
            .get(format!("{}/metrics", self.metrics))
            .send()
            .await
            .expect("metrics")
            .body()
            .await
            .expect("metrics body");
        let text = String::from_utf8_lossy(&body);
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Cluster {
    db: Backend,
    redis: Redis,
    nodes: Vec<Node>,
    extra: Vec<String>,
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[]).await
    }

    async fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let db = Backend::new(Db::Postgres).await;
        let redis = Redis::start(db.dir.path().to_path_buf());
        let mut c = Cluster {
            db,
            redis,
            nodes: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            let node = c.spawn(i).await;
            c.nodes.push(node);
        }
        c
    }

    async fn spawn(&self, i: usize) -> Node {
        let (port, mport) = (free_port(), free_port());
        let dir = self.db.dir.path().join(format!("node{i}-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_studyon"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", &dir.display().to_string()])
            .args(["--database-url", &self.db.database_url])
            .args(["--redis-url", &self.redis.url()])
            .args(["--cluster-listen", "127.0.0.1:0"])
            .args(["--cluster-secret", CLUSTER_SECRET])
            .args(["--metrics-listen", &format!("127.0.0.1:{mport}")])
            .args(["--workers", "2", "--log", "warn", "--shutdown-secs", "5"])
            // The date jobs could move the tests' fixed-date studies (see common.rs).
            .args(["--job-recruitment-close=", "--job-study-reminders="])
            .args(&self.extra)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("server binary runs");
        let node = Node {
            child: std::sync::Mutex::new(Some(child)),
            url: format!("http://127.0.0.1:{port}"),
            metrics: format!("http://127.0.0.1:{mport}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client().get(format!("{}/readyz", node.url)).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} not ready: {}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }
}

fn send(room: i64, client_id: &str) -> String {
    json!({ "type": "chat.send", "id": client_id, "room_id": room, "client_id": client_id, "body": client_id })
        .to_string()
}

/// The next frame within `within`, if any (pings skipped).
async fn frame_within(ws: &mut WsConn, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(ws)).await {
            Err(_) => return None,
            Ok(Some(Ok(awc::ws::Frame::Text(t)))) => {
                return Some(serde_json::from_slice(&t).unwrap());
            }
            Ok(Some(Ok(awc::ws::Frame::Close(r)))) => {
                return Some(json!({ "type": "closed", "code": r.map(|r| u16::from(r.code)) }));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(None) | Ok(Some(Err(_))) => return Some(json!({ "type": "closed" })),
        }
    }
}

/// Collects `chat.message` seqs (seq → body) until `want` distinct ones arrived.
async fn collect_messages(ws: &mut WsConn, seen: &mut BTreeMap<i64, String>, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < want {
        assert!(Instant::now() < deadline, "only {seen:?} arrived");
        if let Some(f) = frame_within(ws, Duration::from_secs(1)).await
            && f["type"] == "chat.message"
        {
            let seq = f["message"]["seq"].as_i64().unwrap();
            let body = f["message"]["body"].as_str().unwrap().to_string();
            if let Some(old) = seen.insert(seq, body.clone()) {
                assert_eq!(old, body, "one seq, one message");
            }
        }
    }
}

fn assert_gapless(seen: &BTreeMap<i64, String>) {
    let seqs: Vec<i64> = seen.keys().copied().collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no gaps");
}

/// One member's chat tab on one node: its socket and what it has seen of the room.
struct Tab<'a> {
    node: &'a Node,
    who: &'a Session,
    room: i64,
    ws: WsConn,
    /// seq → body of every `chat.message` seen.
    seen: BTreeMap<i64, String>,
}

impl<'a> Tab<'a> {
    /// A socket on `node` that joined `room` (the first join of a room makes its node the
    /// owner).
    async fn open(node: &'a Node, who: &'a Session, room: i64) -> Tab<'a> {
        let (ws, _) = join(node, who, room, None).await;
        Tab {
            node,
            who,
            room,
            ws,
            seen: BTreeMap::new(),
        }
    }

    /// Records `f` if it is a message of the room.
    fn note(&mut self, f: &Value) {
        if f["type"] == "chat.message" {
            let seq = f["message"]["seq"].as_i64().unwrap();
            let body = f["message"]["body"].as_str().unwrap().to_string();
            if let Some(old) = self.seen.insert(seq, body.clone()) {
                assert_eq!(old, body, "one seq, one message");
            }
        }
    }

    /// Joins again on a new socket from the last seq seen, retrying while the room is
    /// between owners.
    async fn rejoin(&mut self) {
        self.join_from(self.seen.keys().last().copied()).await;
    }

    /// Joins again asking for everything from seq 1.
    async fn rejoin_from_start(&mut self) {
        self.join_from(Some(0)).await;
    }

    async fn join_from(&mut self, last: Option<i64>) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            assert!(
                Instant::now() < deadline,
                "could not re-join room {}",
                self.room
            );
            let mut ws = ws_connect(self.node, &self.who.cookie).await;
            hello(&mut ws).await;
            let mut msg = json!({ "type": "chat.join", "id": "j", "room_id": self.room });
            if let Some(l) = last {
                msg["last_seq"] = json!(l);
            }
            send_text(&mut ws, msg.to_string()).await;
            while let Some(f) = frame_within(&mut ws, Duration::from_secs(5)).await {
                match f["type"].as_str() {
                    Some("chat.joined") => {
                        self.ws = ws;
                        return;
                    }
                    Some("error") => break,
                    _ => self.note(&f),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends `client_id` until it is acked, re-joining whenever the room moved (a `resync`
    /// frame, or an error other than `unavailable`). Returns the acked seq.
    async fn send(&mut self, client_id: &str, within: Duration) -> i64 {
        let deadline = Instant::now() + within;
        send_text(&mut self.ws, send(self.room, client_id)).await;
        loop {
            assert!(
                Instant::now() < deadline,
                "{client_id} not acked within {within:?}"
            );
            let Some(f) = frame_within(&mut self.ws, Duration::from_millis(500)).await else {
                continue;
            };
            match f["type"].as_str().unwrap() {
                "chat.ack" if f["client_id"] == client_id => return f["seq"].as_i64().unwrap(),
                "resync" => {
                    self.rejoin().await;
                    send_text(&mut self.ws, send(self.room, client_id)).await;
                }
                "error" => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if f["error"] != "unavailable" {
                        self.rejoin().await;
                    }
                    send_text(&mut self.ws, send(self.room, client_id)).await;
                }
                _ => self.note(&f),
            }
        }
    }

    /// Reads until `want` messages were seen, re-joining when told to (`resync`).
    async fn follow(&mut self, want: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.seen.len() < want {
            assert!(
                Instant::now() < deadline,
                "saw only {:?}; node log: {}",
                self.seen,
                self.node.log()
            );
            match frame_within(&mut self.ws, Duration::from_millis(500)).await {
                Some(f) if f["type"] == "resync" => self.rejoin().await,
                Some(f) => self.note(&f),
                None => {}
            }
        }
        assert_gapless(&self.seen);
    }

    fn bodies(&self) -> Vec<&str> {
        self.seen.values().map(|b| b.as_str()).collect()
    }
}

#[actix_rt::test]
async fn cross_node_chat_dms_and_notifications() {
    let c = Cluster::start(3).await;
    let [a, b, n3] = [&c.nodes[0], &c.nodes[1], &c.nodes[2]];
    let (leader, members, study, room) = room_with_members(a, 6).await;
    // Node a owns the room: its first user joins there.
    let (mut wa, _) = join(a, &leader, room, None).await;
    let mut wb = Vec::new();
    let mut wc = Vec::new();
    for (i, m) in members.iter().enumerate() {
        if i % 2 == 0 {
            wb.push(join(b, m, room, None).await.0);
        } else {
            wc.push(join(n3, m, room, None).await.0);
        }
    }
    // Let presence settle, then one message from a: it crosses to b and to c once each.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let batches = a
        .metric("studyon_cluster_forwarded_total{what=\"frames\"}")
        .await;
    let frames = a.metric("studyon_cluster_forwarded_frames_total").await;
    send_text(&mut wa, send(room, "first")).await;
    let mut seen_b = BTreeMap::new();
    collect_messages(&mut wb[0], &mut seen_b, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a.metric("studyon_cluster_forwarded_total{what=\"frames\"}")
            .await
            - batches,
        2.0,
        "one batch per node"
    );
    assert_eq!(
        a.metric("studyon_cluster_forwarded_frames_total").await - frames,
        6.0,
        "every remote socket got it"
    );

    // Senders on all three nodes, interleaved: everyone sees one order with no gaps.
    for i in 0..5 {
        send_text(&mut wa, send(room, &format!("a{i}"))).await;
        send_text(&mut wb[1], send(room, &format!("b{i}"))).await;
        send_text(&mut wc[0], send(room, &format!("c{i}"))).await;
    }
    let mut orders = Vec::new();
    let sockets = std::iter::once(&mut wa)
        .chain(wb.iter_mut())
        .chain(wc.iter_mut());
    for (i, ws) in sockets.enumerate() {
        // The second socket (b's first) read the first message already.
        let mut seen = if i == 1 {
            seen_b.clone()
        } else {
            BTreeMap::new()
        };
        collect_messages(ws, &mut seen, 16).await;
        assert_gapless(&seen);
        orders.push(seen);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "one order everywhere"
    );

    // A DM from a member on b reaches the other member on node 3, and both tabs of the
    // sender (one on a).
    let (x, y) = (&members[0], &members[1]);
    let mut y_tab = ws_connect(n3, &y.cookie).await;
    hello(&mut y_tab).await;
    let mut x_tab_a = ws_connect(a, &x.cookie).await;
    hello(&mut x_tab_a).await;
    let mut x_tab_b = ws_connect(b, &x.cookie).await;
    hello(&mut x_tab_b).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_text(
        &mut x_tab_b,
        json!({ "type": "dm.send", "id": "d1", "to": y.user["id"], "client_id": "d1", "body": "안녕" })
            .to_string(),
    )
    .await;
    for t in [&mut y_tab, &mut x_tab_a] {
        let f = crate::chat::next_of(t, "dm.message").await;
        assert_eq!(f["message"]["body"], "안녕");
    }

    // A user with tabs on two nodes gets a notification in both: someone on node 3 applies.
    let mut l1 = ws_connect(b, &leader.cookie).await;
    hello(&mut l1).await;
    let mut l2 = ws_connect(n3, &leader.cookie).await;
    hello(&mut l2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let applicant = signup(n3).await;
    crate::studies::apply(n3, study, &applicant).await;
    for t in [&mut l1, &mut l2] {
        let f = crate::chat::next_of(t, "notification").await;
        assert!(f["notification"]["kind"].is_string(), "{f}");
    }
    c.db.drop_db().await;
}

#[actix_rt::test]
async fn kill_9_fails_over_without_losing_what_was_acked() {
    let c = Cluster::start(3).await;
    let (leader, members, study, room) = room_with_members(&c.nodes[0], 2).await;
    // Node 0 owns the room.
    let _owner = Tab::open(&c.nodes[0], &leader, room).await;
    let mut b = Tab::open(&c.nodes[1], &members[0], room).await;
    let mut other = Tab::open(&c.nodes[2], &members[1], room).await;
    for i in 0..10 {
        let seq = b.send(&format!("before{i}"), Duration::from_secs(5)).await;
        assert_eq!(seq, i + 1);
    }
    c.nodes[0].kill9();
    let killed = Instant::now();
    let seq = b.send("after", Duration::from_secs(15)).await;
    let took = killed.elapsed();
    assert_eq!(seq, 11, "the new owner continues the log");
    assert!(
        took < Duration::from_secs(5),
        "first send after the kill took {took:?}"
    );
    // The member on node 2 is sent to re-attach, resumes from its last seq and has all 11.
    other.follow(11, Duration::from_secs(15)).await;
    assert_eq!(other.seen[&11], "after");
    // History agrees: nothing acked was lost.
    let (st, h) = get(
        &c.nodes[2],
        &format!("/api/studies/{study}/chat_rooms/{room}/messages?limit=50"),
        Some(&members[1].cookie),
    )
    .await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["items"].as_array().unwrap().len(), 11, "{h}");
    c.db.drop_db().await;
}

#[actix_rt::test]
async fn sigterm_drains_and_clients_move() {
    let c = Cluster::start(2).await;
    let (leader, members, _study, room) = room_with_members(&c.nodes[0], 1).await;
    let mut a = Tab::open(&c.nodes[0], &leader, room).await;
    let mut b = Tab::open(&c.nodes[1], &members[0], room).await;
    b.send("one", Duration::from_secs(5)).await;
    c.nodes[0].signal(libc::SIGTERM);
    // Its own sockets are closed with 1001 (going away) so clients move.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no 1001 from the draining node");
        if let Some(f) = frame_within(&mut a.ws, Duration::from_millis(500)).await
            && f["type"] == "closed"
        {
            assert_eq!(f["code"], 1001, "{f}");
            break;
        }
    }
    // Its listener was closed before its sockets (not just paused): a client told to
    // reconnect, or a load balancer's connect, is refused at once and goes to another node
    // instead of waiting in the backlog.
    let addr = c.nodes[0].url.trim_start_matches("http://").to_string();
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the draining node still accepts"
    );
    assert!(c.nodes[0].is_running(), "refused while draining");
    let took = c.nodes[0].wait_exit(Duration::from_secs(6));
    assert!(took < Duration::from_secs(6), "drain took {took:?}");
    // The room starts on the remaining node at once (its lease was given back).
    let started = Instant::now();
    assert_eq!(b.send("two", Duration::from_secs(5)).await, 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a drained node's keys move without waiting for leases to lapse"
    );
    // The leader reconnects to the remaining node and resumes.
    a.node = &c.nodes[1];
    a.rejoin_from_start().await;
    a.follow(2, Duration::from_secs(10)).await;
    assert_eq!(a.bodies(), ["one", "two"]);
    c.db.drop_db().await;
}

#[actix_rt::test]
async fn a_node_paused_past_its_lease_is_owner_no_more() {
    let c = Cluster::start(2).await;
    let (leader, members, _study, room) = room_with_members(&c.nodes[0], 1).await;
    let mut a = Tab::open(&c.nodes[0], &leader, room).await;
    let mut b = Tab::open(&c.nodes[1], &members[0], room).await;
    a.send("a1", Duration::from_secs(5)).await;
    // Pause the owner past its lease; node 1 takes the room over meanwhile.
    c.nodes[0].signal(libc::SIGSTOP);
    assert_eq!(b.send("b1", Duration::from_secs(15)).await, 2);
    c.nodes[0].signal(libc::SIGCONT);
    // The resumed node must not act as owner: a send from its socket lands in node 1's log
    // after b1 (seq 3), never as a second seq 2.
    assert_eq!(a.send("a2", Duration::from_secs(10)).await, 3);
    let mut fresh = Tab::open(&c.nodes[1], &members[0], room).await;
    fresh.rejoin_from_start().await;
    fresh.follow(3, Duration::from_secs(10)).await;
    assert_eq!(fresh.bodies(), ["a1", "b1", "a2"]);
    assert!(
        c.nodes[0].metric("studyon_cluster_leases_lost_total").await >= 1.0,
        "the paused node noticed it lost the lease"
    );
    c.db.drop_db().await;
}

#[actix_rt::test]
async fn redis_restart_keeps_owned_keys_and_recovers() {
    let mut c = Cluster::start(2).await;
    let (leader, members, study, room) = room_with_members(&c.nodes[0], 1).await;
    let (st, other, _) = post(
        &c.nodes[0],
        &format!("/api/studies/{study}/chat_rooms"),
        json!({ "name": "둘째", "category": "general" }),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 201, "{other}");
    let other = other["room"]["id"].as_i64().unwrap();
    let mut a = Tab::open(&c.nodes[0], &leader, room).await;
    let mut b = Tab::open(&c.nodes[1], &members[0], room).await;
    a.send("a1", Duration::from_secs(5)).await;
    c.redis.kill();
    // The owner keeps serving its room while its lease would still hold.
    send_text(&mut a.ws, send(room, "a2")).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut acked = false;
    while Instant::now() < deadline && !acked {
        if let Some(f) = frame_within(&mut a.ws, Duration::from_millis(200)).await {
            acked = f["type"] == "chat.ack" && f["client_id"] == "a2";
        }
    }
    assert!(acked, "an owned key works while Redis is down");
    // A key nobody owns yet cannot be claimed while Redis is down: `unavailable`.
    send_text(
        &mut b.ws,
        json!({ "type": "chat.join", "id": "j2", "room_id": other }).to_string(),
    )
    .await;
    let refused = loop {
        let f = frame_within(&mut b.ws, Duration::from_secs(5))
            .await
            .expect("an answer to the join");
        if f["id"] == "j2" {
            break f;
        }
    };
    assert_eq!(
        (refused["type"].as_str(), refused["error"].as_str()),
        (Some("error"), Some("unavailable")),
        "{refused}"
    );
    let (st, _) = get(&c.nodes[1], "/api/auth/me", Some(&members[0].cookie)).await;
    assert_eq!(st, 200, "plain requests do not need Redis");
    c.redis.spawn();
    // Both nodes reconnect and go on: a send from either lands in one gapless log.
    assert_eq!(b.send("b1", Duration::from_secs(15)).await, 3);
    assert_eq!(a.send("a3", Duration::from_secs(15)).await, 4);
    c.db.drop_db().await;
}

#[actix_rt::test]
async fn login_signup_and_write_limits_are_shared_by_the_nodes() {
    let c = Cluster::start_with(2, &["--signup-burst", "2", "--write-burst", "3"]).await;
    let [a, b] = [&c.nodes[0], &c.nodes[1]];
    // Sign-ups from one address: the burst of 2 is spent across both nodes, not per node.
    let user = signup(a).await;
    signup(b).await;
    let body = json!({ "login_id": "third_one", "display_name": "셋", "password": "correct horse battery" });
    for node in [a, b] {
        let (st, e, _) = post(node, "/api/auth/signup", body.clone(), None).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (429, Some("rate_limited")),
            "{e}"
        );
    }
    // Guesses at one account from an address it never logged in from: 5 tries in all
    // (PER_ACCOUNT), alternating nodes. (The user's own address is known to its account.)
    let wrong = json!({ "login_id": "nobody_here", "password": "wrong password here" });
    for i in 0..5 {
        let node = if i % 2 == 0 { a } else { b };
        let (st, e, _) = post(node, "/api/auth/login", wrong.clone(), None).await;
        assert_eq!(st, 401, "try {i}: {e}");
    }
    let (st, e, _) = post(b, "/api/auth/login", wrong.clone(), None).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (429, Some("rate_limited")),
        "{e}"
    );
    // Writes: a burst of 3 for the user across both nodes.
    let mut codes = Vec::new();
    for i in 0..4 {
        let node = if i % 2 == 0 { a } else { b };
        let (st, _, _) = post(
            node,
            "/api/studies",
            crate::studies::study_body(&format!("s{i}"), &[], 5, "2027-02-01"),
            Some(&user.cookie),
        )
        .await;
        codes.push(st);
    }
    assert_eq!(codes, [201, 201, 201, 429]);
    c.db.drop_db().await;
}

/// The node-to-node port takes nothing from a peer that cannot prove the cluster's secret.
#[actix_rt::test]
async fn a_stranger_on_the_cluster_port_is_cut_off() {
    use std::io::{Read, Write};
    use studyon::cluster::link::LinkMsg;
    let c = Cluster::start(1).await;
    // The node announces its link address in Redis.
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", &c.redis.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let key = cli(&["--scan", "--pattern", "studyon:node:*"]);
    let addr = cli(&["GET", &key]);
    let mut sock = std::net::TcpStream::connect(&addr).expect("cluster port");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).unwrap();
    let mut challenge = vec![0u8; u32::from_be_bytes(len) as usize];
    sock.read_exact(&mut challenge).unwrap();
    let nonce = match studyon::registry::wire::decode::<LinkMsg>(&challenge).unwrap() {
        LinkMsg::Challenge { nonce } => nonce,
        other => panic!("expected a challenge, got {other:?}"),
    };
    // A proof made with the wrong secret.
    let hello = LinkMsg::Hello {
        node: 42,
        proof: studyon::cluster::link::proof(Some(b"guessed"), &nonce, 42),
    };
    for m in [
        hello,
        LinkMsg::Frames {
            conns: vec![studyon::ids::ConnId { node: 1, seq: 1 }],
            frame: studyon::ws::frame::Frame::Text("{}".into()),
        },
    ] {
        let bytes = studyon::registry::wire::encode(&m).unwrap();
        let _ = sock.write_all(&(bytes.len() as u32).to_be_bytes());
        let _ = sock.write_all(&bytes);
    }
    let mut rest = Vec::new();
    let read = sock.read_to_end(&mut rest);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "the link is cut: {read:?} {rest:?}"
    );
    assert_eq!(
        c.nodes[0]
            .metric("studyon_cluster_dropped_total{reason=\"bad_link_proof\"}")
            .await,
        1.0
    );
    c.db.drop_db().await;
}

/// A video room lives on one node; a participant whose socket is on another node signals
/// through it and sends media straight to the room's node (its ICE candidate).
#[actix_rt::test]
async fn video_participants_on_two_nodes_see_each_other() {
    use crate::video::{Part, publish_burst, seqs, until_meshed};
    use studyon::live::video::sfu::route::Source;
    let c = Cluster::start(2).await;
    let [leader, ann] = signups(&c.nodes[0]).await;
    let study = crate::tasks::study_with_members(&c.nodes[0], &leader, &[&ann]).await;
    let both = [Source::Mic, Source::Camera];
    let mut parts = vec![
        // The room starts on node 0 (its first joiner's node).
        Part::join(&c.nodes[0], &leader, study, &both).await,
        Part::join(&c.nodes[1], &ann, study, &both).await,
    ];
    until_meshed(&mut parts, 2).await;
    publish_burst(&mut parts, &[0, 1], 0, 20).await;
    let users: Vec<i64> = parts.iter().map(|p| p.user).collect();
    for p in &parts {
        let other = *users.iter().find(|u| **u != p.user).unwrap();
        for source in ["mic", "camera"] {
            assert_eq!(
                seqs(&p.got(other, source)),
                (0..20).collect::<Vec<_>>(),
                "user {} ← {other} {source}",
                p.user
            );
        }
    }
    c.db.drop_db().await;
}
