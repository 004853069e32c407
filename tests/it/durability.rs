//! The real binary: every acknowledged write survives `kill -9`; CLI subcommands; SIGTERM.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::both_backends;
use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_studyon");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns `studyon serve` on a free port and waits for /readyz.
async fn spawn_server(b: &Backend, port: u16) -> Child {
    spawn_server_with(b, port, &[]).await
}

/// As [`spawn_server`], with extra `serve` arguments.
pub async fn spawn_server_with(b: &Backend, port: u16, extra: &[&str]) -> Child {
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &b.database_url,
        ])
        .arg("--data-dir")
        .arg(b.dir.path())
        .args(["--log", "warn", "--metrics-listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn studyon");
    let url = format!("http://127.0.0.1:{port}/readyz");
    for _ in 0..200 {
        if let Ok(r) = client().get(&url).send().await
            && r.status() == 200
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become ready");
}

/// A stand-in for `RunningServer` so the HTTP helpers work against a child process.
struct Remote {
    url: String,
}

async fn remote_signup(r: &Remote) -> (String, i64) {
    let id = unique("dur");
    let mut resp = client()
        .post(format!("{}/api/auth/signup", r.url))
        .insert_header(("Origin", r.url.clone()))
        .send_json(&json!({ "login_id": id, "display_name": id, "password": "long enough pw" }))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cookie = session_cookie(resp.headers()).unwrap();
    let body: Value = resp.json().await.unwrap();
    (cookie, body["user"]["id"].as_i64().unwrap())
}

async fn acked_writes_survive_kill_9(db: Db) {
    let b = Backend::new(db).await;
    let port = free_port();
    let mut child = spawn_server(&b, port).await;
    let r = Remote {
        url: format!("http://127.0.0.1:{port}"),
    };
    let (cookie, user_id) = remote_signup(&r).await;

    // Four tabs fire writes without waiting; we record each ack as it arrives and kill the
    // server while many writes are still in flight.
    let mut tabs = Vec::new();
    for _ in 0..4 {
        let (_, mut c) = client()
            .ws(format!("{}/ws", r.url))
            .origin(r.url.clone())
            .set_header("Cookie", cookie.clone())
            .connect()
            .await
            .unwrap();
        hello(&mut c).await;
        tabs.push(c);
    }
    // Under the per-socket in-flight bound (64), the user's socket rate (a burst of 100),
    // write budget (120) and preference cap (100), so no write is refused.
    let per_tab = 24;
    for (t, c) in tabs.iter_mut().enumerate() {
        for i in 0..per_tab {
            send_text(c, json!({ "type": "prefs.set", "id": format!("{t}-{i}"), "key": format!("k{t}-{i}"), "value": format!("v{i}") }).to_string()).await;
        }
    }
    let mut acked: HashMap<String, String> = HashMap::new();
    let target = per_tab * 4 / 2;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    'outer: while std::time::Instant::now() < deadline {
        for c in tabs.iter_mut() {
            let next =
                tokio::time::timeout(Duration::from_millis(200), futures_util::StreamExt::next(c))
                    .await;
            if let Ok(Some(Ok(awc::ws::Frame::Text(t)))) = next {
                let f: Value = serde_json::from_slice(&t).unwrap();
                assert_ne!(f["type"], "error", "{f}");
                if f["type"] == "ack" {
                    let id = f["id"].as_str().unwrap().to_string();
                    let i = id.split('-').nth(1).unwrap().to_string();
                    acked.insert(format!("k{id}"), format!("v{i}"));
                }
                if acked.len() >= target {
                    break 'outer;
                }
            } else if let Ok(other) = next {
                panic!("socket ended early: {other:?}");
            }
        }
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert!(acked.len() >= target);

    // Read the store directly: every acknowledged write is there.
    let store = studyon::store::open(&b.settings(&[])).await.unwrap();
    let stored: HashMap<String, String> = store
        .user_prefs(studyon::ids::UserId(user_id))
        .await
        .unwrap()
        .into_iter()
        .collect();
    for (k, v) in &acked {
        assert_eq!(stored.get(k), Some(v), "acknowledged write {k} lost");
    }
    store.close().await;
    b.drop_db().await;
}

#[actix_rt::test]
async fn acked_writes_survive_kill_9_sqlite() {
    acked_writes_survive_kill_9(Db::Sqlite).await;
}

#[actix_rt::test]
async fn acked_writes_survive_kill_9_postgres() {
    acked_writes_survive_kill_9(Db::Postgres).await;
}

#[actix_rt::test]
async fn sigterm_closes_sockets_with_1001_and_exits_within_10s() {
    let b = Backend::new(Db::Sqlite).await;
    let port = free_port();
    let mut child = spawn_server(&b, port).await;
    let r = Remote {
        url: format!("http://127.0.0.1:{port}"),
    };
    let (cookie, _) = remote_signup(&r).await;
    let (_, mut c) = client()
        .ws(format!("{}/ws", r.url))
        .origin(r.url.clone())
        .set_header("Cookie", cookie)
        .connect()
        .await
        .unwrap();
    hello(&mut c).await;
    let started = std::time::Instant::now();
    let pid = child.id().unwrap() as i32;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(wait_close(&mut c, Duration::from_secs(5)).await, Some(1001));
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn cli_config_migrate_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "config",
            "--database-url",
            "postgres://app:s3cret@127.0.0.1/x",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("DATABASE_URL=postgres://app:***@127.0.0.1/x") && !text.contains("s3cret"),
        "{text}"
    );
    assert!(text.contains("STUDYON_LISTEN=127.0.0.1:8080"));

    let out = std::process::Command::new(BIN)
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path().join("studyon.db").exists(),
        "the SQLite file is created under the data dir"
    );

    let out = std::process::Command::new(BIN)
        .args(["serve", "--redis-url", "redis://127.0.0.1:6379"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_URL"), "{err}");
}

/// Chat: every acknowledged message survives `kill -9` mid-burst, and after a restart a
/// member resuming from seq 0 gets 1..=N with no gap and no duplicate, each acked client id
/// at the seq its ack named.
async fn chat_acks_survive_kill_9_and_resume_without_gaps(b: &Backend) {
    let port = free_port();
    let mut child = spawn_server(b, port).await;
    let r = Remote {
        url: format!("http://127.0.0.1:{port}"),
    };
    let remote = |path: &str| format!("{}{path}", r.url);
    let c = client();
    let call = |path: String, body: Value, cookie: String| {
        let c = c.clone();
        let origin = r.url.clone();
        async move {
            let mut resp = c
                .post(path)
                .insert_header(("Origin", origin))
                .insert_header(("Cookie", cookie))
                .send_json(&body)
                .await
                .unwrap();
            resp.json::<Value>().await.unwrap_or(Value::Null)
        }
    };
    let (leader, _) = remote_signup(&r).await;
    let (member, _) = remote_signup(&r).await;
    let body = crate::studies::study_body("Durable chat", &[], 10, "2027-02-01");
    let study = call(remote("/api/studies"), body, leader.clone()).await["study"]["id"]
        .as_i64()
        .unwrap();
    let app = call(
        remote(&format!("/api/studies/{study}/applications")),
        json!({}),
        member.clone(),
    )
    .await;
    let aid = app["application"]["id"].as_i64().unwrap();
    call(
        remote(&format!("/api/studies/{study}/applications/{aid}/decision")),
        json!({ "accept": true }),
        leader.clone(),
    )
    .await;
    let room = call(
        remote(&format!("/api/studies/{study}/chat_rooms")),
        json!({ "name": "r", "category": "general" }),
        leader.clone(),
    )
    .await["room"]["id"]
        .as_i64()
        .unwrap();

    let (_, mut ws) = c
        .ws(remote("/ws"))
        .origin(r.url.clone())
        .set_header("Cookie", leader.clone())
        .connect()
        .await
        .unwrap();
    hello(&mut ws).await;
    send_text(
        &mut ws,
        json!({ "type": "chat.join", "room_id": room }).to_string(),
    )
    .await;
    // Ten at once is the per-user burst.
    for i in 0..10 {
        send_text(&mut ws, json!({ "type": "chat.send", "room_id": room, "client_id": format!("d{i}"), "body": format!("b{i}") }).to_string()).await;
    }
    let mut acked: Vec<(String, i64)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while acked.len() < 5 && std::time::Instant::now() < deadline {
        let f = next_json(&mut ws).await;
        if f["type"] == "chat.ack" {
            acked.push((
                f["client_id"].as_str().unwrap().to_string(),
                f["seq"].as_i64().unwrap(),
            ));
        }
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert!(acked.len() >= 5);

    let _child = spawn_server(b, port).await;
    let (_, mut ws) = c
        .ws(remote("/ws"))
        .origin(r.url.clone())
        .set_header("Cookie", member.clone())
        .connect()
        .await
        .unwrap();
    hello(&mut ws).await;
    send_text(
        &mut ws,
        json!({ "type": "chat.join", "room_id": room, "last_seq": 0 }).to_string(),
    )
    .await;
    let joined = loop {
        let f = next_json(&mut ws).await;
        if f["type"] == "chat.joined" {
            break f;
        }
    };
    let last = joined["last_seq"].as_i64().unwrap();
    assert!(
        last >= acked.len() as i64,
        "every acked message is stored ({last} < {})",
        acked.len()
    );
    let mut got = Vec::new();
    while got.len() < last as usize {
        let f = next_json(&mut ws).await;
        if f["type"] == "chat.message" {
            got.push((
                f["message"]["client_id"].as_str().unwrap().to_string(),
                f["message"]["seq"].as_i64().unwrap(),
            ));
        }
    }
    let seqs: Vec<i64> = got.iter().map(|g| g.1).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "no gap, no duplicate");
    for a in &acked {
        assert!(
            got.contains(a),
            "acked {a:?} is at its acked seq after the crash"
        );
    }
}
both_backends!(chat_acks_survive_kill_9_and_resume_without_gaps);

async fn remote_post(r: &Remote, path: &str, body: Value, cookie: &str) -> Value {
    let mut resp = client()
        .post(format!("{}{}", r.url, path))
        .insert_header(("Origin", r.url.clone()))
        .insert_header(("Cookie", cookie.to_string()))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

/// Every document update another editor saw survives `kill -9`: updates are stored before
/// they are relayed.
async fn relayed_document_updates_survive_kill_9(db: Db) {
    use crate::docs::{Peer, connect_plain};
    use studyon::live::doc::proto::Framing;

    let b = Backend::new(db).await;
    let port = free_port();
    // A fast writer: the socket rate must not be what stops it.
    let args = ["--ws-rate", "100000"];
    let mut child = spawn_server_with(&b, port, &args).await;
    let r = Remote {
        url: format!("http://127.0.0.1:{port}"),
    };
    let (cookie, _) = remote_signup(&r).await;
    let study = remote_post(
        &r,
        "/api/studies",
        crate::studies::study_body("Docs", &[], 5, "2027-02-01"),
        &cookie,
    )
    .await["study"]["id"]
        .as_i64()
        .unwrap();
    let task = remote_post(
        &r,
        &format!("/api/studies/{study}/tasks"),
        json!({ "title": "t" }),
        &cookie,
    )
    .await["task"]["id"]
        .as_i64()
        .unwrap();
    let pid = remote_post(
        &r,
        &format!("/api/studies/{study}/tasks/{task}/posts"),
        json!({ "title": "p", "body": "" }),
        &cookie,
    )
    .await["post"]["id"]
        .as_i64()
        .unwrap();

    let mut writer = Peer::new(
        connect_plain(&r.url, &r.url, &cookie, pid).await,
        Framing::Plain,
    );
    let mut reader = Peer::new(
        connect_plain(&r.url, &r.url, &cookie, pid).await,
        Framing::Plain,
    );
    writer.sync().await;
    reader.sync().await;
    reader.drain(Duration::from_millis(200)).await;
    // The writer types without waiting; the server is killed while many updates are in
    // flight, once the reader has seen a good part of them.
    for i in 0..400 {
        writer.append(&format!("{i};")).await;
    }
    let seen_enough = |p: &Peer| p.text().matches(';').count() >= 100;
    reader.until("a hundred relayed updates", seen_enough).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    reader.drain(Duration::from_millis(100)).await;
    let seen = reader.text();
    assert!(seen.matches(';').count() >= 100);

    let _child = spawn_server_with(&b, port, &args).await;
    let mut after = Peer::plain_at(&r.url, &cookie, pid).await;
    after
        .until("the reloaded document", |p| p.text().len() >= seen.len())
        .await;
    assert!(
        after.text().starts_with(&seen),
        "relayed text lost: saw {seen:?}, reloaded {:?}",
        after.text()
    );
    b.drop_db().await;
}

#[actix_rt::test]
async fn relayed_document_updates_survive_kill_9_sqlite() {
    relayed_document_updates_survive_kill_9(Db::Sqlite).await;
}

#[actix_rt::test]
async fn relayed_document_updates_survive_kill_9_postgres() {
    relayed_document_updates_survive_kill_9(Db::Postgres).await;
}
