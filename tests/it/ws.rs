//! The live connection: protocol, error frames, fan-out, logout, heartbeat, slow consumers,
//! graceful shutdown.

use std::time::Duration;

use serde_json::json;
use studyon::ids::{NotificationId, UserId};
use studyon::live::user::{UserSession, UserSessionMsg, UserSessionReply};
use studyon::server::RunningServer;
use studyon::studies::Notification;

use crate::both_backends;
use crate::common::*;

fn uid(s: &Session) -> UserId {
    UserId(s.user["id"].as_i64().unwrap())
}

/// A notification as the store would hand it to the live push.
fn note(to: &Session, payload: serde_json::Value) -> Notification {
    Notification {
        id: NotificationId(1),
        kind: "test".into(),
        payload,
        created_at: 0,
        read: false,
        user_id: uid(to),
    }
}

async fn protocol_basics_and_error_frames(b: &Backend) {
    let s = start(b, &["--ws-max-message-bytes", "2048"]).await;
    let me = signup(&s).await;
    let mut ws = ws_connect(&s, &me.cookie).await;
    let h = hello(&mut ws).await;
    assert_eq!(h["v"], 1);
    assert_eq!(h["user"], me.user);

    send_text(&mut ws, r#"{"type":"ping","id":"p1"}"#).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({ "type": "pong", "id": "p1" })
    );

    let bad = [
        ("not json at all", "malformed_json", None),
        (r#"{"type":"warp","id":"u1"}"#, "unknown_type", Some("u1")),
        (
            r#"{"type":"prefs.set","id":"b1","key":3,"value":"x"}"#,
            "bad_request",
            Some("b1"),
        ),
        (
            r#"{"type":"prefs.set","id":"b2","key":"Bad Key","value":"x"}"#,
            "validation_failed",
            Some("b2"),
        ),
        (r#"{"id":"n1"}"#, "bad_request", Some("n1")),
    ];
    for (text, code, id) in bad {
        send_text(&mut ws, text).await;
        let e = next_json(&mut ws).await;
        assert_eq!(e["type"], "error", "{text}");
        assert_eq!(e["error"], code, "{text}: {e}");
        assert_eq!(e["id"].as_str(), id, "{text}");
    }
    // Over the message limit: an error frame, and the socket keeps working.
    send_text(
        &mut ws,
        format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(3000)),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["error"], "message_too_large");
    ws.send(awc::ws::Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["error"], "unsupported_binary");
    send_text(&mut ws, r#"{"type":"ping","id":"p2"}"#).await;
    assert_eq!(next_json(&mut ws).await["id"], "p2");

    // A durable write is acknowledged and then readable.
    send_text(
        &mut ws,
        r#"{"type":"prefs.set","id":"s1","key":"ui.lang","value":"ko"}"#,
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({ "type": "ack", "id": "s1" })
    );
    let (st, body) = get(&s, "/api/me/prefs", Some(&me.cookie)).await;
    assert_eq!((st, &body["prefs"]["ui.lang"]), (200, &json!("ko")));

    // A frame far above the limit is a protocol violation: closed with 1009.
    send_text(&mut ws, "y".repeat(20_000)).await;
    assert_eq!(
        wait_close(&mut ws, Duration::from_secs(5)).await,
        Some(1009)
    );
    s.shutdown().await;
}
both_backends!(protocol_basics_and_error_frames);

use futures_util::SinkExt;

async fn notifications_reach_every_tab_and_logout_closes_its_sockets(b: &Backend) {
    let s = start(b, &[]).await;
    let me = signup(&s).await;
    // A second login session for the same user (another browser).
    let (_, _, headers) = post(
        &s,
        "/api/auth/login",
        json!({ "login_id": me.login_id, "password": me.password }),
        None,
    )
    .await;
    let other_cookie = session_cookie(&headers).unwrap();

    let mut tab1 = ws_connect(&s, &me.cookie).await;
    let mut tab2 = ws_connect(&s, &me.cookie).await;
    let mut other = ws_connect(&s, &other_cookie).await;
    for c in [&mut tab1, &mut tab2, &mut other] {
        hello(c).await;
    }
    let reg = &s.state.registry;
    // Attachment happens right after hello; wait until the actor knows all three tabs.
    let mut tabs = 0;
    for _ in 0..100 {
        if let UserSessionReply::Connections(c) = reg
            .ask::<UserSession>(uid(&me), UserSessionMsg::Connections)
            .await
            .unwrap()
        {
            tabs = c.len();
            if tabs == 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(tabs, 3);
    let reply = reg
        .ask::<UserSession>(
            uid(&me),
            UserSessionMsg::Notify {
                notification: note(&me, json!({ "n": 1 })),
            },
        )
        .await
        .unwrap();
    assert_eq!(reply, UserSessionReply::Reached(3));
    for c in [&mut tab1, &mut tab2, &mut other] {
        let n = next_json(c).await;
        assert_eq!(n["type"], "notification", "{n}");
        assert_eq!(n["notification"]["kind"], "test");
        assert_eq!(n["notification"]["payload"], json!({ "n": 1 }));
    }

    // Logging out the first session closes its two tabs with 4001, not the other browser.
    let (st, _, _) = post(&s, "/api/auth/logout", json!({}), Some(&me.cookie)).await;
    assert_eq!(st, 204);
    assert_eq!(
        wait_close(&mut tab1, Duration::from_secs(5)).await,
        Some(4001)
    );
    assert_eq!(
        wait_close(&mut tab2, Duration::from_secs(5)).await,
        Some(4001)
    );
    send_text(&mut other, r#"{"type":"ping","id":"still"}"#).await;
    assert_eq!(next_json(&mut other).await["id"], "still");
    s.shutdown().await;
}
both_backends!(notifications_reach_every_tab_and_logout_closes_its_sockets);

#[actix_rt::test]
async fn silent_clients_are_closed_after_two_heartbeats() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--ws-heartbeat-secs", "1"]).await;
    let me = signup(&s).await;
    let mut ws = ws_connect(&s, &me.cookie).await;
    hello(&mut ws).await;
    // awc does not answer pings by itself and we send nothing: the server hangs up.
    let started = std::time::Instant::now();
    assert_eq!(
        wait_close(&mut ws, Duration::from_secs(8)).await,
        Some(4002)
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    s.shutdown().await;
}

/// Pushes 64 KiB notifications to `me` until the server stops queueing for them; returns
/// how many it took.
async fn flood_until_refused(s: &RunningServer, me: &Session) -> usize {
    let big = "z".repeat(64 * 1024);
    for n in 0..1000 {
        let r = s
            .state
            .registry
            .ask::<UserSession>(
                uid(me),
                UserSessionMsg::Notify {
                    notification: note(me, json!(big)),
                },
            )
            .await
            .unwrap();
        if r == UserSessionReply::Reached(0) {
            return n;
        }
    }
    panic!("the server must stop queueing for a client that does not read");
}

async fn hub_empties(s: &RunningServer) {
    for _ in 0..100 {
        if s.state.hub.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the slow connection is still in the hub");
}

#[actix_rt::test]
async fn a_client_that_does_not_read_is_dropped_as_a_slow_consumer() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--ws-outbound-queue", "8"]).await;
    let me = signup(&s).await;
    let mut ws = ws_connect(&s, &me.cookie).await;
    hello(&mut ws).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // We do not read while the server pushes: kernel buffers fill, then the queue.
    flood_until_refused(&s, &me).await;
    // Reading now: whatever was already on its way, then the close with 4008.
    assert_eq!(
        wait_close(&mut ws, Duration::from_secs(20)).await,
        Some(4008),
        "a reader that catches up gets the slow-consumer close code"
    );
    hub_empties(&s).await;
    s.shutdown().await;
}

#[actix_rt::test]
async fn a_client_that_never_reads_again_is_cut_off() {
    const ESTABLISHED: u8 = 1;
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--ws-outbound-queue", "8"]).await;
    let me = signup(&s).await;
    let sock = raw_ws_connect(&s, &me.cookie);
    tokio::time::sleep(Duration::from_millis(300)).await;
    flood_until_refused(&s, &me).await;
    hub_empties(&s).await;
    // The close frame cannot get past what the client never reads: the server waits a
    // bounded time (2 s to queue it, 5 s for the peer to drain), then resets the connection.
    let started = std::time::Instant::now();
    while tcp_state(&sock) == ESTABLISHED {
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "the connection is still established {:?} after the overflow",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.shutdown().await;
}

#[actix_rt::test]
async fn floods_get_rate_limited_without_a_disconnect() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &[]).await;
    let me = signup(&s).await;
    let mut ws = ws_connect(&s, &me.cookie).await;
    hello(&mut ws).await;
    for i in 0..300 {
        send_text(&mut ws, format!(r#"{{"type":"ping","id":{i}}}"#)).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..300 {
        let f = next_json(&mut ws).await;
        match f["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => {
                assert_eq!(f["error"], "rate_limited");
                assert!(f["retry_after_ms"].as_u64().unwrap() >= 1000);
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        pongs >= 100 && limited > 0,
        "pongs {pongs}, limited {limited}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send_text(&mut ws, r#"{"type":"ping","id":"after"}"#).await;
    assert_eq!(next_json(&mut ws).await["id"], "after");
    s.shutdown().await;
}

#[actix_rt::test]
async fn graceful_shutdown_closes_sockets_with_going_away() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &[]).await;
    let me = signup(&s).await;
    let mut ws = ws_connect(&s, &me.cookie).await;
    hello(&mut ws).await;
    let started = std::time::Instant::now();
    let shutdown = actix_rt::spawn(s.shutdown());
    assert_eq!(
        wait_close(&mut ws, Duration::from_secs(5)).await,
        Some(1001)
    );
    shutdown.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The outbound queue is bounded in bytes as well as frames: a few large answers the client
/// does not read close it as a slow consumer long before 512 frames.
#[actix_rt::test]
async fn a_queue_past_its_bytes_closes_as_a_slow_consumer() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--ws-outbound-bytes", "1048576"]).await;
    let me = signup(&s).await;
    let mut ws = ws_connect(&s, &me.cookie).await;
    hello(&mut ws).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Kernel buffers take some megabytes; then 1 MiB of queue (16 frames), not 512 frames.
    let taken = flood_until_refused(&s, &me).await;
    assert!(taken < 400, "{taken} frames of 64 KiB were queued");
    assert_eq!(
        wait_close(&mut ws, Duration::from_secs(20)).await,
        Some(4008)
    );
    hub_empties(&s).await;
    s.shutdown().await;
}
