//! Chat rooms end to end: ordering, acks after commit, dedupe, resume, limits, moderation.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use studyon::ids::RoomId;
use studyon::live::chat::ChatRoom;
use studyon::registry::KeyedActor;
use studyon::server::RunningServer;

use crate::both_backends;
use crate::common::*;

/// A study with a leader and `n` accepted members, and one open room.
pub async fn room_with_members(s: &impl Target, n: usize) -> (Session, Vec<Session>, i64, i64) {
    let leader = signup(s).await;
    let mut members = Vec::new();
    for _ in 0..n {
        members.push(signup(s).await);
    }
    let study =
        crate::tasks::study_with_members(s, &leader, &members.iter().collect::<Vec<_>>()).await;
    let (st, r, _) = post(
        s,
        &format!("/api/studies/{study}/chat_rooms"),
        json!({ "name": "일반", "category": "general" }),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    (leader, members, study, r["room"]["id"].as_i64().unwrap())
}

pub async fn join(
    s: &impl Target,
    who: &Session,
    room: i64,
    last_seq: Option<i64>,
) -> (WsConn, Value) {
    let mut ws = ws_connect(s, &who.cookie).await;
    hello(&mut ws).await;
    let mut msg = json!({ "type": "chat.join", "id": "j", "room_id": room });
    if let Some(l) = last_seq {
        msg["last_seq"] = json!(l);
    }
    send_text(&mut ws, msg.to_string()).await;
    let joined = next_of(&mut ws, "chat.joined").await;
    (ws, joined)
}

/// Next frame of this type, skipping room traffic (messages, updates, presence, typing,
/// notifications) that may arrive in between; any other frame fails the test.
pub async fn next_of(ws: &mut WsConn, ty: &str) -> Value {
    loop {
        let f = next_json(ws).await;
        if f["type"] == ty {
            return f;
        }
        assert!(
            matches!(
                f["type"].as_str(),
                Some(
                    "study.event"
                        | "chat.presence"
                        | "chat.typing"
                        | "notification"
                        | "chat.message"
                        | "chat.updated"
                        | "dm.message"
                        | "dm.read"
                )
            ),
            "expected {ty}, got {f}"
        );
    }
}

fn send(room: i64, client_id: &str, body: &str) -> String {
    json!({ "type": "chat.send", "id": client_id, "room_id": room, "client_id": client_id, "body": body }).to_string()
}

async fn ordered_delivery_acks_and_dedupe(b: &Backend) {
    let s = start(b, &[]).await;
    let (_leader, m, _study, room) = room_with_members(&s, 2).await;
    let (mut a, ja) = join(&s, &m[0], room, None).await;
    assert_eq!(
        (ja["last_seq"].as_i64(), ja["closed"].as_bool()),
        (Some(0), Some(false))
    );
    let (mut bws, _) = join(&s, &m[1], room, None).await;
    for i in 1..=8 {
        send_text(&mut a, send(room, &format!("c{i}"), &format!("메시지 {i}"))).await;
    }
    // The sender sees each message and its ack; seqs are 1..=8 in order.
    let mut acks = Vec::new();
    let mut seen_a = Vec::new();
    while acks.len() < 8 || seen_a.len() < 8 {
        let f = next_json(&mut a).await;
        match f["type"].as_str().unwrap() {
            "chat.ack" => acks.push(f["seq"].as_i64().unwrap()),
            "chat.message" => seen_a.push(f["message"]["seq"].as_i64().unwrap()),
            "chat.presence" => {}
            other => panic!("unexpected {other}: {f}"),
        }
    }
    assert_eq!(acks, (1..=8).collect::<Vec<_>>());
    assert_eq!(seen_a, (1..=8).collect::<Vec<_>>());
    let mut seen_b = Vec::new();
    while seen_b.len() < 8 {
        let f = next_of(&mut bws, "chat.message").await;
        assert_eq!(f["message"]["author"]["id"], m[0].user["id"]);
        seen_b.push(f["message"]["seq"].as_i64().unwrap());
    }
    assert_eq!(seen_b, (1..=8).collect::<Vec<_>>());
    // A resend of c3 gets the first ack and stores nothing.
    send_text(&mut a, send(room, "c3", "again")).await;
    let ack = next_of(&mut a, "chat.ack").await;
    assert_eq!(
        (ack["seq"].as_i64(), ack["client_id"].as_str()),
        (Some(3), Some("c3"))
    );
    let (_, h) = get(
        &s,
        &format!("/api/studies/{_study}/chat_rooms/{room}/messages?limit=100"),
        Some(&m[0].cookie),
    )
    .await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    assert_eq!(items[2]["body"], "메시지 3");
    // Paging by seq.
    let (_, h) = get(
        &s,
        &format!("/api/studies/{_study}/chat_rooms/{room}/messages?before=6&limit=2"),
        Some(&m[0].cookie),
    )
    .await;
    let seqs: Vec<i64> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![4, 5]);
    let (_, h) = get(
        &s,
        &format!("/api/studies/{_study}/chat_rooms/{room}/messages?after=6"),
        Some(&m[0].cookie),
    )
    .await;
    assert_eq!(h["items"].as_array().unwrap().len(), 2);
    let (st, _) = get(
        &s,
        &format!("/api/studies/{_study}/chat_rooms/{room}/messages?limit=101"),
        Some(&m[0].cookie),
    )
    .await;
    assert_eq!(st, 400);
    s.shutdown().await;
}
both_backends!(ordered_delivery_acks_and_dedupe);

async fn resume_after_a_cut_mid_burst(b: &Backend) {
    let s = start(b, &["--actor-idle-secs", "1"]).await;
    let (_leader, m, _study, room) = room_with_members(&s, 2).await;
    let (mut a, _) = join(&s, &m[0], room, None).await;
    let (mut bws, _) = join(&s, &m[1], room, None).await;
    let total = 40;
    for i in 1..=total {
        send_text(&mut a, send(room, &format!("k{i}"), &format!("n{i}"))).await;
        if i % 10 == 0 {
            // Stay under the per-user rate (burst 10, 5/s).
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
        if i == 15 {
            // Cut B mid-burst, remembering the last seq it saw.
            break;
        }
    }
    let mut last = 0;
    while let Ok(Some(Ok(awc::ws::Frame::Text(t)))) = tokio::time::timeout(
        Duration::from_millis(500),
        futures_util::StreamExt::next(&mut bws),
    )
    .await
    {
        let f: Value = serde_json::from_slice(&t).unwrap();
        if f["type"] == "chat.message" {
            let seq = f["message"]["seq"].as_i64().unwrap();
            assert_eq!(seq, last + 1, "no gap before the cut");
            last = seq;
        }
    }
    drop(bws);
    for i in 16..=total {
        send_text(&mut a, send(room, &format!("k{i}"), &format!("n{i}"))).await;
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
    }
    // Wait until all are acked.
    let mut acked = HashSet::new();
    while acked.len() < total as usize {
        let f = next_json(&mut a).await;
        if f["type"] == "chat.ack" {
            acked.insert(f["seq"].as_i64().unwrap());
        }
        assert_ne!(f["type"], "error", "{f}");
    }
    // B comes back with the last seq it saw: exactly the rest, in order, then live traffic.
    let (mut b2, joined) = join(&s, &m[1], room, Some(last)).await;
    assert_eq!(joined["last_seq"].as_i64(), Some(total));
    for want in last + 1..=total {
        let f = next_of(&mut b2, "chat.message").await;
        assert_eq!(f["message"]["seq"].as_i64(), Some(want));
    }
    send_text(&mut a, send(room, "live", "live")).await;
    let f = next_of(&mut b2, "chat.message").await;
    assert_eq!(f["message"]["seq"].as_i64(), Some(total + 1));
    drop(a);
    drop(b2);
    // With everyone gone the room stops; a join then resumes from the store.
    let key = ChatRoom::key(RoomId(room));
    let mut waited = 0;
    while s.state.registry.is_running_here(&key) {
        assert!(waited < 100, "the idle room never stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let (mut b3, _) = join(&s, &m[1], room, Some(total - 3)).await;
    for want in total - 2..=total + 1 {
        assert_eq!(
            next_of(&mut b3, "chat.message").await["message"]["seq"].as_i64(),
            Some(want)
        );
    }
    s.shutdown().await;
}
both_backends!(resume_after_a_cut_mid_burst);

async fn limits_bad_input_and_moderation(b: &Backend) {
    let s = start(b, &[]).await;
    let (leader, m, study, room) = room_with_members(&s, 2).await;
    let outsider = signup(&s).await;
    // Rooms: at most 3 open; members only; a known category.
    for name in ["질문", "자료"] {
        let (st, _, _) = post(
            &s,
            &format!("/api/studies/{study}/chat_rooms"),
            json!({ "name": name, "category": "qna" }),
            Some(&m[0].cookie),
        )
        .await;
        assert_eq!(st, 201);
    }
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{study}/chat_rooms"),
        json!({ "name": "4th", "category": "general" }),
        Some(&m[0].cookie),
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (409, Some("room_limit")));
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{study}/chat_rooms"),
        json!({ "name": "x", "category": "gossip" }),
        Some(&m[0].cookie),
    )
    .await;
    assert_eq!((st, body["field"].as_str()), (400, Some("category")));
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{study}/chat_rooms"),
        json!({ "name": "x", "category": "general" }),
        Some(&outsider.cookie),
    )
    .await;
    assert_eq!(st, 404);

    // An outsider cannot join; unknown rooms are not found.
    let (mut o, _) = (ws_connect(&s, &outsider.cookie).await, ());
    hello(&mut o).await;
    send_text(
        &mut o,
        json!({ "type": "chat.join", "id": "x", "room_id": room }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut o).await["error"], "not_found");
    send_text(
        &mut o,
        json!({ "type": "chat.join", "id": "y", "room_id": 999_999 }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut o).await["error"], "not_found");
    send_text(&mut o, send(room, "sneak", "hi")).await;
    assert_eq!(next_json(&mut o).await["error"], "not_found");
    // A failed join leaves no way to write: reading, typing and reacting are refused too.
    send_text(
        &mut o,
        json!({ "type": "chat.read", "id": "rd", "room_id": room, "seq": 1 }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut o).await["error"], "not_found");
    let (st, _) = get(
        &s,
        &format!("/api/studies/{study}/chat_rooms"),
        Some(&outsider.cookie),
    )
    .await;
    assert_eq!(st, 404);

    let (mut a, _) = join(&s, &m[0], room, None).await;
    let (mut lws, _) = join(&s, &leader, room, None).await;
    send_text(&mut a, send(room, "long", &"가".repeat(4001))).await;
    assert_eq!(next_of(&mut a, "error").await["error"], "message_too_long");
    send_text(&mut a, send(room, "empty", "   ")).await;
    assert_eq!(next_of(&mut a, "error").await["error"], "validation_failed");
    // Forged seqs and other people's messages.
    send_text(&mut a, send(room, "m1", "mine @".to_string().as_str())).await;
    next_of(&mut a, "chat.ack").await;
    send_text(&mut lws, send(room, "l1", "leader's")).await;
    next_of(&mut lws, "chat.ack").await;
    let edit = |seq: i64, id: &str| {
        json!({ "type": "chat.edit", "id": id, "room_id": room, "seq": seq, "body": "edited" })
            .to_string()
    };
    send_text(&mut a, edit(9999, "e1")).await;
    assert_eq!(next_of(&mut a, "error").await["error"], "not_found");
    send_text(&mut a, edit(2, "e2")).await;
    assert_eq!(
        next_of(&mut a, "error").await["error"],
        "not_found",
        "editing someone else's message"
    );
    send_text(&mut a, edit(1, "e3")).await;
    assert_eq!(next_of(&mut a, "ack").await["id"], "e3");
    let upd = next_of(&mut lws, "chat.updated").await;
    assert_eq!(
        (
            upd["message"]["body"].as_str(),
            upd["message"]["edited_at"].is_i64()
        ),
        (Some("edited"), true)
    );
    // The leader may delete any message; a member only their own.
    let del = |seq: i64, id: &str| {
        json!({ "type": "chat.delete", "id": id, "room_id": room, "seq": seq }).to_string()
    };
    send_text(&mut a, del(2, "d1")).await;
    assert_eq!(next_of(&mut a, "error").await["error"], "not_found");
    send_text(&mut lws, del(1, "d2")).await;
    assert_eq!(next_of(&mut lws, "ack").await["id"], "d2");
    let upd = next_of(&mut a, "chat.updated").await;
    assert_eq!(
        (
            upd["message"]["deleted"].as_bool(),
            upd["message"]["body"].as_str()
        ),
        (Some(true), Some(""))
    );
    // Reactions from the fixed set only.
    send_text(&mut a, json!({ "type": "chat.react", "id": "r1", "room_id": room, "seq": 2, "emoji": "🔥", "on": true }).to_string()).await;
    assert_eq!(next_of(&mut a, "error").await["field"], "emoji");
    send_text(&mut a, json!({ "type": "chat.react", "id": "r2", "room_id": room, "seq": 2, "emoji": "👍", "on": true }).to_string()).await;
    assert_eq!(next_of(&mut a, "ack").await["id"], "r2");
    // The leader's socket also saw the delete; wait for the update of seq 2.
    let mut upd = next_of(&mut lws, "chat.updated").await;
    while upd["message"]["seq"] != 2 {
        upd = next_of(&mut lws, "chat.updated").await;
    }
    assert_eq!(upd["message"]["reactions"]["👍"], json!([m[0].user["id"]]));

    // Floods: rate_limited error frames, the socket stays, accepted seqs have no gaps.
    let mut limited = 0;
    for i in 0..25 {
        send_text(&mut a, send(room, &format!("f{i}"), "flood")).await;
    }
    let mut seqs = BTreeSet::new();
    let mut answered = 0;
    while answered < 25 {
        let f = next_json(&mut a).await;
        match f["type"].as_str().unwrap() {
            "chat.ack" => {
                seqs.insert(f["seq"].as_i64().unwrap());
                answered += 1;
            }
            "error" => {
                assert_eq!(f["error"], "rate_limited");
                limited += 1;
                answered += 1;
            }
            _ => {}
        }
    }
    assert!(limited > 0 && !seqs.is_empty());
    let v: Vec<i64> = seqs.iter().copied().collect();
    assert!(
        v.windows(2).all(|w| w[1] == w[0] + 1),
        "accepted seqs are contiguous: {v:?}"
    );

    // Closing: members cannot, the leader can; people inside are told; sends are refused;
    // history stays readable.
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{study}/chat_rooms/{room}/close"),
        json!({}),
        Some(&m[0].cookie),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{study}/chat_rooms/{room}/close"),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    next_of(&mut a, "chat.closed").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send_text(&mut a, send(room, "after", "closed?")).await;
    assert_eq!(next_of(&mut a, "error").await["error"], "room_closed");
    let (st, h) = get(
        &s,
        &format!("/api/studies/{study}/chat_rooms/{room}/messages"),
        Some(&m[1].cookie),
    )
    .await;
    assert_eq!(st, 200);
    assert!(h["items"].as_array().unwrap().len() >= 3);
    let (_, rooms) = get(
        &s,
        &format!("/api/studies/{study}/chat_rooms"),
        Some(&m[1].cookie),
    )
    .await;
    let r = rooms["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_i64() == Some(room))
        .unwrap()
        .clone();
    assert_eq!(r["closed"], true);
    // A closed room frees a slot.
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{study}/chat_rooms"),
        json!({ "name": "new", "category": "off_topic" }),
        Some(&m[1].cookie),
    )
    .await;
    assert_eq!(st, 201);
    s.shutdown().await;
}
both_backends!(limits_bad_input_and_moderation);

async fn presence_typing_unread_mentions_and_removal(b: &Backend) {
    let s = start(b, &[]).await;
    let (leader, m, study, room) = room_with_members(&s, 2).await;
    let (mut a, _) = join(&s, &m[0], room, None).await;
    let (mut bws, joined) = join(&s, &m[1], room, None).await;
    assert_eq!(
        joined["presence"].as_array().unwrap().len(),
        1,
        "A was already there"
    );
    // A sees presence grow to both of them.
    let mut p = next_of(&mut a, "chat.presence").await;
    if p["users"].as_array().unwrap().len() == 1 {
        p = next_of(&mut a, "chat.presence").await;
    }
    assert_eq!(p["users"].as_array().unwrap().len(), 2);
    send_text(
        &mut a,
        json!({ "type": "chat.typing", "room_id": room, "typing": true }).to_string(),
    )
    .await;
    let t = next_of(&mut bws, "chat.typing").await;
    assert_eq!(
        (t["typing"].as_bool(), &t["user"]["id"]),
        (Some(true), &m[0].user["id"])
    );
    // The server clears a typing state nobody refreshed.
    let t = next_of(&mut bws, "chat.typing").await;
    assert_eq!(t["typing"], false);

    // A mention notifies the mentioned member.
    let b_login = m[1].login_id.clone();
    send_text(&mut a, send(room, "men", &format!("@{b_login} 봐주세요"))).await;
    next_of(&mut a, "chat.ack").await;
    let n = next_of(&mut bws, "notification").await;
    assert_eq!(n["notification"]["kind"], "chat_mention");
    for i in 0..4 {
        send_text(&mut a, send(room, &format!("u{i}"), "more")).await;
        next_of(&mut a, "chat.ack").await;
    }
    // Unread: B has read nothing → 5; after reading up to 3 → 2.
    let unread = |who: &Session| {
        let cookie = who.cookie.clone();
        let s = &s;
        async move {
            let (_, r) = get(
                s,
                &format!("/api/studies/{study}/chat_rooms"),
                Some(&cookie),
            )
            .await;
            r["items"][0]["unread"].as_i64().unwrap()
        }
    };
    assert_eq!(unread(&m[1]).await, 5);
    assert_eq!(unread(&m[0]).await, 0, "one's own messages are not unread");
    send_text(
        &mut bws,
        json!({ "type": "chat.read", "id": "rd", "room_id": room, "seq": 3 }).to_string(),
    )
    .await;
    assert_eq!(next_of(&mut bws, "ack").await["id"], "rd");
    assert_eq!(unread(&m[1]).await, 2);
    // Read markers never move back.
    send_text(
        &mut bws,
        json!({ "type": "chat.read", "id": "rd2", "room_id": room, "seq": 1 }).to_string(),
    )
    .await;
    next_of(&mut bws, "ack").await;
    assert_eq!(unread(&m[1]).await, 2);

    // A second tab of A does not count twice in presence.
    let (_a2, joined) = join(&s, &m[0], room, None).await;
    assert_eq!(joined["presence"].as_array().unwrap().len(), 2, "{joined}");
    // Tabs watching the study learn of a new room live.
    let mut watcher = ws_connect(&s, &leader.cookie).await;
    hello(&mut watcher).await;
    send_text(
        &mut watcher,
        json!({ "type": "study.watch", "id": "w", "study_id": study }).to_string(),
    )
    .await;
    next_of(&mut watcher, "ack").await;
    let (st, r, _) = post(
        &s,
        &format!("/api/studies/{study}/chat_rooms"),
        json!({ "name": "new", "category": "resources" }),
        Some(&m[0].cookie),
    )
    .await;
    assert_eq!(st, 201);
    let ev = next_of(&mut watcher, "study.event").await;
    assert_eq!(
        (ev["event"]["kind"].as_str(), &ev["event"]["room_id"]),
        (Some("room_opened"), &r["room"]["id"])
    );

    // Removal: B is out of the room at once.
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{study}/members/{}/remove", m[1].user["id"]),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    next_of(&mut bws, "chat.removed").await;
    send_text(&mut bws, send(room, "still?", "hi")).await;
    let e = next_of(&mut bws, "error").await;
    assert_eq!(e["error"], "not_found");
    let (st, _) = get(
        &s,
        &format!("/api/studies/{study}/chat_rooms/{room}/messages"),
        Some(&m[1].cookie),
    )
    .await;
    assert_eq!(st, 404);
    s.shutdown().await;
}
both_backends!(presence_typing_unread_mentions_and_removal);

fn dm(to: &Value, client_id: &str, body: &str) -> String {
    json!({ "type": "dm.send", "id": client_id, "to": to, "client_id": client_id, "body": body })
        .to_string()
}

async fn tab(s: &RunningServer, who: &Session) -> WsConn {
    let mut ws = ws_connect(s, &who.cookie).await;
    hello(&mut ws).await;
    ws
}

async fn direct_messages_receipts_and_resume(b: &Backend) {
    let s = start(b, &[]).await;
    let (_leader, m, _study, _room) = room_with_members(&s, 2).await;
    let (a, bb) = (&m[0], &m[1]);
    let (mut a1, mut a2, mut b1, mut b2) = (
        tab(&s, a).await,
        tab(&s, a).await,
        tab(&s, bb).await,
        tab(&s, bb).await,
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    send_text(&mut a1, dm(&bb.user["id"], "x1", "안녕")).await;
    let ack = next_of(&mut a1, "dm.ack").await;
    assert_eq!((ack["seq"].as_i64(), &ack["to"]), (Some(1), &bb.user["id"]));
    // Every tab of both users gets it, each seeing the other party as `with`.
    for (t, with) in [
        (&mut b1, &a.user["id"]),
        (&mut b2, &a.user["id"]),
        (&mut a2, &bb.user["id"]),
    ] {
        let f = next_of(t, "dm.message").await;
        assert_eq!(
            (
                &f["with"],
                f["message"]["seq"].as_i64(),
                f["message"]["body"].as_str()
            ),
            (with, Some(1), Some("안녕"))
        );
    }
    // Resend: first ack again, nothing new.
    send_text(&mut a1, dm(&bb.user["id"], "x1", "안녕")).await;
    assert_eq!(next_of(&mut a1, "dm.ack").await["seq"].as_i64(), Some(1));
    send_text(&mut a1, dm(&bb.user["id"], "x2", "두 번째")).await;
    assert_eq!(next_of(&mut a1, "dm.ack").await["seq"].as_i64(), Some(2));
    let (_, inbox) = get(&s, "/api/dms", Some(&bb.cookie)).await;
    let c = &inbox["items"][0];
    assert_eq!(
        (
            &c["user"]["id"],
            c["unread"].as_i64(),
            c["last_message"]["seq"].as_i64()
        ),
        (&a.user["id"], Some(2), Some(2))
    );
    // B reads: A's tabs see the check mark live; B's unread drops to 0.
    send_text(
        &mut b1,
        json!({ "type": "dm.read", "id": "r", "with": a.user["id"], "seq": 2 }).to_string(),
    )
    .await;
    assert_eq!(next_of(&mut b1, "ack").await["id"], "r");
    for t in [&mut a1, &mut a2] {
        let f = next_of(t, "dm.read").await;
        assert_eq!((&f["with"], f["seq"].as_i64()), (&bb.user["id"], Some(2)));
    }
    let (_, inbox) = get(&s, "/api/dms", Some(&bb.cookie)).await;
    assert_eq!(inbox["items"][0]["unread"].as_i64(), Some(0));
    let (st, h) = get(
        &s,
        &format!("/api/dms/{}/messages", bb.user["id"]),
        Some(&a.cookie),
    )
    .await;
    assert_eq!(
        (
            st,
            h["items"].as_array().unwrap().len(),
            h["read_seq"].as_i64()
        ),
        (200, 2, Some(2))
    );

    // B goes away; A writes twice more; B syncs from seq 2 and gets exactly 3 and 4.
    drop(b1);
    drop(b2);
    for (i, text) in ["셋", "넷"].iter().enumerate() {
        send_text(&mut a1, dm(&bb.user["id"], &format!("y{i}"), text)).await;
        next_of(&mut a1, "dm.ack").await;
    }
    let mut b3 = tab(&s, bb).await;
    send_text(
        &mut b3,
        json!({ "type": "dm.sync", "id": "s", "with": a.user["id"], "last_seq": 2 }).to_string(),
    )
    .await;
    let synced = next_of(&mut b3, "dm.synced").await;
    assert_eq!(synced["last_seq"].as_i64(), Some(4));
    assert_eq!(
        next_of(&mut b3, "dm.message").await["message"]["seq"].as_i64(),
        Some(3)
    );
    assert_eq!(
        next_of(&mut b3, "dm.message").await["message"]["seq"].as_i64(),
        Some(4)
    );

    // Strangers (no study in common) cannot write or read.
    let stranger = signup(&s).await;
    let mut st_ws = tab(&s, &stranger).await;
    send_text(&mut st_ws, dm(&a.user["id"], "z", "hello?")).await;
    assert_eq!(next_of(&mut st_ws, "error").await["error"], "not_found");
    send_text(
        &mut st_ws,
        json!({ "type": "dm.read", "id": "r", "with": a.user["id"], "seq": 5 }).to_string(),
    )
    .await;
    assert_eq!(next_of(&mut st_ws, "error").await["error"], "not_found");
    let (st, _) = get(
        &s,
        &format!("/api/dms/{}/messages", a.user["id"]),
        Some(&stranger.cookie),
    )
    .await;
    assert_eq!(st, 404);
    send_text(&mut st_ws, dm(&stranger.user["id"], "self", "me")).await;
    assert_eq!(next_of(&mut st_ws, "error").await["field"], "to");
    s.shutdown().await;
}
both_backends!(direct_messages_receipts_and_resume);

/// A client id stored where the room's memory does not reach (written by another node, or
/// older than the in-memory window) is caught by the unique index: the resend gets the
/// stored seq back, and the other sends of the same batch are stored normally.
async fn resend_of_a_client_id_the_room_does_not_remember(b: &Backend) {
    let s = start(b, &[]).await;
    let (_leader, m, study, room) = room_with_members(&s, 1).await;
    let (mut ws, joined) = join(&s, &m[0], room, None).await;
    assert_eq!(joined["last_seq"].as_i64(), Some(0));
    // Stored behind the live room's back, at a seq it will not reach in this test.
    let author = studyon::ids::UserId(m[0].user["id"].as_i64().unwrap());
    s.state
        .store
        .commit_batch(&[studyon::store::DurableWrite::ChatMessages {
            fence: None,
            room_id: studyon::ids::RoomId(room),
            messages: vec![studyon::chat::NewChatMessage {
                seq: 1000,
                client_id: "old".into(),
                author_id: author,
                body: "stored long ago".into(),
                mentions: vec![],
                at: 1,
            }],
        }])
        .await
        .unwrap();
    for c in ["new-1", "old", "new-2"] {
        send_text(&mut ws, send(room, c, c)).await;
    }
    let mut acks = std::collections::BTreeMap::new();
    while acks.len() < 3 {
        let f = next_of(&mut ws, "chat.ack").await;
        acks.insert(
            f["client_id"].as_str().unwrap().to_string(),
            f["seq"].as_i64().unwrap(),
        );
    }
    assert_eq!(acks["old"], 1000, "{acks:?}");
    let mut fresh = [acks["new-1"], acks["new-2"]];
    fresh.sort();
    assert_eq!(fresh, [1, 2], "{acks:?}");
    // Nothing was stored twice.
    let (_, h) = get(
        &s,
        &format!("/api/studies/{study}/chat_rooms/{room}/messages?after=0&limit=100"),
        Some(&m[0].cookie),
    )
    .await;
    let bodies: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies.iter().filter(|b| **b == "old").count(),
        0,
        "{bodies:?}"
    );
    assert_eq!(bodies.len(), 3, "{bodies:?}");

    // Another writer takes the room's next seq: the send is refused (never retried in a
    // loop), the room restarts from the store, and the resend after re-joining is stored
    // after the other writer's message.
    s.state
        .store
        .commit_batch(&[studyon::store::DurableWrite::ChatMessages {
            fence: None,
            room_id: studyon::ids::RoomId(room),
            messages: vec![studyon::chat::NewChatMessage {
                seq: 3,
                client_id: "elsewhere".into(),
                author_id: author,
                body: "from another node".into(),
                mentions: vec![],
                at: 2,
            }],
        }])
        .await
        .unwrap();
    send_text(&mut ws, send(room, "late", "late")).await;
    let (mut refused, mut resync) = (false, false);
    while !(refused && resync) {
        let f = next_json(&mut ws).await;
        match f["type"].as_str().unwrap() {
            "error" => {
                assert_eq!(
                    (f["id"].as_str(), f["error"].as_str()),
                    (Some("late"), Some("unavailable")),
                    "{f}"
                );
                refused = true;
            }
            "resync" => {
                assert_eq!(f["room_id"].as_i64(), Some(room), "{f}");
                resync = true;
            }
            "chat.message" | "chat.presence" => {}
            other => panic!("unexpected {other}: {f}"),
        }
    }
    let (mut again, joined) = join(&s, &m[0], room, Some(1000)).await;
    assert_eq!(joined["last_seq"].as_i64(), Some(1000));
    send_text(&mut again, send(room, "late", "late")).await;
    assert_eq!(
        next_of(&mut again, "chat.ack").await["seq"].as_i64(),
        Some(1001)
    );
    s.shutdown().await;
}
both_backends!(resend_of_a_client_id_the_room_does_not_remember);

/// Deleting a study takes everything in it: rooms with messages, reactions and read markers,
/// tasks and posts; the people in its rooms are told the room closed.
async fn deleting_a_study_takes_its_rooms_and_work(b: &Backend) {
    let s = start(b, &[]).await;
    let (leader, m, study, room) = room_with_members(&s, 1).await;
    let (mut ws, _) = join(&s, &m[0], room, None).await;
    send_text(&mut ws, send(room, "c1", "hello")).await;
    assert_eq!(next_of(&mut ws, "chat.ack").await["seq"].as_i64(), Some(1));
    send_text(
        &mut ws,
        json!({ "type": "chat.react", "id": "r", "room_id": room, "seq": 1, "emoji": "👍", "on": true }).to_string(),
    )
    .await;
    assert_eq!(next_of(&mut ws, "ack").await["id"], "r");
    send_text(
        &mut ws,
        json!({ "type": "chat.read", "id": "rd", "room_id": room, "seq": 1 }).to_string(),
    )
    .await;
    assert_eq!(next_of(&mut ws, "ack").await["id"], "rd");
    let task = crate::tasks::new_task(&s, study, &m[0], json!({ "title": "t" })).await;
    crate::tasks::new_post(&s, study, task["id"].as_i64().unwrap(), &m[0], "p", "b").await;

    let (st, _) = delete(&s, &format!("/api/studies/{study}"), Some(&leader.cookie)).await;
    assert_eq!(st, 204);
    let f = next_of(&mut ws, "chat.closed").await;
    assert_eq!(f["room_id"].as_i64(), Some(room));
    for path in [
        format!("/api/studies/{study}"),
        format!("/api/studies/{study}/chat_rooms/{room}/messages"),
        format!("/api/studies/{study}/tasks"),
    ] {
        assert_eq!(get(&s, &path, Some(&leader.cookie)).await.0, 404, "{path}");
    }
    // The member's study list no longer has it.
    let (_, mine) = get(&s, "/api/me/studies", Some(&m[0].cookie)).await;
    assert_eq!(mine["joined"], json!([]));
    s.shutdown().await;
}
both_backends!(deleting_a_study_takes_its_rooms_and_work);

/// A member may send any number as `last_seq`: the largest one must not overflow (in a debug
/// build that panicked the room, which restarted and told every socket in it to resync).
async fn the_largest_last_seq_breaks_nothing(b: &Backend) {
    let s = start(b, &[]).await;
    let (_leader, m, _study, room) = room_with_members(&s, 2).await;
    let (mut a, _) = join(&s, &m[0], room, None).await;
    send_text(&mut a, send(room, "c1", "first")).await;
    assert_eq!(next_of(&mut a, "chat.ack").await["seq"], 1);
    let (mut b2, joined) = join(&s, &m[1], room, Some(i64::MAX)).await;
    assert_eq!(joined["last_seq"], 1);
    // Nobody was told to resync (`next_of` fails on any frame but room traffic), and the
    // room goes on: the next message reaches both.
    send_text(&mut a, send(room, "c2", "second")).await;
    for ws in [&mut a, &mut b2] {
        assert_eq!(next_of(ws, "chat.message").await["message"]["seq"], 2);
    }
    assert_eq!(next_of(&mut a, "chat.ack").await["seq"], 2);
    // The same for a conversation's sync.
    let with = &m[1].user["id"];
    send_text(&mut a, dm(with, "d1", "hi")).await;
    assert_eq!(next_of(&mut a, "dm.ack").await["seq"], 1);
    let sync = json!({ "type": "dm.sync", "id": "s", "with": with, "last_seq": i64::MAX });
    send_text(&mut a, sync.to_string()).await;
    let synced = next_of(&mut a, "dm.synced").await;
    assert_eq!(synced["last_seq"], 1);
    send_text(&mut a, dm(with, "d2", "again")).await;
    assert_eq!(next_of(&mut a, "dm.ack").await["seq"], 2);
    s.shutdown().await;
}
both_backends!(the_largest_last_seq_breaks_nothing);
