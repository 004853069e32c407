//! What any signed-up user could do to exhaust the server, each shown not to work.

use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::chat::room_with_members;
use crate::common::*;
use crate::studies::create_study;

fn live(s: &studyon::server::RunningServer, kind: &str) -> usize {
    s.state.registry.kinds().live(kind)
}

/// `dm.*` naming a user who does not exist, or a stranger, starts no conversation actor;
/// `chat.join` to a room of someone else's study starts no room actor.
async fn messages_naming_others_are_checked_before_any_actor_starts(b: &Backend) {
    let s = start(b, &[]).await;
    let (_leader, m, _study, room) = room_with_members(&s, 1).await;
    let stranger = signup(&s).await;
    let mut ws = ws_connect(&s, &stranger.cookie).await;
    hello(&mut ws).await;
    let before = live(&s, "direct_chat");
    for (i, with) in [json!(987_654_321), m[0].user["id"].clone()]
        .iter()
        .enumerate()
    {
        for frame in [
            json!({ "type": "dm.sync", "id": i, "with": with, "last_seq": 0 }),
            json!({ "type": "dm.read", "id": i, "with": with, "seq": 1 }),
            json!({ "type": "dm.send", "id": i, "to": with, "client_id": "c", "body": "hi" }),
        ] {
            send_text(&mut ws, frame.to_string()).await;
            let e = next_json(&mut ws).await;
            assert_eq!(
                (e["type"].as_str(), e["error"].as_str()),
                (Some("error"), Some("not_found")),
                "{e}"
            );
        }
    }
    assert_eq!(
        live(&s, "direct_chat"),
        before,
        "no conversation actor started"
    );
    let rooms = live(&s, "chat_room");
    send_text(
        &mut ws,
        json!({ "type": "chat.join", "id": "j", "room_id": room, "last_seq": 0 }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["error"], "not_found");
    send_text(
        &mut ws,
        json!({ "type": "chat.join", "id": "j", "room_id": 55_555_555 }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["error"], "not_found");
    assert_eq!(live(&s, "chat_room"), rooms, "no room actor started");
    s.shutdown().await;
}
both_backends!(messages_naming_others_are_checked_before_any_actor_starts);

/// Past the configured number of live actors of a kind, a new start answers `busy`, and the
/// ones already running go on.
#[actix_rt::test]
async fn live_actors_per_kind_have_a_ceiling() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--actor-max-live", "2"]).await;
    let me = signup(&s).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            create_study(
                &s,
                &me.cookie,
                crate::studies::study_body("S", &[], 5, "2027-02-01"),
            )
            .await,
        );
    }
    let mut ws = ws_connect(&s, &me.cookie).await;
    hello(&mut ws).await;
    for (i, id) in ids.iter().enumerate() {
        send_text(
            &mut ws,
            json!({ "type": "study.watch", "id": i, "study_id": id }).to_string(),
        )
        .await;
        let r = next_json(&mut ws).await;
        if i < 2 {
            assert_eq!(r["type"], "ack", "{r}");
        } else {
            assert_eq!(r["error"], "busy", "{r}");
        }
    }
    assert_eq!(live(&s, "study"), 2);
    s.shutdown().await;
}

/// A user may open so many sockets; one more is closed with 4009, others are untouched,
/// and a closed one frees its place.
#[actix_rt::test]
async fn sockets_per_user_are_capped() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--ws-max-per-user", "2"]).await;
    let [me, other] = signups(&s).await;
    let mut a = ws_connect(&s, &me.cookie).await;
    hello(&mut a).await;
    let mut b2 = ws_connect(&s, &me.cookie).await;
    hello(&mut b2).await;
    let mut c = ws_connect(&s, &me.cookie).await;
    assert_eq!(wait_close(&mut c, Duration::from_secs(5)).await, Some(4009));
    let mut o = ws_connect(&s, &other.cookie).await;
    hello(&mut o).await;
    drop(a);
    let mut again = None;
    for _ in 0..50 {
        let mut d = ws_connect(&s, &me.cookie).await;
        match next_frame(&mut d).await {
            awc::ws::Frame::Text(t) => {
                let v: serde_json::Value = serde_json::from_slice(&t).unwrap();
                assert_eq!(v["type"], "hello");
                again = Some(d);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        again.is_some(),
        "a place freed by a closed socket can be taken"
    );
    send_text(&mut b2, r#"{"type":"ping","id":1}"#).await;
    assert_eq!(next_json(&mut b2).await["type"], "pong");
    s.shutdown().await;
}

/// The message rate is one budget per user, however many sockets they open: two sockets
/// sending 80 each exceed the burst of 100 that one socket alone would stay under.
#[actix_rt::test]
async fn socket_message_rates_are_per_user() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &[]).await;
    let me = signup(&s).await;
    let mut socks = Vec::new();
    for _ in 0..2 {
        let mut ws = ws_connect(&s, &me.cookie).await;
        hello(&mut ws).await;
        socks.push(ws);
    }
    let mut limited = 0;
    for ws in &mut socks {
        for i in 0..80 {
            send_text(ws, format!(r#"{{"type":"ping","id":{i}}}"#)).await;
        }
        for _ in 0..80 {
            let f = next_json(ws).await;
            if f["type"] == "error" {
                assert_eq!(f["error"], "rate_limited");
                limited += 1;
            }
        }
    }
    assert!(limited >= 40, "one shared budget: {limited} refused");
    s.shutdown().await;
}

/// Starts an upload by hand: the request head and the first bytes of a body that claims to
/// be much longer, then nothing more (a slowloris).
fn stalled_upload(
    s: &studyon::server::RunningServer,
    who: &Session,
    study: i64,
) -> std::net::TcpStream {
    use std::io::Write;
    let sock = std::net::TcpStream::connect(s.addr).unwrap();
    let head = format!(
        "POST /api/studies/{study}/attachments?name=slow.txt HTTP/1.1\r\nHost: {}\r\n\
         Origin: {}\r\nCookie: {}\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nx",
        s.addr,
        origin(s),
        who.cookie
    );
    (&sock).write_all(head.as_bytes()).unwrap();
    sock
}

/// The status line and body of the response on a hand-made connection.
fn response(sock: &std::net::TcpStream, within: Duration) -> String {
    use std::io::Read;
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = (&*sock).read(&mut buf).expect("a response in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A user holding stalled uploads gets `busy` for more than their share, others upload
/// meanwhile, and a body that trickles is dropped with 408 `upload_too_slow` once a window
/// of the minimum rate passes.
#[actix_rt::test]
async fn slow_uploads_are_dropped_and_one_user_cannot_take_every_slot() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(
        &b,
        &[
            "--uploads-per-user",
            "2",
            "--upload-min-rate",
            "1024",
            "--upload-rate-window-secs",
            "2",
        ],
    )
    .await;
    let [attacker, honest] = signups(&s).await;
    let body = || crate::studies::study_body("U", &[], 5, "2027-02-01");
    let a_study = create_study(&s, &attacker.cookie, body()).await;
    let h_study = create_study(&s, &honest.cookie, body()).await;
    let started = std::time::Instant::now();
    let stalled = [
        stalled_upload(&s, &attacker, a_study),
        stalled_upload(&s, &attacker, a_study),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = |id| format!("/api/studies/{id}/attachments?name=ok.txt");
    let (st, e) = post_bytes(
        &s,
        &path(a_study),
        b"hello".to_vec(),
        "text/plain",
        Some(&attacker.cookie),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (503, Some("busy")), "{e}");
    let (st, f) = post_bytes(
        &s,
        &path(h_study),
        b"hello".to_vec(),
        "text/plain",
        Some(&honest.cookie),
    )
    .await;
    assert_eq!(st, 201, "another user's upload goes through: {f}");
    for sock in &stalled {
        let r = response(sock, Duration::from_secs(10));
        assert!(r.starts_with("HTTP/1.1 408"), "{r}");
        assert!(r.contains("upload_too_slow"), "{r}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let (st, _) = post_bytes(
        &s,
        &path(a_study),
        b"hello".to_vec(),
        "text/plain",
        Some(&attacker.cookie),
    )
    .await;
    assert_eq!(st, 201, "the slots were freed");
    s.shutdown().await;
}

fn pref(i: usize, key: &str) -> String {
    json!({ "type": "prefs.set", "id": i, "key": key, "value": "v".repeat(100) }).to_string()
}

/// A user keeps at most 100 preferences; changing a kept one is fine.
#[actix_rt::test]
async fn preferences_are_capped() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--write-burst", "500"]).await;
    let me = signup(&s).await;
    let mut ws = ws_connect(&s, &me.cookie).await;
    hello(&mut ws).await;
    let mut acks = 0;
    // In rounds under the 64 writes a socket may have in flight, and paced under the
    // socket message rate (a burst of 100, 50 a second).
    for round in [0..50, 50..100, 100..101] {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let n = round.len();
        for i in round {
            send_text(&mut ws, pref(i, &format!("k{i}"))).await;
        }
        for _ in 0..n {
            let f = next_json(&mut ws).await;
            match f["type"].as_str() {
                Some("ack") => acks += 1,
                _ => assert_eq!(
                    (f["id"].as_u64(), f["error"].as_str()),
                    (Some(100), Some("pref_limit")),
                    "{f}"
                ),
            }
        }
    }
    assert_eq!(acks, 100);
    send_text(&mut ws, pref(200, "k0")).await;
    assert_eq!(
        next_json(&mut ws).await["type"],
        "ack",
        "a kept key may change"
    );
    let (_, prefs) = get(&s, "/api/me/prefs", Some(&me.cookie)).await;
    assert_eq!(prefs["prefs"].as_object().unwrap().len(), 100);
    s.shutdown().await;
}

/// Socket writes spend the same per-user budget as HTTP writes.
#[actix_rt::test]
async fn socket_writes_spend_the_http_write_budget() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--write-burst", "5"]).await;
    let me = signup(&s).await;
    let mut ws = ws_connect(&s, &me.cookie).await;
    hello(&mut ws).await;
    for i in 0..8 {
        send_text(&mut ws, pref(i, "k")).await;
    }
    let mut limited = 0;
    for _ in 0..8 {
        if next_json(&mut ws).await["error"] == "rate_limited" {
            limited += 1;
        }
    }
    assert!(
        limited >= 3,
        "only the burst of 5 went through: {limited} refused"
    );
    let body = crate::studies::study_body("x", &[], 5, "2027-02-01");
    let (st, _, _) = post(&s, "/api/studies", body, Some(&me.cookie)).await;
    assert_eq!(st, 429, "and HTTP writes see the budget spent");
    s.shutdown().await;
}

async fn inbox(
    s: &studyon::server::RunningServer,
    who: &Session,
    kind: &str,
) -> Vec<serde_json::Value> {
    let (st, list) = get(s, "/api/notifications", Some(&who.cookie)).await;
    assert_eq!(st, 200, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == kind)
        .cloned()
        .collect()
}

/// Applying and withdrawing over and over cannot flood the leader: applying again within
/// the cool-down is refused (429 with Retry-After), and a repeated mention from one member
/// collapses into the one unread notification until it is read.
async fn notification_floods_collapse(b: &Backend) {
    let s = start(b, &[]).await;
    let (leader, m, study, room) = room_with_members(&s, 1).await;
    let applicant = signup(&s).await;
    let app = crate::studies::apply(&s, study, &applicant).await;
    let withdraw = format!("/api/studies/{study}/applications/{app}/withdraw");
    let (st, _, _) = post(&s, &withdraw, json!({}), Some(&applicant.cookie)).await;
    assert_eq!(st, 200);
    let (st, e, headers) = post(
        &s,
        &format!("/api/studies/{study}/applications"),
        json!({ "message": "again" }),
        Some(&applicant.cookie),
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (429, Some("rate_limited")),
        "{e}"
    );
    let wait = retry_after(&headers);
    assert!((590..=600).contains(&wait), "{wait}");
    let from_applicant = inbox(&s, &leader, "application_received")
        .await
        .into_iter()
        .filter(|n| n["payload"]["applicant"]["id"] == applicant.user["id"])
        .count();
    assert_eq!(from_applicant, 1);

    let (mut ws, _) = crate::chat::join(&s, &m[0], room, None).await;
    let mention = |i: usize| {
        json!({ "type": "chat.send", "id": i, "room_id": room, "client_id": format!("m{i}"),
                "body": format!("@{} look {i}", leader.login_id) })
        .to_string()
    };
    for i in 0..3 {
        send_text(&mut ws, mention(i)).await;
        crate::chat::next_of(&mut ws, "chat.ack").await;
    }
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = inbox(&s, &leader, "chat_mention").await;
        if seen.len() == 1
            && seen[0]["payload"]["excerpt"]
                .as_str()
                .is_some_and(|e| e.ends_with('2'))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen.len(),
        1,
        "three mentions, one unread notification: {seen:?}"
    );
    assert!(
        seen[0]["payload"]["excerpt"]
            .as_str()
            .unwrap()
            .ends_with('2'),
        "it shows the latest"
    );
    // Once read, the next mention is a new notification.
    let id = seen[0]["id"].as_i64().unwrap();
    let (st, _, _) = post(
        &s,
        &format!("/api/notifications/{id}/read"),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert!(st == 200 || st == 204, "{st}");
    send_text(&mut ws, mention(3)).await;
    crate::chat::next_of(&mut ws, "chat.ack").await;
    for _ in 0..50 {
        if inbox(&s, &leader, "chat_mention").await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inbox(&s, &leader, "chat_mention").await.len(), 2);
    s.shutdown().await;
}
both_backends!(notification_floods_collapse);

/// The app's pages and API answers carry a strict CSP (no inline script, no other hosts,
/// no framing), a referrer policy and nosniff; a download keeps its own sandboxing CSP.
#[actix_rt::test]
async fn responses_carry_security_headers() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &[]).await;
    let me = signup(&s).await;
    for path in ["/", "/studies/1", "/api/auth/me", "/api/nope"] {
        let (st, h, _) = get_raw(&s, path, Some(&me.cookie), &[]).await;
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: {st} {h:?}"));
        for part in [
            "script-src 'self'",
            "frame-ancestors 'none'",
            "img-src 'self' data: blob:",
            "object-src 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(
            h.get("x-frame-options").map(String::as_str),
            Some("DENY"),
            "{path}"
        );
        assert_eq!(
            h.get("referrer-policy").map(String::as_str),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(
            h.get("x-content-type-options").map(String::as_str),
            Some("nosniff"),
            "{path}"
        );
    }
    // A refused write (no Origin) carries them too.
    let r = client()
        .post(format!("{}/api/studies", s.url()))
        .send_json(&json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().contains_key("content-security-policy"));
    // A file download keeps its sandbox.
    let study = create_study(
        &s,
        &me.cookie,
        crate::studies::study_body("H", &[], 5, "2027-02-01"),
    )
    .await;
    let (st, f) = post_bytes(
        &s,
        &format!("/api/studies/{study}/attachments?name=a.txt"),
        b"hello".to_vec(),
        "text/plain",
        Some(&me.cookie),
    )
    .await;
    assert_eq!(st, 201, "{f}");
    let (st, h, _) = get_raw(
        &s,
        &format!("/api/studies/{study}/files/{}", f["file"]["id"]),
        Some(&me.cookie),
        &[],
    )
    .await;
    assert_eq!(st, 200);
    assert!(h["content-security-policy"].contains("sandbox"), "{h:?}");
    s.shutdown().await;
}

/// A message sent in fragments that together pass 4× the message limit closes the socket
/// with 1009, as a single frame that large does (it was 1002).
#[actix_rt::test]
async fn an_oversized_fragmented_message_closes_with_1009() {
    use actix_http::ws::{Item, Message};
    use futures_util::SinkExt;
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--ws-max-message-bytes", "1024"]).await;
    let me = signup(&s).await;
    let mut ws = ws_connect(&s, &me.cookie).await;
    hello(&mut ws).await;
    let part = bytes::Bytes::from(vec![b'a'; 3000]);
    for item in [
        Item::FirstText(part.clone()),
        Item::Continue(part.clone()),
        Item::Last(part),
    ] {
        if ws.send(Message::Continuation(item)).await.is_err() {
            break;
        }
    }
    assert_eq!(
        wait_close(&mut ws, Duration::from_secs(10)).await,
        Some(1009)
    );
    s.shutdown().await;
}

/// An address spraying made-up session cookies gets a burst of `unauthenticated`, then
/// `rate_limited` without a database lookup; a session the node knows, and one opened from
/// the same address during the refusal, still pass.
#[actix_rt::test]
async fn made_up_session_cookies_are_refused_per_address() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &[]).await;
    let me = signup(&s).await;
    let burst = studyon::auth::throttle::BAD_TOKENS_PER_IP.burst as usize;
    let mut answers = Vec::new();
    for i in 0..burst + 4 {
        let (st, body) = get(
            &s,
            "/api/auth/me",
            Some(&format!("studyon_session=made-up-{i}")),
        )
        .await;
        answers.push((st, body["error"].as_str().unwrap_or_default().to_string()));
    }
    assert!(
        answers[..=burst]
            .iter()
            .all(|(st, e)| *st == 401 && e == "unauthenticated"),
        "{answers:?}"
    );
    assert!(
        answers[burst + 1..]
            .iter()
            .all(|(st, e)| *st == 429 && e == "rate_limited"),
        "{answers:?}"
    );
    assert_eq!(get(&s, "/api/auth/me", Some(&me.cookie)).await.0, 200);
    let (st, body, headers) = post(
        &s,
        "/api/auth/login",
        json!({ "login_id": me.login_id, "password": me.password }),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let fresh = session_cookie(&headers).expect("cookie");
    assert_eq!(get(&s, "/api/auth/me", Some(&fresh)).await.0, 200);
    s.shutdown().await;
}
