//! Co-edited post bodies: a Yrs client over `/ws/doc/{post_id}` (plain y-websocket framing)
//! and `/ws?binary=1` (named frames), against the real server on SQLite and Postgres. The
//! npm clients (yjs, y-websocket, @hocuspocus/provider) are tested in `web/tests`.

use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use studyon::live::doc::proto::{self, Framing, Writer};
use studyon::server::RunningServer;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

use crate::both_backends;
use crate::common::*;
use crate::tasks::{new_post, new_task, study_with_members};

/// A y-websocket peer: its own Yrs document, synced over one socket.
pub struct Peer {
    pub doc: Doc,
    pub ws: WsConn,
    framing: Framing,
    /// Auth messages the server sent (permission denied reasons, hocuspocus scopes).
    pub auth: Vec<String>,
    /// Awareness updates received (decoded entries: client id, state).
    pub awareness: Vec<(u64, String)>,
    pub closed: Option<u16>,
}

pub async fn connect_plain(base: &str, origin: &str, cookie: &str, post: i64) -> WsConn {
    let (_, ws) = client()
        .ws(format!("{base}/ws/doc/{post}"))
        .origin(origin.to_string())
        .set_header("Cookie", cookie.to_string())
        .max_frame_size(4 << 20)
        .connect()
        .await
        .expect("doc socket connects");
    ws
}

impl Peer {
    pub fn new(ws: WsConn, framing: Framing) -> Peer {
        Peer {
            doc: Doc::new(),
            ws,
            framing,
            auth: Vec::new(),
            awareness: Vec::new(),
            closed: None,
        }
    }

    /// Opens `/ws/doc/{post}` and syncs both ways (our step 1, and our answer to the
    /// server's).
    pub async fn plain(s: &RunningServer, cookie: &str, post: i64) -> Peer {
        Peer::plain_at(&s.url(), cookie, post).await
    }

    /// As [`Peer::plain`], for a server at `base` (a child process).
    pub async fn plain_at(base: &str, cookie: &str, post: i64) -> Peer {
        let ws = connect_plain(base, base, cookie, post).await;
        let mut p = Peer::new(ws, Framing::Plain);
        p.sync().await;
        p
    }

    pub fn text(&self) -> String {
        let t = self.doc.get_or_insert_text("body");
        t.get_string(&self.doc.transact())
    }

    pub async fn send(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// Sends our state vector; the server answers with what we lack.
    pub async fn sync(&mut self) {
        let sv = self.doc.transact().state_vector().encode_v1();
        let m = self.framing.sync(proto::SYNC_STEP1, &sv);
        self.send(m).await;
    }

    /// Edits locally and sends the update, as a provider does.
    pub async fn edit(
        &mut self,
        f: impl FnOnce(&yrs::TextRef, &mut yrs::TransactionMut),
    ) -> Vec<u8> {
        let t = self.doc.get_or_insert_text("body");
        let update = {
            let mut txn = self.doc.transact_mut();
            f(&t, &mut txn);
            txn.encode_update_v1()
        };
        let m = self.framing.sync(proto::SYNC_UPDATE, &update);
        self.send(m).await;
        update
    }

    pub async fn append(&mut self, s: &str) {
        let s = s.to_string();
        self.edit(move |t, txn| {
            let end = t.len(txn);
            t.insert(txn, end, &s)
        })
        .await;
    }

    /// Handles one frame; false on close or timeout.
    pub async fn pump_once(&mut self, within: Duration) -> bool {
        let next = match tokio::time::timeout(within, self.ws.next()).await {
            Err(_) => return false,
            Ok(n) => n,
        };
        let bytes = match next {
            Some(Ok(Frame::Binary(b))) => b,
            Some(Ok(Frame::Close(r))) => {
                self.closed = Some(r.map_or(1005, |r| u16::from(r.code)));
                return false;
            }
            None | Some(Err(_)) => {
                self.closed.get_or_insert(1006);
                return false;
            }
            Some(Ok(_)) => return true,
        };
        let msg_bytes = match &self.framing {
            Framing::Plain => &bytes[..],
            Framing::Named(n) => {
                let (name, rest) = proto::split_name(&bytes).expect("named frame");
                assert_eq!(name, n);
                rest
            }
        };
        let mut r = proto::Reader::new(msg_bytes);
        match r.var_uint().unwrap() {
            proto::MSG_SYNC => {
                let sub = r.var_uint().unwrap();
                let payload = r.bytes().unwrap().to_vec();
                if sub == proto::SYNC_STEP1 {
                    let sv = StateVector::decode_v1(&payload).unwrap();
                    let diff = self.doc.transact().encode_state_as_update_v1(&sv);
                    let m = self.framing.sync(proto::SYNC_STEP2, &diff);
                    self.send(m).await;
                } else {
                    let u = Update::decode_v1(&payload).expect("server sends valid updates");
                    self.doc.transact_mut().apply_update(u).unwrap();
                }
            }
            proto::MSG_AWARENESS => {
                let b = r.bytes().unwrap();
                let entries = studyon::live::doc::awareness::decode(b).unwrap();
                self.awareness
                    .extend(entries.into_iter().map(|e| (e.client, e.state)));
            }
            proto::MSG_AUTH => {
                r.var_uint().unwrap();
                self.auth.push(r.string().unwrap().to_string());
            }
            _ => {}
        }
        true
    }

    /// Pumps frames until `done` holds (panics after 10 s).
    pub async fn until(&mut self, what: &str, done: impl Fn(&Peer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; text {:?}",
                self.text()
            );
            if !self.pump_once(Duration::from_millis(100)).await && self.closed.is_some() {
                assert!(
                    done(self),
                    "socket closed ({:?}) waiting for {what}",
                    self.closed
                );
                return;
            }
        }
    }

    /// Reads what arrives for `d`.
    pub async fn drain(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if !self.pump_once(Duration::from_millis(50)).await && self.closed.is_some() {
                return;
            }
        }
    }

    pub async fn wait_closed(&mut self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.closed.is_none() {
            assert!(Instant::now() < deadline, "socket not closed");
            self.pump_once(Duration::from_millis(100)).await;
        }
        self.closed.unwrap()
    }
}

async fn put(s: &RunningServer, path: &str, body: Value, cookie: &str) -> (u16, Value) {
    let mut resp = client()
        .put(format!("{}{}", s.url(), path))
        .insert_header(("Origin", origin(s)))
        .insert_header(("Cookie", cookie.to_string()))
        .send_json(&body)
        .await
        .unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

async fn patch(s: &RunningServer, path: &str, body: Value, cookie: &str) -> (u16, Value) {
    crate::studies::patch(s, path, body, cookie).await
}

/// Polls the post over HTTP until its body is `want` (the refresh is debounced).
async fn body_becomes(s: &RunningServer, path: &str, cookie: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, p) = get(s, path, Some(cookie)).await;
        if p["post"]["body"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "body stayed {:?}, want {want:?}",
            p["post"]["body"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn co_editing_converges_with_the_api_and_history(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, member] = signups(&s).await;
    let study = study_with_members(&s, &leader, &[&member]).await;
    let task = new_task(&s, study, &leader, json!({ "title": "t" })).await;
    let created = new_post(
        &s,
        study,
        task["id"].as_i64().unwrap(),
        &member,
        "Notes",
        "hello",
    )
    .await;
    let pid = created["id"].as_i64().unwrap();
    let path = format!("/api/studies/{study}/posts/{pid}");

    // The stored body seeds the document.
    let mut a = Peer::plain(&s, &member.cookie, pid).await;
    a.until("the seeded body", |p| p.text() == "hello").await;
    let mut b2 = Peer::plain(&s, &leader.cookie, pid).await;
    b2.until("the seeded body", |p| p.text() == "hello").await;

    // Concurrent edits at both ends converge everywhere.
    a.append(" world").await;
    b2.edit(|t, txn| t.insert(txn, 0, ">> ")).await;
    a.until("b's edit", |p| p.text() == ">> hello world").await;
    b2.until("a's edit", |p| p.text() == ">> hello world").await;
    body_becomes(&s, &path, &member.cookie, ">> hello world").await;

    // An edit made offline before connecting arrives in the sync.
    let mut c = Peer::new(
        connect_plain(&s.url(), &origin(&s), &leader.cookie, pid).await,
        Framing::Plain,
    );
    {
        let t = c.doc.get_or_insert_text("body");
        t.insert(&mut c.doc.transact_mut(), 0, "offline ");
    }
    c.sync().await;
    c.until("the merged text", |p| {
        p.text().contains("offline") && p.text().contains("hello world")
    })
    .await;
    let merged = c.text();
    a.until("the offline edit", |p| p.text() == merged).await;

    // The HTTP API edits the body as a diff: live editors converge on it.
    let (st, p) = patch(
        &s,
        &path,
        json!({ "body": "rewritten by the api" }),
        &member.cookie,
    )
    .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["post"]["body"], "rewritten by the api");
    assert!(
        p["post"]["body_html"]
            .as_str()
            .unwrap()
            .contains("rewritten")
    );
    for peer in [&mut a, &mut b2, &mut c] {
        peer.until("the api edit", |p| p.text() == "rewritten by the api")
            .await;
    }

    // Versions: named on request, listed with authors; restore is an edit everyone sees.
    let (st, v, _) = post(
        &s,
        &format!("{path}/versions"),
        json!({ "name": "before" }),
        Some(&member.cookie),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let vid = v["version"]["id"].as_i64().unwrap();
    assert_eq!(v["version"]["name"], "before");
    let authors: Vec<i64> = v["version"]["authors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert!(
        authors.contains(&member.user["id"].as_i64().unwrap()),
        "{v}"
    );
    assert!(
        authors.contains(&leader.user["id"].as_i64().unwrap()),
        "{v}"
    );
    a.append(" and more").await;
    b2.until("a's append", |p| p.text().ends_with("and more"))
        .await;
    let (st, prev) = get(&s, &format!("{path}/versions/{vid}"), Some(&leader.cookie)).await;
    assert_eq!(
        (st, prev["body"].as_str()),
        (200, Some("rewritten by the api")),
        "{prev}"
    );
    let (_, list) = get(&s, &format!("{path}/versions"), Some(&leader.cookie)).await;
    assert_eq!(list["versions"][0]["id"], vid);
    let (st, r, _) = post(
        &s,
        &format!("{path}/versions/{vid}/restore"),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["post"]["body"], "rewritten by the api");
    for peer in [&mut a, &mut b2, &mut c] {
        peer.until("the restored text", |p| p.text() == "rewritten by the api")
            .await;
    }
    let (st, e, _) = post(
        &s,
        &format!("{path}/versions"),
        json!({ "name": "  " }),
        Some(&member.cookie),
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("validation_failed")),
        "{e}"
    );
    let (st, _) = get(&s, &format!("{path}/versions/999999"), Some(&leader.cookie)).await;
    assert_eq!(st, 404);

    // Locking: the member's updates are refused and the document is unchanged; the leader
    // still writes.
    let (st, l) = put(
        &s,
        &format!("{path}/lock"),
        json!({ "locked": true }),
        &member.cookie,
    )
    .await;
    assert_eq!(st, 403, "{l}");
    let (st, l) = put(
        &s,
        &format!("{path}/lock"),
        json!({ "locked": true }),
        &leader.cookie,
    )
    .await;
    assert_eq!(
        (st, l["post"]["locked"].as_bool()),
        (200, Some(true)),
        "{l}"
    );
    // Connecting read-only is no error: the client's empty step 2 is not a write.
    let mut ro = Peer::plain(&s, &member.cookie, pid).await;
    ro.drain(Duration::from_millis(300)).await;
    assert!(ro.auth.is_empty(), "{:?}", ro.auth);
    a.append(" (refused)").await;
    a.until("the refusal", |p| p.auth.iter().any(|r| r == "post_locked"))
        .await;
    let (st, e) = patch(&s, &path, json!({ "body": "nope" }), &member.cookie).await;
    assert_eq!((st, e["error"].as_str()), (403, Some("post_locked")), "{e}");
    b2.append("!").await;
    c.until("the leader's edit", |p| p.text() == "rewritten by the api!")
        .await;
    assert!(!c.text().contains("refused"));
    put(
        &s,
        &format!("{path}/lock"),
        json!({ "locked": false }),
        &leader.cookie,
    )
    .await;
    body_becomes(&s, &path, &member.cookie, "rewritten by the api!").await;
    // After the unlock, the member's next edit builds on the refused one: the server asks
    // for what it lacks, and both arrive everywhere instead of waiting forever.
    a.append(" unlocked").await;
    a.drain(Duration::from_millis(500)).await; // answers the server's step 1
    c.until("the edits after the unlock", |p| {
        // Where the refused text lands beside the leader's "!" is the CRDT's tie-break.
        p.text().contains("(refused) unlocked") && p.text().contains('!')
    })
    .await;

    // Awareness spreads and is cleared when its socket goes. The member claims the
    // leader's name; the server writes the member's own name and id over it.
    let claimed = json!({"user": {"name": leader.user["display_name"], "color": "#e0457b"}});
    let mut w = Writer::default();
    w.var_uint(1)
        .var_uint(4242)
        .var_uint(1)
        .string(&claimed.to_string());
    let m = a.framing.awareness(&w.0);
    a.send(m).await;
    let stamped = json!({"user": {"name": member.user["display_name"], "id": member.user["id"], "color": "#e0457b"}});
    b2.until("a's cursor, under a's own name", |p| {
        p.awareness.iter().any(|(c, s)| {
            *c == 4242 && serde_json::from_str::<Value>(s).is_ok_and(|v| v == stamped)
        })
    })
    .await;
    a.ws.close().await.unwrap();
    drop(a);
    b2.until("a's cursor removed", |p| {
        p.awareness.iter().any(|(c, s)| *c == 4242 && s == "null")
    })
    .await;

    // A malformed update is refused and changes nothing.
    let before = c.text();
    c.send(vec![0, 2, 4, 1, 2, 250, 250]).await;
    c.until("the refusal", |p| {
        p.auth.iter().any(|r| r == "malformed_update")
    })
    .await;
    let mut fresh = Peer::plain(&s, &leader.cookie, pid).await;
    fresh.until("the text", |p| p.text() == before).await;
    s.shutdown().await;
}
both_backends!(co_editing_converges_with_the_api_and_history);

async fn access_follows_membership(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, member, outsider] = signups(&s).await;
    let study = study_with_members(&s, &leader, &[&member]).await;
    let task = new_task(&s, study, &leader, json!({ "title": "t" })).await;
    let created = new_post(&s, study, task["id"].as_i64().unwrap(), &leader, "Doc", "x").await;
    let pid = created["id"].as_i64().unwrap();

    let mut o = Peer::new(
        connect_plain(&s.url(), &origin(&s), &outsider.cookie, pid).await,
        Framing::Plain,
    );
    assert_eq!(o.wait_closed().await, 4403, "non-members get nothing");
    assert_eq!(o.text(), "");
    let mut none = Peer::new(
        connect_plain(&s.url(), &origin(&s), &leader.cookie, 999_999).await,
        Framing::Plain,
    );
    assert_eq!(none.wait_closed().await, 4404);

    // A text frame on a binary-only endpoint closes it with 1003: its clients read no JSON.
    let mut text = Peer::plain(&s, &leader.cookie, pid).await;
    text.ws
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(text.wait_closed().await, 1003);

    // A removed member's document socket closes at once; the multiplexed one loses the doc.
    let mut m = Peer::plain(&s, &member.cookie, pid).await;
    m.until("the text", |p| p.text() == "x").await;
    let (_, ws) = client()
        .ws(format!("{}/ws?binary=1", s.url()))
        .origin(origin(&s))
        .set_header("Cookie", member.cookie.clone())
        .connect()
        .await
        .unwrap();
    let mut named = Peer::new(ws, Framing::Named(format!("post/{pid}")));
    let mut auth = Writer::with_name(&format!("post/{pid}"));
    auth.var_uint(proto::MSG_AUTH)
        .var_uint(proto::HAUTH_TOKEN)
        .string("");
    named.send(auth.0).await;
    named.sync().await;
    named
        .until("authenticated and synced", |p| {
            p.auth.iter().any(|a| a == "read-write") && p.text() == "x"
        })
        .await;

    let uid = member.user["id"].as_i64().unwrap();
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{study}/members/{uid}/remove"),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(m.wait_closed().await, 4403);
    named
        .until("the denial", |p| p.auth.iter().any(|a| a == "removed"))
        .await;
    // Its edits now go nowhere.
    named.append(" after").await;
    let mut l = Peer::plain(&s, &leader.cookie, pid).await;
    l.drain(Duration::from_millis(300)).await;
    assert_eq!(l.text(), "x");

    // Deleting the post closes its editors with 4404.
    let (st, _) = delete(
        &s,
        &format!("/api/studies/{study}/posts/{pid}"),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(l.wait_closed().await, 4404);
    s.shutdown().await;
}
both_backends!(access_follows_membership);

async fn documents_are_compacted_unloaded_and_reloaded(b: &Backend) {
    let s = start(b, &["--actor-idle-secs", "1"]).await;
    let [leader] = signups(&s).await;
    let study = study_with_members(&s, &leader, &[]).await;
    let task = new_task(&s, study, &leader, json!({ "title": "t" })).await;
    let created = new_post(&s, study, task["id"].as_i64().unwrap(), &leader, "Doc", "").await;
    let pid = created["id"].as_i64().unwrap();
    let mut a = Peer::plain(&s, &leader.cookie, pid).await;
    let mut b2 = Peer::plain(&s, &leader.cookie, pid).await;
    // Past the compaction threshold (in bytes: the row threshold would take more messages
    // than the socket rate allows at once), each edit relayed (so stored) before the next.
    let chunk = 24 * 1024;
    let n = studyon::live::doc::actor::COMPACT_BYTES / chunk + 2;
    for i in 0..n {
        let piece: String = std::iter::repeat_n(char::from(b'a' + (i % 26) as u8), chunk).collect();
        a.append(&piece).await;
        b2.until("the edit", |p| p.text().len() == (i + 1) * chunk)
            .await;
    }
    a.append("tail").await;
    b2.until("the tail", |p| p.text().ends_with("tail")).await;
    let want = a.text();
    let metrics = metrics_text(&s).await;
    let compactions = metrics
        .lines()
        .find(|l| l.starts_with("studyon_doc_compactions_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(compactions >= 1.0, "{metrics}");
    drop(a);
    drop(b2);
    // Idle documents unload (the post row was refreshed first), then load from the snapshot
    // plus the log.
    let key = <studyon::live::doc::PostDoc as studyon::registry::KeyedActor>::key(
        studyon::ids::PostId(pid),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.state.registry.is_running_here(&key) {
        assert!(Instant::now() < deadline, "the document never unloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, p) = get(
        &s,
        &format!("/api/studies/{study}/posts/{pid}"),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(p["post"]["body"], want.as_str());
    let mut c = Peer::plain(&s, &leader.cookie, pid).await;
    c.until("the reloaded text", |p| p.text() == want).await;
    // An automatic version was taken when the editors left.
    let (_, v) = get(
        &s,
        &format!("/api/studies/{study}/posts/{pid}/versions"),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(v["versions"][0]["name"], Value::Null, "{v}");
    assert_eq!(
        v["versions"][0]["chars"].as_i64(),
        Some(want.chars().count() as i64),
        "{v}"
    );
    s.shutdown().await;
}
both_backends!(documents_are_compacted_unloaded_and_reloaded);

async fn oversized_documents_are_refused(b: &Backend) {
    let s = start(b, &["--doc-max-bytes", "4096"]).await;
    let [leader] = signups(&s).await;
    let study = study_with_members(&s, &leader, &[]).await;
    let task = new_task(&s, study, &leader, json!({ "title": "t" })).await;
    let created = new_post(
        &s,
        study,
        task["id"].as_i64().unwrap(),
        &leader,
        "Doc",
        "small",
    )
    .await;
    let pid = created["id"].as_i64().unwrap();
    let path = format!("/api/studies/{study}/posts/{pid}");

    let mut a = Peer::plain(&s, &leader.cookie, pid).await;
    a.until("the text", |p| p.text() == "small").await;
    a.append(&"x".repeat(5000)).await;
    assert_eq!(a.wait_closed().await, 4413, "the edit cannot be kept");
    assert!(
        a.auth.iter().any(|r| r == "document_too_large"),
        "{:?}",
        a.auth
    );
    let mut b2 = Peer::plain(&s, &leader.cookie, pid).await;
    b2.drain(Duration::from_millis(300)).await;
    assert_eq!(b2.text(), "small");
    // The API gets a clear error and changes nothing either.
    let (st, e) = patch(
        &s,
        &path,
        json!({ "body": "y".repeat(6000) }),
        &leader.cookie,
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (413, Some("document_too_large")),
        "{e}"
    );
    let (_, p) = get(&s, &path, Some(&leader.cookie)).await;
    assert_eq!(p["post"]["body"], "small");
    s.shutdown().await;
}
both_backends!(oversized_documents_are_refused);
