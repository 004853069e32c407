//! Shared helpers: backends (SQLite in a temp dir, a fresh Postgres database per test),
//! an in-process server, and small HTTP/WebSocket clients.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use awc::Client;
use awc::ws::{Codec, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use studyon::config::{Cli, Settings};
use studyon::server::RunningServer;

pub type WsConn = actix_codec::Framed<awc::BoxedSocket, Codec>;

/// Where the admin connection for creating throwaway Postgres databases points.
pub fn pg_admin_url() -> String {
    std::env::var("STUDYON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database for one test: a temp dir (SQLite) or a fresh Postgres database.
pub struct Backend {
    pub db: Db,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pg_name: Option<String>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Backend {
    pub async fn new(db: Db) -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        match db {
            Db::Sqlite => {
                let database_url = format!("sqlite://{}", dir.path().join("studyon.db").display());
                Backend {
                    db,
                    dir,
                    database_url,
                    pg_name: None,
                }
            }
            Db::Postgres => {
                let name = format!(
                    "studyon_it_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    chrono::Utc::now().timestamp_micros() % 1_000_000
                );
                admin_exec(&format!("CREATE DATABASE {name}")).await;
                let admin = url::Url::parse(&pg_admin_url()).unwrap();
                let mut u = admin.clone();
                u.set_path(&format!("/{name}"));
                Backend {
                    db,
                    dir,
                    database_url: u.to_string(),
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Settings for a server on this backend: random port, this database, temp data dir.
    pub fn settings(&self, extra: &[&str]) -> Settings {
        let dir = self.dir.path().display().to_string();
        let mut args = vec![
            "studyon",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir,
            "--database-url",
            &self.database_url,
            "--workers",
            "2",
            "--log",
            "warn",
            // Many servers run at once: each gets its own metrics port.
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        // Tests use fixed calendar dates (2027), so once those pass, the date jobs (every
        // 10 minutes by default) could move a test's study mid-test. They are off unless a
        // test names its own schedule for them.
        for off in ["--job-recruitment-close=", "--job-study-reminders="] {
            let flag = off.trim_end_matches('=');
            if !extra.iter().any(|a| a.starts_with(flag)) {
                args.push(off);
            }
        }
        args.extend_from_slice(extra);
        use clap::Parser;
        Cli::try_parse_from(args).expect("test settings").settings
    }

    pub async fn drop_db(&self) {
        if let Some(name) = &self.pg_name {
            admin_exec(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }
}

async fn admin_exec(sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("Postgres admin connection (is Postgres running?)");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await
        .expect(sql);
}

/// Runs a test body on SQLite and on Postgres.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[actix_rt::test]
            async fn sqlite() {
                let b = $crate::common::Backend::new($crate::common::Db::Sqlite).await;
                super::$name(&b).await;
            }
            #[actix_rt::test]
            async fn postgres() {
                let b = $crate::common::Backend::new($crate::common::Db::Postgres).await;
                super::$name(&b).await;
                b.drop_db().await;
            }
        }
    };
}

pub async fn start(b: &Backend, extra: &[&str]) -> RunningServer {
    studyon::server::start(b.settings(extra))
        .await
        .expect("server starts")
}

/// Anything that serves StudyOn at a base URL: an in-process server or a server process.
pub trait Target {
    fn url(&self) -> String;
}

impl Target for RunningServer {
    fn url(&self) -> String {
        RunningServer::url(self)
    }
}

pub fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).finish()
}

pub fn origin(s: &impl Target) -> String {
    s.url()
}

/// A logged-in API user: their session cookie and user JSON.
pub struct Session {
    pub cookie: String,
    pub user: Value,
    pub login_id: String,
    pub password: String,
}

static USERS: AtomicU64 = AtomicU64::new(0);

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}_{}",
        std::process::id() % 10000,
        USERS.fetch_add(1, Ordering::Relaxed)
    )
}

/// The whole seconds a 429 asks to wait (its `Retry-After`).
pub fn retry_after(headers: &awc::http::header::HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("whole seconds")
}

pub async fn post(
    s: &impl Target,
    path: &str,
    body: Value,
    cookie: Option<&str>,
) -> (u16, Value, awc::http::header::HeaderMap) {
    let mut req = client()
        .post(format!("{}{}", s.url(), path))
        .insert_header(("Origin", origin(s)));
    if let Some(c) = cookie {
        req = req.insert_header(("Cookie", c.to_string()));
    }
    let mut resp = req.send_json(&body).await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.body().limit(1 << 20).await.expect("body");
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    (status, json, headers)
}

pub async fn get(s: &impl Target, path: &str, cookie: Option<&str>) -> (u16, Value) {
    let mut req = client().get(format!("{}{}", s.url(), path));
    if let Some(c) = cookie {
        req = req.insert_header(("Cookie", c.to_string()));
    }
    let mut resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(1 << 20).await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The `name=value` part of the session cookie set by a response.
pub fn session_cookie(headers: &awc::http::header::HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("studyon_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

pub async fn signup(s: &impl Target) -> Session {
    let login_id = unique("user");
    let password = "correct horse battery".to_string();
    let (status, body, headers) = post(
        s,
        "/api/auth/signup",
        json!({ "login_id": login_id, "display_name": format!("name {login_id}"), "password": password }),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    Session {
        cookie: session_cookie(&headers).expect("cookie"),
        user: body["user"].clone(),
        login_id,
        password,
    }
}

/// `N` fresh signed-in users: `let [leader, member] = signups(&s).await;`.
pub async fn signups<const N: usize>(s: &impl Target) -> [Session; N] {
    let mut all = Vec::with_capacity(N);
    for _ in 0..N {
        all.push(signup(s).await);
    }
    all.try_into()
        .unwrap_or_else(|_| unreachable!("N sign-ups"))
}

pub async fn ws_connect(s: &impl Target, cookie: &str) -> WsConn {
    let (_resp, conn) = client()
        .ws(format!("{}/ws", s.url()))
        .origin(origin(s))
        .set_header("Cookie", cookie.to_string())
        .max_frame_size(4 << 20)
        .connect()
        .await
        .expect("ws connect");
    conn
}

/// Next JSON text frame, skipping pings; panics on timeout or close.
pub async fn next_json(c: &mut WsConn) -> Value {
    loop {
        match next_frame(c).await {
            Frame::Text(t) => return serde_json::from_slice(&t).expect("json frame"),
            Frame::Ping(_) | Frame::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

pub async fn next_frame(c: &mut WsConn) -> Frame {
    tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("frame within 10 s")
        .expect("stream open")
        .expect("frame decodes")
}

/// Reads until a close frame; returns its code (None if the stream just ended).
pub async fn wait_close(c: &mut WsConn, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, c.next()).await {
            Err(_) => panic!("no close within {within:?}"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Frame::Close(r)))) => return r.map(|r| u16::from(r.code)),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

pub async fn send_text(c: &mut WsConn, text: impl Into<String>) {
    c.send(Message::Text(text.into().into()))
        .await
        .expect("send");
}

pub async fn hello(c: &mut WsConn) -> Value {
    let h = next_json(c).await;
    assert_eq!(h["type"], "hello", "{h}");
    h
}

/// Sends a raw body (an upload) with the given content type.
pub async fn post_bytes(
    s: &impl Target,
    path: &str,
    bytes: Vec<u8>,
    content_type: &str,
    cookie: Option<&str>,
) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}{}", s.url(), path))
        .insert_header(("Origin", origin(s)))
        .insert_header(("Content-Type", content_type.to_string()));
    if let Some(c) = cookie {
        req = req.insert_header(("Cookie", c.to_string()));
    }
    let mut resp = req.send_body(bytes).await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.body().limit(1 << 20).await.unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub async fn delete(s: &impl Target, path: &str, cookie: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .delete(format!("{}{}", s.url(), path))
        .insert_header(("Origin", origin(s)));
    if let Some(c) = cookie {
        req = req.insert_header(("Cookie", c.to_string()));
    }
    let mut resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.body().limit(1 << 20).await.unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A GET with extra headers, returning the raw bytes (downloads).
pub async fn get_raw(
    s: &impl Target,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, std::collections::HashMap<String, String>, Vec<u8>) {
    let mut req = client().get(format!("{}{}", s.url(), path));
    if let Some(c) = cookie {
        req = req.insert_header(("Cookie", c.to_string()));
    }
    for (k, v) in headers {
        req = req.insert_header((k.to_string(), v.to_string()));
    }
    let mut resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let h = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body().limit(256 << 20).await.expect("body");
    (status, h, body.to_vec())
}

/// The S3-compatible test server (`ops/test.sh` starts one on loopback and sets this).
pub fn s3_endpoint() -> String {
    std::env::var("STUDYON_TEST_S3_ENDPOINT").expect(
        "STUDYON_TEST_S3_ENDPOINT is not set: run the suite through ops/test.sh, which starts \
         the S3-compatible test server (moto) on loopback",
    )
}

/// Server flags for S3 storage in a fresh bucket of the test server.
pub fn s3_args() -> Vec<String> {
    assert!(
        std::env::var("AWS_ACCESS_KEY_ID").is_ok(),
        "AWS_ACCESS_KEY_ID must be set for the S3 tests (ops/test.sh sets test credentials)"
    );
    vec![
        "--s3-bucket".into(),
        format!("studyon-it-{}", unique("b").replace('_', "-")),
        "--s3-endpoint".into(),
        s3_endpoint(),
        "--s3-path-style".into(),
    ]
}

/// A WebSocket opened by hand on a plain socket with a small receive buffer, so a test can
/// stop reading and look at the TCP state underneath. Returns the socket after the 101.
pub fn raw_ws_connect(s: &RunningServer, cookie: &str) -> std::net::TcpStream {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let sock = std::net::TcpStream::connect(s.addr).expect("connect");
    let small: libc::c_int = 16 * 1024;
    // SAFETY: setting a socket option on a socket we own.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: {}\r\nCookie: {cookie}\r\n\r\n",
        s.addr,
        origin(s)
    );
    (&sock).write_all(req.as_bytes()).expect("handshake");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        (&sock).read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    sock
}

/// The kernel's TCP state of a socket (1 established, 7 closed; see `tcp_states.h`).
pub fn tcp_state(sock: &std::net::TcpStream) -> u8 {
    use std::os::fd::AsRawFd;
    // SAFETY: `tcp_info` is plain data; getsockopt fills at most `len` bytes of it.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        assert_eq!(r, 0, "TCP_INFO");
        info.tcpi_state
    }
}

/// The Prometheus text a server's metrics listener serves.
pub async fn metrics_text(s: &RunningServer) -> String {
    let at = s.metrics_addr.expect("metrics enabled");
    let mut r = client()
        .get(format!("http://{at}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    String::from_utf8(r.body().limit(8 << 20).await.unwrap().to_vec()).unwrap()
}
