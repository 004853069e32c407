//! Group video: str0m clients as participants (`studyon::live::video::client`) against the
//! real server's SFU on loopback: signaling over `/ws`, media over the node's UDP socket.
//! Synthetic frames carry a known pattern (publisher, source, sequence) so every frame can
//! be traced from its publisher to each subscriber. The browser (Chromium, fake media) is
//! tested in `web/tests/video.test.mjs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use awc::ws::Frame;
use futures_util::StreamExt;
use serde_json::{Value, json};
use str0m::media::KeyframeRequestKind;
use studyon::live::video::client::MediaClient;
use studyon::live::video::sfu;
use studyon::live::video::sfu::route::{self, Source};

use crate::both_backends;
use crate::common::*;
use crate::tasks::study_with_members;

fn uid(s: &Session) -> i64 {
    s.user["id"].as_i64().expect("user id")
}

/// A frame payload: [publisher, source, seq (2 bytes), filler].
fn pattern(user: i64, source: Source, seq: u16, len: usize) -> Vec<u8> {
    let mut p = vec![0xA5; len.max(4)];
    p[0] = user as u8;
    p[1] = source as u8;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p
}

/// The sequence number of [`Part::announce`]'s frames, which [`Part::got`] leaves out.
const ANNOUNCE: u16 = u16::MAX;
/// How often a waiting participant announces its tracks (see [`until`]).
const ANNOUNCE_EVERY: Duration = Duration::from_millis(100);

/// One participant: its socket, its str0m peer, and what the server said.
pub(crate) struct Part {
    pub(crate) user: i64,
    study: i64,
    ws: WsConn,
    media: MediaClient,
    /// mid → (publisher, source), from the server's latest `video.offer`.
    tracks: HashMap<String, (i64, String)>,
    /// Every JSON frame seen, in order.
    frames: Vec<Value>,
    answers_sent: usize,
    answers_acked: usize,
    next_id: u64,
    /// `wait_for` looks only at frames from here on.
    mark: usize,
    last_announce: Option<Instant>,
}

impl Part {
    /// Joins the room and publishes `sources` (offer → answer).
    pub(crate) async fn join(
        s: &impl Target,
        who: &Session,
        study: i64,
        sources: &[Source],
    ) -> Part {
        let mut p = Part::connect(s, who, study).await;
        let joined = p
            .request(json!({"type": "video.join", "study_id": study}))
            .await;
        assert_eq!(joined["type"], "video.joined", "{joined}");
        assert_eq!(joined["you"], p.user);
        p.publish(sources).await;
        p
    }

    async fn connect(s: &impl Target, who: &Session, study: i64) -> Part {
        let mut ws = ws_connect(s, &who.cookie).await;
        hello(&mut ws).await;
        Part {
            user: uid(who),
            study,
            ws,
            media: MediaClient::new().await.expect("udp socket"),
            tracks: HashMap::new(),
            frames: Vec::new(),
            answers_sent: 0,
            answers_acked: 0,
            next_id: 0,
            mark: 0,
            last_announce: None,
        }
    }

    async fn publish(&mut self, sources: &[Source]) {
        let (sdp, named) = self.media.offer(sources);
        let msg =
            json!({"type": "video.offer", "study_id": self.study, "sdp": sdp, "sources": named});
        let answer = self.request(msg).await;
        assert_eq!(answer["type"], "video.answer", "{answer}");
        self.media
            .accept_answer(answer["sdp"].as_str().expect("sdp"))
            .expect("the server's answer is accepted");
    }

    /// Sends a request with a fresh id and returns the frame answering it (its reply, an
    /// `ack` or an `error`), handling anything else that arrives meanwhile.
    async fn request(&mut self, mut msg: Value) -> Value {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        msg["id"] = json!(id);
        send_text(&mut self.ws, msg.to_string()).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(f) = self.read(Duration::from_millis(20)).await
                && f["id"] == json!(id)
            {
                return f;
            }
            self.media.pump(Duration::from_millis(2)).await;
        }
        panic!("no reply to {id} within 10 s");
    }

    /// Reads one frame (if one arrives within `wait`) and reacts to server offers.
    async fn read(&mut self, wait: Duration) -> Option<Value> {
        let f = match tokio::time::timeout(wait, self.ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Frame::Text(t)))) => serde_json::from_slice::<Value>(&t).expect("json"),
            Ok(Some(Ok(_))) => return None,
            Ok(other) => panic!("socket of user {} ended: {other:?}", self.user),
        };
        self.handle(&f).await;
        self.frames.push(f.clone());
        Some(f)
    }

    /// Reacts to a server frame: answers offers, counts acks of our answers.
    async fn handle(&mut self, f: &Value) {
        if f["type"] == "video.offer" {
            self.tracks = f["tracks"]
                .as_array()
                .expect("tracks")
                .iter()
                .map(|t| {
                    let mid = t["mid"].as_str().expect("mid").to_string();
                    let user = t["user_id"].as_i64().expect("user");
                    (
                        mid,
                        (user, t["source"].as_str().expect("source").to_string()),
                    )
                })
                .collect();
            let answer = self
                .media
                .accept_offer(f["sdp"].as_str().expect("sdp"))
                .expect("the server's offer is acceptable");
            self.answers_sent += 1;
            let msg = json!({"type": "video.answer", "id": format!("a{}", self.answers_sent),
                "study_id": self.study, "sdp": answer});
            send_text(&mut self.ws, msg.to_string()).await;
        }
        if f["type"] == "ack" && f["id"].as_str().is_some_and(|i| i.starts_with('a')) {
            self.answers_acked += 1;
        }
        if f["type"] == "error" && f["id"].as_str().is_some_and(|i| i.starts_with('a')) {
            panic!("user {}: our answer was refused: {f}", self.user);
        }
    }

    /// Sends a key frame on each published source now and then: the server offers a
    /// track to the others only once media arrived on it.
    fn announce(&mut self) {
        if !self.media.connected
            || self
                .last_announce
                .is_some_and(|t| t.elapsed() < ANNOUNCE_EVERY)
        {
            return;
        }
        self.last_announce = Some(Instant::now());
        let user = self.user;
        self.media
            .announce(|source| pattern(user, source, ANNOUNCE, 60));
    }

    async fn step(&mut self) {
        while self.read(Duration::from_millis(1)).await.is_some() {}
        self.media.pump(Duration::from_millis(4)).await;
    }

    /// Frames received from `publisher`'s `source`, in arrival order.
    pub(crate) fn got(
        &self,
        publisher: i64,
        source: &str,
    ) -> Vec<&studyon::live::video::client::Received> {
        self.media
            .received
            .iter()
            .filter(|r| {
                r.data.get(2..4) != Some(&ANNOUNCE.to_be_bytes()[..])
                    && self
                        .tracks
                        .get(&r.mid.to_string())
                        .is_some_and(|(u, s)| *u == publisher && s == source)
            })
            .collect()
    }

    fn has_tracks_of(&self, others: &[i64], per_user: usize) -> bool {
        others
            .iter()
            .all(|u| self.tracks.values().filter(|(p, _)| p == u).count() == per_user)
    }

    fn saw(&self, ty: &str) -> Option<&Value> {
        self.frames.iter().rev().find(|f| f["type"] == ty)
    }
}

async fn run(parts: &mut [Part], dur: Duration) {
    let deadline = Instant::now() + dur;
    while Instant::now() < deadline {
        for p in parts.iter_mut() {
            p.step().await;
        }
    }
}

/// Runs everyone until `done` holds (bounded). Meanwhile each participant announces its
/// tracks, so that waiting for them to reach the others ends.
async fn until(parts: &mut [Part], what: &str, done: impl Fn(&[Part]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(parts) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for p in parts.iter_mut() {
            p.announce();
            p.step().await;
        }
    }
}

/// Until every participant is connected and receives every other one's `per_user` tracks.
pub(crate) async fn until_meshed(parts: &mut [Part], per_user: usize) {
    let users: Vec<i64> = parts.iter().map(|p| p.user).collect();
    until(parts, "every track negotiated", |ps| {
        ps.iter().all(|p| {
            let others: Vec<i64> = users.iter().copied().filter(|u| *u != p.user).collect();
            p.media.connected
                && p.has_tracks_of(&others, per_user)
                && p.answers_acked == p.answers_sent
        })
    })
    .await;
}

/// Each publisher sends `n` audio frames and `n` video frames (the first a key frame),
/// paced at 10 ms, starting its sequence at `from`.
pub(crate) async fn publish_burst(parts: &mut [Part], who: &[usize], from: u16, n: u16) {
    for seq in from..from + n {
        for &i in who {
            let user = parts[i].user;
            assert!(
                parts[i]
                    .media
                    .send(Source::Mic, &pattern(user, Source::Mic, seq, 60), false)
            );
            let key = seq == from;
            if parts[i].media.sending.contains_key(&Source::Camera) {
                let frame = pattern(user, Source::Camera, seq, 300);
                assert!(parts[i].media.send(Source::Camera, &frame, key));
            }
        }
        run(parts, Duration::from_millis(10)).await;
    }
    run(parts, Duration::from_millis(500)).await;
}

pub(crate) fn seqs(frames: &[&studyon::live::video::client::Received]) -> Vec<u16> {
    frames
        .iter()
        .map(|r| u16::from_be_bytes([r.data[2], r.data[3]]))
        .collect()
}

/// A leader and two members in a study's call, each publishing microphone and camera, and
/// every track negotiated: (the study, the three, their participants).
async fn meshed_trio(s: &studyon::server::RunningServer) -> (i64, [Session; 3], Vec<Part>) {
    let [leader, ann, bob] = signups(s).await;
    let study = study_with_members(s, &leader, &[&ann, &bob]).await;
    let both = [Source::Mic, Source::Camera];
    let mut parts = Vec::new();
    for who in [&leader, &ann, &bob] {
        parts.push(Part::join(s, who, study, &both).await);
    }
    until_meshed(&mut parts, 2).await;
    (study, [leader, ann, bob], parts)
}

async fn forwarding_and_mute(b: &Backend) {
    let s = start(b, &[]).await;
    let (study, _, mut parts) = meshed_trio(&s).await;
    let users: Vec<i64> = parts.iter().map(|p| p.user).collect();

    // Every subscriber receives every publisher's frames, in order, byte for byte.
    publish_burst(&mut parts, &[0, 1, 2], 0, 40).await;
    for p in &parts {
        for &u in users.iter().filter(|u| **u != p.user) {
            let audio = p.got(u, "mic");
            assert_eq!(
                seqs(&audio),
                (0..40).collect::<Vec<_>>(),
                "user {} ← {u} mic",
                p.user
            );
            assert!(
                audio
                    .iter()
                    .all(|r| r.data[0] == u as u8 && r.data.len() == 60)
            );
            let video = p.got(u, "camera");
            assert_eq!(
                seqs(&video),
                (0..40).collect::<Vec<_>>(),
                "user {} ← {u} camera",
                p.user
            );
            assert!(video[0].keyframe && !video[1].keyframe);
        }
    }
    // Everyone spoke (the frames carry a speech-level audio level): an active speaker
    // is announced, and it is one of the participants.
    let speaker = parts[2]
        .saw("video.speaker")
        .expect("an active speaker")
        .clone();
    assert!(
        users.contains(&speaker["user_id"].as_i64().unwrap_or(-1)),
        "{speaker}"
    );
    // The participant list shows everyone connected.
    let list = parts[0]
        .saw("video.participants")
        .expect("participants")
        .clone();
    assert_eq!(list["participants"].as_array().unwrap().len(), 3, "{list}");

    // The leader mutes Ann: her microphone stops reaching the others, her camera does not.
    let r = parts[0]
        .request(json!({"type": "video.mute", "study_id": study, "user_id": users[1]}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    until(&mut parts, "Ann is told", |ps| {
        ps[1].saw("video.muted").is_some()
    })
    .await;
    assert_eq!(parts[1].saw("video.muted").unwrap()["muted"], true);
    let before: Vec<usize> = [0, 2]
        .iter()
        .map(|&i| parts[i].got(users[1], "mic").len())
        .collect();
    let cam_before = parts[2].got(users[1], "camera").len();
    publish_burst(&mut parts, &[1, 0], 100, 20).await;
    for (k, &i) in [0, 2].iter().enumerate() {
        assert_eq!(
            parts[i].got(users[1], "mic").len(),
            before[k],
            "muted audio was forwarded"
        );
    }
    assert_eq!(parts[2].got(users[1], "camera").len(), cam_before + 20);
    // Bob still hears the leader.
    assert_eq!(seqs(&parts[2].got(users[0], "mic")).last(), Some(&119));
    // Ann cannot unmute herself; the leader lets her.
    let r = parts[1]
        .request(json!({"type": "video.media", "study_id": study, "mic": true, "camera": true, "screen": false}))
        .await;
    assert_eq!(r["error"], "muted_by_leader", "{r}");
    let r = parts[2]
        .request(json!({"type": "video.allow_unmute", "study_id": study, "user_id": users[1]}))
        .await;
    assert_eq!(r["error"], "not_leader", "{r}");
    let r = parts[0]
        .request(json!({"type": "video.allow_unmute", "study_id": study, "user_id": users[1]}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    run(&mut parts, Duration::from_millis(200)).await;
    publish_burst(&mut parts, &[1], 200, 10).await;
    assert_eq!(seqs(&parts[2].got(users[1], "mic")).last(), Some(&209));

    // The leader stops Ann's camera. Her client here ignores that and keeps sending: the
    // server forwards none of it, but her microphone still goes out.
    let stop =
        json!({"type": "video.stop", "study_id": study, "user_id": users[1], "source": "camera"});
    let r = parts[2].request(stop.clone()).await;
    assert_eq!(r["error"], "not_leader", "{r}");
    let mut mic = stop.clone();
    mic["source"] = json!("mic");
    let r = parts[0].request(mic).await;
    assert_eq!(r["error"], "validation_failed", "{r}");
    let r = parts[0].request(stop).await;
    assert_eq!(r["type"], "ack", "{r}");
    until(&mut parts, "Ann is told", |ps| {
        ps[1].saw("video.stopped").is_some()
    })
    .await;
    assert_eq!(parts[1].saw("video.stopped").unwrap()["source"], "camera");
    let ann_in = |p: &Part| -> Value {
        p.saw("video.participants").unwrap()["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["user_id"] == users[1])
            .cloned()
            .unwrap()
    };
    assert_eq!(ann_in(&parts[2])["camera"], false);
    let cam_before = parts[2].got(users[1], "camera").len();
    publish_burst(&mut parts, &[1], 300, 10).await;
    assert_eq!(
        parts[2].got(users[1], "camera").len(),
        cam_before,
        "a stopped camera was forwarded"
    );
    assert_eq!(seqs(&parts[2].got(users[1], "mic")).last(), Some(&309));
    // She turns it on again: it is forwarded again, after a key frame request.
    let asked = parts[1].media.keyframe_requests.len();
    let r = parts[1]
        .request(json!({"type": "video.media", "study_id": study, "mic": true, "camera": true, "screen": false}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    until(&mut parts, "a key frame asked of Ann", |ps| {
        ps[1].media.keyframe_requests.len() > asked
    })
    .await;
    publish_burst(&mut parts, &[1], 400, 10).await;
    assert_eq!(seqs(&parts[2].got(users[1], "camera")).last(), Some(&409));

    // Metrics count what was forwarded.
    let m = metrics_text(&s).await;
    assert!(m.contains("studyon_video_forwarded_packets_total"), "{m}");
}
both_backends!(forwarding_and_mute);

/// `who`'s entry in the last `video.participants` `p` saw, and the room's locks there.
fn entry(p: &Part, who: i64) -> (Value, Value) {
    let f = p.saw("video.participants").expect("participants");
    let me = f["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["user_id"] == who)
        .cloned()
        .unwrap_or(Value::Null);
    (me, f["locks"].clone())
}

/// The leader's locks: a locked camera is dropped for everyone but the leader (even from a
/// client that keeps sending), cannot be turned on again until the leader allows that one
/// participant, and stopping them takes the allowance back; a locked microphone mutes
/// everyone but the leader and whoever is allowed, and holds for a joiner.
#[actix_rt::test]
async fn the_leaders_locks_hold_until_allowed() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &[]).await;
    let (study, [_, ann, _], mut parts) = meshed_trio(&s).await;
    let users: Vec<i64> = parts.iter().map(|p| p.user).collect();
    let media = |mic: bool, camera: bool| json!({"type": "video.media", "study_id": study, "mic": mic, "camera": camera, "screen": false});
    for p in parts.iter_mut() {
        let r = p.request(media(true, true)).await;
        assert_eq!(r["type"], "ack", "{r}");
    }

    // Only the leader locks; an unknown source is refused as such.
    let lock = |source: &str, locked: bool| json!({"type": "video.lock", "study_id": study, "source": source, "locked": locked});
    let r = parts[2].request(lock("camera", true)).await;
    assert_eq!(r["error"], "not_leader", "{r}");
    let r = parts[0].request(lock("webcam", true)).await;
    assert_eq!(r["type"], "error", "{r}");
    let r = parts[0].request(lock("camera", true)).await;
    assert_eq!(r["type"], "ack", "{r}");
    until(&mut parts, "Ann and Bob are told", |ps| {
        ps[1].saw("video.stopped").is_some() && ps[2].saw("video.stopped").is_some()
    })
    .await;
    until(&mut parts, "the lock is listed", |ps| {
        entry(&ps[0], users[1]).0["locked"] == json!(["camera"])
    })
    .await;
    let (ann_entry, locks) = entry(&parts[0], users[1]);
    assert_eq!(locks, json!(["camera"]));
    assert_eq!(ann_entry["camera"], false, "{ann_entry}");
    assert_eq!(entry(&parts[0], users[0]).0["locked"], json!([]));

    // Ann's client ignores it and keeps sending: nothing of her camera is forwarded, her
    // microphone and the leader's camera are.
    let cam_before = parts[2].got(users[1], "camera").len();
    let lead_before = parts[2].got(users[0], "camera").len();
    publish_burst(&mut parts, &[0, 1], 100, 10).await;
    assert_eq!(
        parts[2].got(users[1], "camera").len(),
        cam_before,
        "a locked camera was forwarded"
    );
    assert_eq!(seqs(&parts[2].got(users[1], "mic")).last(), Some(&109));
    assert_eq!(parts[2].got(users[0], "camera").len(), lead_before + 10);
    let r = parts[1].request(media(true, true)).await;
    assert_eq!(r["error"], "source_locked", "{r}");
    let r = parts[0].request(media(true, true)).await;
    assert_eq!(r["type"], "ack", "the leader is never held: {r}");

    // The leader allows Ann her camera: she turns it on and it is forwarded again. Bob is
    // still held.
    let allow = |user: i64, source: &str| json!({"type": "video.allow", "study_id": study, "user_id": user, "source": source});
    let r = parts[2].request(allow(users[2], "camera")).await;
    assert_eq!(r["error"], "not_leader", "{r}");
    // Ann asks with a raised hand; being allowed answers it, so it goes down.
    let hand = json!({"type": "video.hand", "study_id": study, "raised": true});
    for i in [1, 2] {
        let r = parts[i].request(hand.clone()).await;
        assert_eq!(r["type"], "ack", "{r}");
    }
    until(&mut parts, "the hands are up", |ps| {
        entry(&ps[0], users[1]).0["hand"] == true && entry(&ps[0], users[2]).0["hand"] == true
    })
    .await;
    let r = parts[0].request(allow(users[1], "camera")).await;
    assert_eq!(r["type"], "ack", "{r}");
    until(&mut parts, "Ann's hand goes down", |ps| {
        entry(&ps[0], users[1]).0["hand"] == false
    })
    .await;
    assert_eq!(
        entry(&parts[0], users[2]).0["hand"],
        true,
        "Bob still waits"
    );
    let r = parts[1].request(media(true, true)).await;
    assert_eq!(r["type"], "ack", "{r}");
    let r = parts[2].request(media(true, true)).await;
    assert_eq!(r["error"], "source_locked", "{r}");
    run(&mut parts, Duration::from_millis(200)).await;
    publish_burst(&mut parts, &[1], 200, 10).await;
    assert_eq!(seqs(&parts[2].got(users[1], "camera")).last(), Some(&209));

    // Stopping her takes the allowance back.
    let r = parts[0]
        .request(json!({"type": "video.stop", "study_id": study, "user_id": users[1], "source": "camera"}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let r = parts[1].request(media(true, true)).await;
    assert_eq!(r["error"], "source_locked", "{r}");

    // A microphone lock mutes everyone but the leader; the leader lets Bob speak.
    let r = parts[0].request(lock("mic", true)).await;
    assert_eq!(r["type"], "ack", "{r}");
    for i in [1, 2] {
        let m = wait_for(&mut parts[i], "video.muted").await;
        assert_eq!(m["muted"], true, "{m}");
    }
    let heard: Vec<usize> = [1, 2]
        .iter()
        .map(|&u| parts[0].got(users[u], "mic").len())
        .collect();
    publish_burst(&mut parts, &[0, 1, 2], 300, 10).await;
    for (k, &u) in [1, 2].iter().enumerate() {
        assert_eq!(
            parts[0].got(users[u], "mic").len(),
            heard[k],
            "a locked microphone was forwarded"
        );
    }
    assert_eq!(seqs(&parts[1].got(users[0], "mic")).last(), Some(&309));
    let r = parts[0].request(allow(users[2], "mic")).await;
    assert_eq!(r["type"], "ack", "{r}");
    assert_eq!(wait_for(&mut parts[2], "video.muted").await["muted"], false);
    until(&mut parts, "Bob's hand goes down", |ps| {
        entry(&ps[0], users[2]).0["hand"] == false
    })
    .await;
    let r = parts[2].request(media(true, false)).await;
    assert_eq!(r["type"], "ack", "{r}");
    let r = parts[1].request(media(true, false)).await;
    assert_eq!(r["error"], "muted_by_leader", "{r}");
    run(&mut parts, Duration::from_millis(200)).await;
    publish_burst(&mut parts, &[1, 2], 400, 10).await;
    assert_eq!(seqs(&parts[0].got(users[2], "mic")).last(), Some(&409));
    assert_eq!(parts[0].got(users[1], "mic").len(), heard[0]);

    // The lock holds for someone joining: Ann's second tab takes her seat muted.
    let mut again = Part::connect(&s, &ann, study).await;
    let r = again
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["type"], "video.joined", "{r}");
    assert_eq!(r["locks"], json!(["mic", "camera"]), "{r}");
    let me = r["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == users[1])
        .cloned()
        .expect("Ann listed");
    assert_eq!(me["muted"], true, "{me}");
    assert_eq!(me["locked"], json!(["camera"]), "{me}");

    // Lifting the locks frees her.
    for source in ["mic", "camera"] {
        let r = parts[0].request(lock(source, false)).await;
        assert_eq!(r["type"], "ack", "{r}");
    }
    assert_eq!(wait_for(&mut again, "video.muted").await["muted"], false);
    let r = again.request(media(true, true)).await;
    assert_eq!(r["type"], "ack", "{r}");
}

/// Runs everyone for `dur` while `who` sends one frame of `source` per 20 ms (sequence
/// numbers from `from`); returns the next sequence number.
async fn send_for(parts: &mut [Part], who: usize, source: Source, from: u16, dur: Duration) -> u16 {
    let deadline = Instant::now() + dur;
    let mut seq = from;
    while Instant::now() < deadline {
        let user = parts[who].user;
        parts[who]
            .media
            .send(source, &pattern(user, source, seq, 100), seq == from);
        seq += 1;
        run(parts, Duration::from_millis(20)).await;
    }
    seq
}

/// A published track reaches the others' offers at its first frame, not at the
/// publisher's offer: a camera or screen line that carries nothing costs no one an
/// m-line (the SFU's polling walks every m-line of a session).
#[actix_rt::test]
async fn a_track_is_offered_at_its_first_frame() {
    let (_b, s, [leader, ann], study) = call_study(&[], 1).await;
    let all = [Source::Mic, Source::Camera, Source::Screen];
    let mut parts = vec![
        Part::join(&s, &leader, study, &[]).await,
        Part::join(&s, &ann, study, &all).await,
    ];
    let ann_id = parts[1].user;
    // Connected and settled, with no media yet: nothing of Ann's is offered.
    let count = |p: &Part, src: &str| p.tracks.values().filter(|(_, s)| s == src).count();
    // (Not `until`: it would announce every track.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while !parts.iter().all(|p| p.media.connected) {
        assert!(Instant::now() < deadline, "not connected");
        run(&mut parts, Duration::from_millis(20)).await;
    }
    run(&mut parts, Duration::from_millis(500)).await;
    assert!(
        parts[0].tracks.values().all(|(u, _)| *u != ann_id),
        "{:?}",
        parts[0].tracks
    );
    // Her microphone speaks: the leader is offered that track only.
    let mut seq = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !parts[0].has_tracks_of(&[ann_id], 1) {
        assert!(Instant::now() < deadline, "the microphone was not offered");
        seq = send_for(&mut parts, 1, Source::Mic, seq, Duration::from_millis(100)).await;
    }
    assert_eq!(count(&parts[0], "mic"), 1, "{:?}", parts[0].tracks);
    let mic_from = seq;
    seq = send_for(&mut parts, 1, Source::Mic, seq, Duration::from_millis(500)).await;
    let got: Vec<u16> = seqs(&parts[0].got(ann_id, "mic"));
    assert!(
        got.contains(&mic_from) && got.contains(&(seq - 1)),
        "the microphone's frames arrive once offered: {got:?}"
    );
    assert!(
        parts[0].has_tracks_of(&[ann_id], 1),
        "{:?}",
        parts[0].tracks
    );
    // Her camera starts: now it is offered too, and its frames arrive. The screen, which
    // never sent, is still not.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut cam = 0;
    while !parts[0].has_tracks_of(&[ann_id], 2) {
        assert!(Instant::now() < deadline, "the camera was not offered");
        cam = send_for(
            &mut parts,
            1,
            Source::Camera,
            cam,
            Duration::from_millis(100),
        )
        .await;
    }
    send_for(
        &mut parts,
        1,
        Source::Camera,
        cam,
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(count(&parts[0], "camera"), 1, "{:?}", parts[0].tracks);
    assert_eq!(count(&parts[0], "screen"), 0, "{:?}", parts[0].tracks);
    assert!(
        !parts[0].got(ann_id, "camera").is_empty(),
        "the camera's frames arrive once offered"
    );
}

/// A participant who joins late receives the others' tracks, and the publisher is asked
/// for a key frame at once, so the newcomer's decoder can start.
#[actix_rt::test]
async fn a_late_joiner_gets_a_key_frame_quickly() {
    let (_b, s, [leader, ann], study) = call_study(&[], 1).await;
    let mut parts = vec![Part::join(&s, &leader, study, &[Source::Camera]).await];
    until(&mut parts, "the leader connects", |ps| {
        ps[0].media.connected
    })
    .await;
    let asked_before = parts[0].media.keyframe_requests.len();
    parts.push(Part::join(&s, &ann, study, &[]).await);
    let leader_id = parts[0].user;
    until(&mut parts, "Ann subscribes", |ps| {
        ps[1].media.connected
            && ps[1].has_tracks_of(&[leader_id], 1)
            && ps[1].answers_acked == ps[1].answers_sent
    })
    .await;
    let subscribed = Instant::now();
    // The publisher sends delta frames until asked, then one key frame.
    let mut seq = 0u16;
    let deadline = Instant::now() + Duration::from_secs(5);
    while parts[0].media.keyframe_requests.len() == asked_before {
        assert!(
            Instant::now() < deadline,
            "no key frame request reached the publisher"
        );
        seq += 1;
        parts[0].media.send(
            Source::Camera,
            &pattern(leader_id, Source::Camera, seq, 200),
            false,
        );
        run(&mut parts, Duration::from_millis(20)).await;
    }
    let asked = parts[0].media.keyframe_requests.last().unwrap().2;
    assert!(
        asked.duration_since(subscribed) < Duration::from_secs(2),
        "asked after {:?}",
        asked - subscribed
    );
    seq += 1;
    parts[0].media.send(
        Source::Camera,
        &pattern(leader_id, Source::Camera, seq, 200),
        true,
    );
    run(&mut parts, Duration::from_millis(300)).await;
    let got = parts[1].got(leader_id, "camera");
    assert!(
        got.iter().any(|r| r.keyframe),
        "the key frame reached the late joiner"
    );

    // A subscriber that cannot decode asks for a key frame itself (a browser sends a PLI
    // after losses it could not repair): the server passes it on to the publisher.
    let mid = got[0].mid;
    run(&mut parts, route::KEYFRAME_THROTTLE).await;
    let asked_before = parts[0].media.keyframe_requests.len();
    parts[1]
        .media
        .rtc
        .writer(mid)
        .expect("Ann's m-line for the leader's camera")
        .request_keyframe(None, KeyframeRequestKind::Pli)
        .expect("a PLI");
    let deadline = Instant::now() + Duration::from_secs(3);
    while parts[0].media.keyframe_requests.len() == asked_before {
        assert!(
            Instant::now() < deadline,
            "Ann's key frame request did not reach the publisher"
        );
        run(&mut parts, Duration::from_millis(20)).await;
    }
}

/// Bad input gets a stable code and the room goes on for everyone else.
#[actix_rt::test]
async fn bad_signaling_is_refused_and_the_room_goes_on() {
    let (_b, s, [leader, ann, bob, stranger], study) =
        call_study(&["--video-max-participants", "2"], 2).await;

    // Not a member; not joined yet.
    let mut x = Part::connect(&s, &stranger, study).await;
    let r = x
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["error"], "not_found", "{r}");
    let r = x
        .request(json!({"type": "video.offer", "study_id": study, "sdp": "v=0", "sources": {}}))
        .await;
    assert_eq!(r["error"], "not_in_room", "{r}");
    let r = x
        .request(json!({"type": "video.join", "study_id": 999_999}))
        .await;
    assert_eq!(r["error"], "not_found", "{r}");

    let mut parts = vec![Part::join(&s, &leader, study, &[Source::Mic, Source::Camera]).await];
    let mut a = Part::connect(&s, &ann, study).await;
    let r = a
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["type"], "video.joined");
    // Malformed SDP, too many sources, an answer nobody asked for, a moderation request
    // from a member, a mute of someone not in the room.
    let r = a
        .request(json!({"type": "video.offer", "study_id": study, "sdp": "garbage", "sources": {}}))
        .await;
    assert_eq!(r["error"], "bad_sdp", "{r}");
    let sources = json!({"0": "mic", "1": "camera", "2": "screen", "3": "mic"});
    let r = a
        .request(
            json!({"type": "video.offer", "study_id": study, "sdp": "v=0", "sources": sources}),
        )
        .await;
    assert_eq!(r["error"], "too_many_tracks", "{r}");
    let r = a.request(json!({"type": "video.offer", "study_id": study, "sdp": "v=0", "sources": {"0": "mic", "1": "mic"}})).await;
    assert_eq!(r["error"], "too_many_tracks", "{r}");
    let r = a
        .request(json!({"type": "video.answer", "study_id": study, "sdp": "v=0\r\n"}))
        .await;
    assert!(
        r["error"] == "bad_sdp" || r["error"] == "not_in_room" || r["error"] == "no_pending_offer",
        "{r}"
    );
    let r = a
        .request(json!({"type": "video.end", "study_id": study}))
        .await;
    assert_eq!(r["error"], "not_leader", "{r}");
    let r = parts[0]
        .request(json!({"type": "video.mute", "study_id": study, "user_id": uid(&stranger)}))
        .await;
    assert_eq!(r["error"], "not_in_room", "{r}");
    // A flood of offers hits the per-participant signaling rate.
    let mut limited = false;
    for _ in 0..10 {
        let r = a
            .request(
                json!({"type": "video.offer", "study_id": study, "sdp": "garbage", "sources": {}}),
            )
            .await;
        limited |= r["error"] == "rate_limited";
    }
    assert!(limited, "the signaling rate held");
    // The cap: a third participant is refused.
    let mut c = Part::connect(&s, &bob, study).await;
    let r = c
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["error"], "video_full", "{r}");

    // The room still works: Ann publishes after her bucket refills, and the leader gets it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.publish(&[Source::Mic]).await;
    parts.push(a);
    until_meshed_counts(&mut parts).await;
    publish_burst(&mut parts, &[1], 0, 10).await;
    let ann_id = parts[1].user;
    assert_eq!(
        seqs(&parts[0].got(ann_id, "mic")),
        (0..10).collect::<Vec<_>>()
    );
}

async fn until_meshed_counts(parts: &mut [Part]) {
    let leader = parts[0].user;
    let ann = parts[1].user;
    until(parts, "leader and Ann meshed", |ps| {
        ps[0].media.connected
            && ps[1].media.connected
            && ps[0].has_tracks_of(&[ann], 1)
            && ps[1].has_tracks_of(&[leader], 2)
            && ps.iter().all(|p| p.answers_acked == p.answers_sent)
    })
    .await;
}

/// Moderation and membership: removal by the leader, removal from the study, ending the
/// room, and a second tab taking over a seat.
#[actix_rt::test]
async fn removal_end_and_takeover() {
    let (_b, s, [leader, ann, bob], study) = call_study(&[], 2).await;
    let mut l = Part::connect(&s, &leader, study).await;
    let mut a = Part::connect(&s, &ann, study).await;
    let mut bb = Part::connect(&s, &bob, study).await;
    for p in [&mut l, &mut a, &mut bb] {
        let r = p
            .request(json!({"type": "video.join", "study_id": study}))
            .await;
        assert_eq!(r["type"], "video.joined", "{r}");
    }
    // Raise hand and media state reach everyone.
    let r = a
        .request(json!({"type": "video.hand", "study_id": study, "raised": true}))
        .await;
    assert_eq!(r["type"], "ack");
    read_until(&mut l, "Ann's hand shown", |l| {
        l.saw("video.participants").is_some_and(|f| {
            f["participants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["user_id"] == uid(&ann) && p["hand"] == true)
        })
    })
    .await;

    // A muted participant cannot shed the mute by leaving and joining again.
    let r = l
        .request(json!({"type": "video.mute", "study_id": study, "user_id": uid(&ann)}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let r = a
        .request(json!({"type": "video.leave", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let r = a
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    let me = r["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == uid(&ann))
        .cloned();
    assert_eq!(me.expect("Ann listed")["muted"], true, "{r}");
    let r = a.request(json!({"type": "video.media", "study_id": study, "mic": true, "camera": false, "screen": false})).await;
    assert_eq!(r["error"], "muted_by_leader", "{r}");

    // The leader removes Bob from the room.
    let r = l
        .request(json!({"type": "video.remove", "study_id": study, "user_id": uid(&bob)}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let left = wait_for(&mut bb, "video.left").await;
    assert_eq!(left["reason"], "removed");
    let r = bb
        .request(json!({"type": "video.hand", "study_id": study, "raised": true}))
        .await;
    assert_eq!(r["error"], "not_in_room", "{r}");

    // Ann opens a second tab and joins there: the first tab is told it was replaced.
    let mut a2 = Part::connect(&s, &ann, study).await;
    let r = a2
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["type"], "video.joined");
    assert_eq!(wait_for(&mut a, "video.left").await["reason"], "replaced");

    // The leader removes Ann from the study: she is out of the room at once.
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{study}/members/{}/remove", uid(&ann)),
        json!({ "ban": false }),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204, "{body}");
    assert_eq!(
        wait_for(&mut a2, "video.left").await["reason"],
        "not_member"
    );
    let r = a2
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["error"], "not_found", "{r}");

    // Bob rejoins; the leader ends the room for everyone.
    let r = bb
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["type"], "video.joined");
    let r = l
        .request(json!({"type": "video.end", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    assert_eq!(wait_for(&mut bb, "video.left").await["reason"], "ended");
    assert_eq!(wait_for(&mut l, "video.left").await["reason"], "ended");
}

/// The next `call_changed` study event `p` got: (who is in the call, its version).
async fn next_call(p: &mut Part) -> (Vec<i64>, i64) {
    let f = next_frame(p, "call_changed", |f| {
        f["type"] == "study.event" && f["event"]["kind"] == "call_changed"
    })
    .await;
    let e = &f["event"];
    let ids = e["user_ids"].as_array().expect("user_ids");
    let ids = ids.iter().map(|u| u.as_i64().expect("id")).collect();
    (ids, e["version"].as_i64().expect("version"))
}

/// A member with the study page open sees who is in the call without joining it: from
/// `video.status` when the page opens and from `call_changed` study events after that.
/// Toggles and hands are not news to the study; non-members learn nothing.
#[actix_rt::test]
async fn the_study_page_sees_a_call_in_progress() {
    let (_b, s, [leader, ann, bob, eve], study) = call_study(&[], 2).await;
    let mut watcher = Part::connect(&s, &bob, study).await;
    let r = watcher
        .request(json!({"type": "study.watch", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let status = json!({"type": "video.status", "study_id": study});
    let r = watcher.request(status.clone()).await;
    assert_eq!(r["type"], "video.status", "{r}");
    assert_eq!(r["user_ids"], json!([]), "no call yet: {r}");
    // A non-member may watch the public study page, but not see its call.
    let mut outsider = Part::connect(&s, &eve, study).await;
    let r = outsider
        .request(json!({"type": "study.watch", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let r = outsider.request(status.clone()).await;
    assert_eq!(r["error"], "not_found", "{r}");

    let mut a = Part::connect(&s, &ann, study).await;
    let r = a
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["type"], "video.joined", "{r}");
    let (ids, v1) = next_call(&mut watcher).await;
    assert_eq!(ids, vec![uid(&ann)]);
    let r = watcher.request(status.clone()).await;
    assert_eq!(
        (&r["user_ids"], r["version"].as_i64()),
        (&json!([uid(&ann)]), Some(v1)),
        "{r}"
    );

    let mut l = Part::connect(&s, &leader, study).await;
    let r = l
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["type"], "video.joined", "{r}");
    let (mut ids, v2) = next_call(&mut watcher).await;
    ids.sort();
    let mut both = vec![uid(&leader), uid(&ann)];
    both.sort();
    assert_eq!(ids, both);
    assert!(v2 > v1, "versions grow: {v1} then {v2}");

    // A raised hand is the call's business: the next news is Ann leaving.
    let r = a
        .request(json!({"type": "video.hand", "study_id": study, "raised": true}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let r = a
        .request(json!({"type": "video.leave", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let (ids, v3) = next_call(&mut watcher).await;
    assert_eq!(ids, vec![uid(&leader)]);
    assert!(v3 > v2);

    // Ann joins and leaves in a loop: the page gets at most one event per 250 ms gap
    // (and one at its end), and the last says where things stand.
    let burst = Instant::now();
    for _ in 0..8 {
        let r = a
            .request(json!({"type": "video.join", "study_id": study}))
            .await;
        assert_eq!(r["type"], "video.joined", "{r}");
        let r = a
            .request(json!({"type": "video.leave", "study_id": study}))
            .await;
        assert_eq!(r["type"], "ack", "{r}");
    }
    let took = burst.elapsed();
    let settle = Instant::now() + Duration::from_millis(600);
    while Instant::now() < settle {
        watcher.read(Duration::from_millis(50)).await;
    }
    let news: Vec<&Value> = watcher.frames[watcher.mark..]
        .iter()
        .filter(|f| f["type"] == "study.event" && f["event"]["kind"] == "call_changed")
        .collect();
    let most = took.as_millis() as usize / 250 + 2;
    assert!(
        news.len() <= most,
        "{} events in {took:?} (at most {most})",
        news.len()
    );
    let v3 = match news.last() {
        Some(last) => {
            assert_eq!(last["event"]["user_ids"], json!([uid(&leader)]), "{last}");
            last["event"]["version"].as_i64().unwrap()
        }
        None => v3,
    };
    watcher.mark = watcher.frames.len();

    // The leader ends the call: the page learns it is over.
    let r = l
        .request(json!({"type": "video.end", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let (ids, v4) = next_call(&mut watcher).await;
    assert!(ids.is_empty() && v4 > v3, "{ids:?} at {v4}");
    let r = watcher.request(status).await;
    assert_eq!(r["user_ids"], json!([]), "{r}");
    // Bob and the leader were told once that Ann started the call: not again when the
    // leader joined it, nor when the leader starts the next one within the notice gap (Ann
    // would be told of that one). Ann was not told of her own call; Eve, not a member,
    // of nothing.
    let r = l
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["type"], "video.joined", "{r}");
    let started = |n: &Value| n["kind"] == "call_started" && n["payload"]["study_id"] == study;
    let mine = |body: &Value| -> Vec<Value> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| started(n))
            .cloned()
            .collect()
    };
    let body =
        notifications_until(&s, &bob, "Bob told of Ann's call", |b| !mine(b).is_empty()).await;
    let [n] = &mine(&body)[..] else {
        panic!("one call_started for Bob: {body}");
    };
    assert_eq!(n["payload"]["by"]["id"], uid(&ann), "{n}");
    assert!(n["payload"]["study_title"].is_string(), "{n}");
    for (who, want) in [(&leader, 1), (&ann, 0), (&eve, 0)] {
        let (_, body) = get(&s, "/api/notifications?limit=50", Some(&who.cookie)).await;
        let n = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| started(n))
            .count();
        assert_eq!(n, want, "call_started for user {}: {body}", uid(who));
    }

    // The watching outsider was told nothing about the call.
    outsider.read(Duration::from_millis(100)).await;
    assert!(
        !outsider
            .frames
            .iter()
            .any(|f| f["event"]["kind"] == "call_changed"),
        "{:?}",
        outsider.frames
    );
}

/// A room's new life tells the study's watchers who is in the call even when that is no
/// one: after a crash the registry restarts the room empty, and the members' pages must not
/// go on showing the call of its last life. (The restart is the same load this test's
/// start-up by the registry is.)
#[actix_rt::test]
async fn a_room_started_empty_tells_the_study_no_call_is_on() {
    let (_b, s, [_leader, bob], study) = call_study(&[], 1).await;
    let mut watcher = Part::connect(&s, &bob, study).await;
    let r = watcher
        .request(json!({"type": "study.watch", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let reply = s
        .state
        .registry
        .ask::<studyon::live::video::VideoRoom>(
            studyon::ids::StudyId(study),
            studyon::live::video::VideoMsg::Status,
        )
        .await
        .expect("the room starts");
    assert!(matches!(
        reply,
        Ok(studyon::live::video::VideoReply::Status { ref user_ids, .. }) if user_ids.is_empty()
    ));
    let (ids, version) = next_call(&mut watcher).await;
    assert!(ids.is_empty() && version > 0, "{ids:?} at {version}");
}

/// A client coming back after a dropped connection (`rejoin`) into an empty call tells no
/// one a call started (after a server restart the first one back would); the next call
/// someone starts is told.
#[actix_rt::test]
async fn a_rejoin_into_an_empty_call_notifies_no_one() {
    let (_b, s, [leader, ann], study) = call_study(&[], 1).await;
    let started = |body: &Value, by: i64| -> usize {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "call_started" && n["payload"]["by"]["id"] == by)
            .count()
    };
    let mut a = Part::connect(&s, &ann, study).await;
    let r = a
        .request(json!({"type": "video.join", "study_id": study, "rejoin": true}))
        .await;
    assert_eq!(r["type"], "video.joined", "{r}");
    let r = a
        .request(json!({"type": "video.leave", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let mut l = Part::connect(&s, &leader, study).await;
    let r = l
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["type"], "video.joined", "{r}");
    notifications_until(&s, &ann, "Ann told the leader started a call", |b| {
        started(b, uid(&leader)) == 1
    })
    .await;
    let (_, body) = get(&s, "/api/notifications?limit=50", Some(&leader.cookie)).await;
    assert_eq!(started(&body, uid(&ann)), 0, "{body}");
}

/// The ten-minute gap between two `call_started` notices of a study holds across the
/// room's idle stop (a minute after the last one leaves by default; a second here): the
/// room that starts for the next join finds the last notice in the store.
#[actix_rt::test]
async fn a_call_notice_waits_out_its_gap_across_an_idle_stop() {
    let (_b, s, [leader, ann], study) = call_study(&["--actor-idle-secs", "1"], 1).await;
    let unread_started = |body: &Value| -> usize {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "call_started" && n["read"] == false)
            .count()
    };
    let mut a = Part::connect(&s, &ann, study).await;
    let join = json!({"type": "video.join", "study_id": study});
    let leave = json!({"type": "video.leave", "study_id": study});
    assert_eq!(a.request(join.clone()).await["type"], "video.joined");
    assert_eq!(a.request(leave.clone()).await["type"], "ack");
    notifications_until(&s, &leader, "a call notice", |b| unread_started(b) == 1).await;
    let (st, body, _) = post(
        &s,
        "/api/notifications/read_all",
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert!(st == 200 || st == 204, "{st} {body}");
    // The empty room stops for idleness.
    let key = <studyon::live::video::VideoRoom as studyon::registry::KeyedActor>::key(
        studyon::ids::StudyId(study),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.state.registry.is_running_here(&key) {
        assert!(Instant::now() < deadline, "the empty room did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Ann opens the call again within the gap: a new room, and no new notice.
    assert_eq!(a.request(join).await["type"], "video.joined");
    assert!(s.state.registry.is_running_here(&key));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, body) = get(&s, "/api/notifications?limit=50", Some(&leader.cookie)).await;
    assert_eq!(
        unread_started(&body),
        0,
        "told again within the gap: {body}"
    );
}

/// The hands `p` saw raised in its last `video.participants`, in the order raised.
fn hands(p: &Part) -> Vec<i64> {
    let list = p.saw("video.participants").expect("participants")["participants"]
        .as_array()
        .expect("list")
        .clone();
    let mut up: Vec<(i64, i64)> = list
        .iter()
        .filter(|x| x["hand"] == true)
        .map(|x| {
            (
                x["hand_at"].as_i64().expect("hand_at"),
                x["user_id"].as_i64().unwrap(),
            )
        })
        .collect();
    up.sort();
    assert!(
        list.iter()
            .all(|x| (x["hand"] == true) == x["hand_at"].is_i64()),
        "hand_at only while the hand is up: {list:?}"
    );
    up.into_iter().map(|(_, u)| u).collect()
}

/// Waits until `p`'s last participant list shows exactly these hands up, in this order.
async fn until_hands(p: &mut Part, want: &[i64]) {
    read_until(p, &format!("hands {want:?} shown"), |p| {
        p.saw("video.participants").is_some() && hands(p) == want
    })
    .await;
}

/// Raised hands are listed in the order raised; the leader lowers one or all of them, and
/// no one else may.
#[actix_rt::test]
async fn hands_go_up_in_order_and_the_leader_lowers_them() {
    let (_b, s, [leader, ann, bob, cy], study) = call_study(&[], 3).await;
    let mut parts = Vec::new();
    for who in [&leader, &ann, &bob] {
        let mut p = Part::connect(&s, who, study).await;
        let r = p
            .request(json!({"type": "video.join", "study_id": study}))
            .await;
        assert_eq!(r["type"], "video.joined", "{r}");
        parts.push(p);
    }
    let [l, a, bb] = &mut parts[..] else {
        unreachable!()
    };
    let raise = |up: bool| json!({"type": "video.hand", "study_id": study, "raised": up});
    assert_eq!(bb.request(raise(true)).await["type"], "ack");
    // Later by the server's clock (milliseconds).
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(a.request(raise(true)).await["type"], "ack");
    // Raising again keeps Bob's place.
    assert_eq!(bb.request(raise(true)).await["type"], "ack");
    until_hands(l, &[uid(&bob), uid(&ann)]).await;

    // Only the leader lowers others' hands.
    let lower = |u: i64| json!({"type": "video.lower_hand", "study_id": study, "user_id": u});
    let r = a.request(lower(uid(&bob))).await;
    assert_eq!(r["error"], "not_leader", "{r}");
    let r = l.request(lower(uid(&cy))).await;
    assert_eq!(r["error"], "not_in_room", "{r}");
    let r = l.request(lower(uid(&bob))).await;
    assert_eq!(r["type"], "ack", "{r}");
    until_hands(bb, &[uid(&ann)]).await;

    assert_eq!(bb.request(raise(true)).await["type"], "ack");
    until_hands(l, &[uid(&ann), uid(&bob)]).await;
    let r = a
        .request(json!({"type": "video.lower_hands", "study_id": study}))
        .await;
    assert_eq!(r["error"], "not_leader", "{r}");
    let r = l
        .request(json!({"type": "video.lower_hands", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    until_hands(a, &[]).await;
}

/// The leader's mutes and locks are saved before they are acknowledged: after a server
/// restart the call resumes with them; once the leader ends it, the next call is clean.
async fn moderation_outlives_a_restart(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, ann] = signups(&s).await;
    let study = study_with_members(&s, &leader, &[&ann]).await;
    let join = json!({"type": "video.join", "study_id": study});
    let mut l = Part::connect(&s, &leader, study).await;
    assert_eq!(l.request(join.clone()).await["type"], "video.joined");
    let mut a = Part::connect(&s, &ann, study).await;
    assert_eq!(a.request(join.clone()).await["type"], "video.joined");
    let r = l
        .request(
            json!({"type": "video.lock", "study_id": study, "source": "camera", "locked": true}),
        )
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let r = l
        .request(json!({"type": "video.mute", "study_id": study, "user_id": uid(&ann)}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    drop((l, a));
    s.shutdown().await;

    let s = start(b, &[]).await;
    let ann_in = |r: &Value| -> Value {
        r["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["user_id"] == uid(&ann))
            .cloned()
            .expect("Ann listed")
    };
    let mut a = Part::connect(&s, &ann, study).await;
    let r = a.request(join.clone()).await;
    assert_eq!(r["type"], "video.joined", "{r}");
    assert_eq!(r["locks"], json!(["camera"]), "{r}");
    assert_eq!(ann_in(&r)["muted"], true, "{r}");
    assert_eq!(ann_in(&r)["locked"], json!(["camera"]), "{r}");
    let r = a.request(json!({"type": "video.media", "study_id": study, "mic": true, "camera": false, "screen": false})).await;
    assert_eq!(r["error"], "muted_by_leader", "{r}");

    // The leader ends the call: the next one starts clean, after a restart too.
    let mut l = Part::connect(&s, &leader, study).await;
    assert_eq!(l.request(join.clone()).await["type"], "video.joined");
    let r = l
        .request(json!({"type": "video.end", "study_id": study}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    drop((l, a));
    s.shutdown().await;
    let s = start(b, &[]).await;
    let mut a = Part::connect(&s, &ann, study).await;
    let r = a.request(join).await;
    assert_eq!(r["locks"], json!([]), "{r}");
    assert_eq!(ann_in(&r)["muted"], false, "{r}");
    drop(a);
    s.shutdown().await;
}
both_backends!(moderation_outlives_a_restart);

/// A participant whose media connection closes (its DTLS says close_notify, as a browser's
/// closed peer connection does) loses its seat as `connection_lost`, while its socket
/// stays; the others see it go.
#[actix_rt::test]
async fn a_closed_media_connection_frees_the_seat() {
    let (_b, s, [leader, ann], study) = call_study(&[], 1).await;
    let mut parts = vec![
        Part::join(&s, &leader, study, &[Source::Mic]).await,
        Part::join(&s, &ann, study, &[Source::Mic]).await,
    ];
    until(&mut parts, "both connected", |ps| {
        ps.iter().all(|p| p.media.connected)
    })
    .await;
    let ann_id = parts[1].user;
    let in_list = |p: &Part| {
        p.saw("video.participants").is_some_and(|f| {
            f["participants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["user_id"] == ann_id)
        })
    };
    read_until(&mut parts[0], "Ann listed", in_list).await;
    parts[1].media.rtc.close().expect("str0m closes");
    // Sends the close_notify.
    parts[1].media.pump(Duration::from_millis(20)).await;
    let left = wait_for(&mut parts[1], "video.left").await;
    assert_eq!(left["reason"], "connection_lost", "{left}");
    read_until(&mut parts[0], "Ann gone from the list", |p| !in_list(p)).await;
    // Her socket is still good: she may join again.
    let r = parts[1]
        .request(json!({"type": "video.join", "study_id": study, "rejoin": true}))
        .await;
    assert_eq!(r["type"], "video.joined", "{r}");
}

/// Reactions go to everyone in the room, the one reacting too, and to no one outside it;
/// only the fixed set is taken, and a flood is cut off at the rate.
#[actix_rt::test]
async fn reactions_reach_the_room_at_a_bounded_rate() {
    let (_b, s, [leader, ann, bob], study) = call_study(&[], 2).await;
    let mut parts = Vec::new();
    for who in [&leader, &ann] {
        let mut p = Part::connect(&s, who, study).await;
        let r = p
            .request(json!({"type": "video.join", "study_id": study}))
            .await;
        assert_eq!(r["type"], "video.joined", "{r}");
        parts.push(p);
    }
    let mut outside = Part::connect(&s, &bob, study).await;
    let react = |r: &str| json!({"type": "video.react", "study_id": study, "reaction": r});
    let [l, a] = &mut parts[..] else {
        unreachable!()
    };
    let r = a.request(react("clap")).await;
    assert_eq!(r["type"], "ack", "{r}");
    for p in [&mut *l, &mut *a] {
        let f = wait_for(p, "video.reaction").await;
        assert_eq!(
            (&f["user_id"], &f["reaction"]),
            (&json!(uid(&ann)), &json!("clap")),
            "{f}"
        );
    }
    let r = outside.request(react("heart")).await;
    assert_eq!(r["error"], "not_in_room", "{r}");
    let r = a.request(react("<script>")).await;
    assert_eq!(r["type"], "error", "only the fixed set: {r}");

    // A flood: the burst passes, the rest is refused, and the leader sees only the burst.
    let seen = l.frames.len();
    let mut refused = 0;
    for _ in 0..12 {
        let r = a.request(react("party")).await;
        if r["error"] == "rate_limited" {
            refused += 1;
        } else {
            assert_eq!(r["type"], "ack", "{r}");
        }
    }
    assert!(refused >= 5, "{refused} of 12 refused");
    let settle = Instant::now() + Duration::from_millis(300);
    while Instant::now() < settle {
        l.read(Duration::from_millis(20)).await;
    }
    let shown = l.frames[seen..]
        .iter()
        .filter(|f| f["type"] == "video.reaction" && f["reaction"] == "party")
        .count();
    assert_eq!(shown, 12 - refused, "one shown per accepted reaction");
    outside.read(Duration::from_millis(50)).await;
    assert!(
        !outside.frames.iter().any(|f| f["type"] == "video.reaction"),
        "nothing reaches a member outside the call"
    );
}

async fn wait_for(p: &mut Part, ty: &str) -> Value {
    next_frame(p, ty, |f| f["type"] == ty).await
}

/// A server on SQLite started with `extra`, `N` users signed up, and a study the first
/// leads with the next `members` of them as its members (any others are strangers to it).
/// The backend comes back to be kept alive: its database goes with it.
async fn call_study<const N: usize>(
    extra: &[&str],
    members: usize,
) -> (Backend, studyon::server::RunningServer, [Session; N], i64) {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, extra).await;
    let users: [Session; N] = signups(&s).await;
    let others: Vec<&Session> = users[1..=members].iter().collect();
    let study = study_with_members(&s, &users[0], &others).await;
    (b, s, users, study)
}

/// The next frame `p` got after its mark that `matches` (read for up to 5 s); the mark
/// moves past it.
async fn next_frame(p: &mut Part, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(i) = p.frames[p.mark..].iter().position(&matches) {
            let f = p.frames[p.mark + i].clone();
            p.mark += i + 1;
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "user {}: no {what} within 5 s",
            p.user
        );
        p.read(Duration::from_millis(50)).await;
    }
}

/// Reads `p`'s frames until `done` holds (for up to 5 s).
async fn read_until(p: &mut Part, what: &str, done: impl Fn(&Part) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(p) {
        assert!(
            Instant::now() < deadline,
            "user {}: {what} not within 5 s",
            p.user
        );
        p.read(Duration::from_millis(50)).await;
    }
}

/// `who`'s notifications, polled until `done` holds of the listing (for up to 5 s).
async fn notifications_until(
    s: &studyon::server::RunningServer,
    who: &Session,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (st, body) = get(s, "/api/notifications?limit=50", Some(&who.cookie)).await;
        assert_eq!(st, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what} not within 5 s: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ICE servers handed out at join carry a TURN credential when TURN is configured.
#[actix_rt::test]
async fn join_hands_out_turn_credentials() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(
        &b,
        &[
            "--turn-urls",
            "turn:127.0.0.1:3478",
            "--turn-secret",
            "s3cret",
        ],
    )
    .await;
    let [leader] = signups(&s).await;
    let study = study_with_members(&s, &leader, &[]).await;
    let mut l = Part::connect(&s, &leader, study).await;
    let r = l
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    let server = &r["ice_servers"][0];
    assert_eq!(server["urls"][0], "turn:127.0.0.1:3478", "{r}");
    let username = server["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, uid(&leader).to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expiry.parse::<u64>().unwrap() > now + 3000);
    assert_eq!(
        server["credential"].as_str().unwrap(),
        studyon::live::video::turn::rest_password("s3cret", username)
    );
}

/// Simulcast: the publisher sends two layers; each subscriber gets the one it asked for,
/// switching only at a key frame of the new layer, which the server asks the publisher for.
/// `who` joins `study`'s room publishing a camera in two simulcast layers, `h` and `l`.
async fn simulcast_camera(s: &impl Target, who: &Session, study: i64) -> Part {
    let mut p = Part::connect(s, who, study).await;
    let r = p
        .request(json!({"type": "video.join", "study_id": study}))
        .await;
    assert_eq!(r["type"], "video.joined");
    let (sdp, named) = p.media.offer_simulcast(&[Source::Camera], &["h", "l"]);
    let answer = p
        .request(json!({"type": "video.offer", "study_id": study, "sdp": sdp, "sources": named}))
        .await;
    assert_eq!(answer["type"], "video.answer", "{answer}");
    p.media
        .accept_answer(answer["sdp"].as_str().unwrap())
        .unwrap();
    p
}

#[actix_rt::test]
async fn simulcast_layers_follow_each_subscribers_choice() {
    let (_b, s, [leader, ann, bob], study) = call_study(&[], 2).await;
    let pub_part = simulcast_camera(&s, &leader, study).await;
    let mut parts = vec![
        pub_part,
        Part::join(&s, &ann, study, &[]).await,
        Part::join(&s, &bob, study, &[]).await,
    ];
    let leader_id = parts[0].user;
    until(&mut parts, "both subscribe", |ps| {
        ps[0].media.connected
            && ps[1..].iter().all(|p| {
                p.media.connected
                    && p.has_tracks_of(&[leader_id], 1)
                    && p.answers_acked == p.answers_sent
            })
    })
    .await;
    // Bob's tile is small: he wants the low layer.
    let r = parts[2]
        .request(
            json!({"type": "video.layer", "study_id": study, "user_id": leader_id, "layer": "low"}),
        )
        .await;
    assert_eq!(r["type"], "ack", "{r}");

    // The layer is the 5th byte of each frame. The publisher answers key frame requests
    // with a key frame on every layer (as browsers do).
    let mut answered = 0;
    let frame = |seq: u16, layer: u8| {
        let mut p = pattern(leader_id, Source::Camera, seq, 200);
        p[4] = layer;
        p
    };
    for seq in 0..60u16 {
        let key = seq == 0 || parts[0].media.keyframe_requests.len() > answered;
        answered = parts[0].media.keyframe_requests.len();
        parts[0]
            .media
            .send_layer(Source::Camera, Some("h"), &frame(seq, b'h'), key);
        parts[0]
            .media
            .send_layer(Source::Camera, Some("l"), &frame(seq, b'l'), key);
        run(&mut parts, Duration::from_millis(15)).await;
        if seq == 30 {
            // Bob moves to the high layer mid-stream.
            let r = parts[2]
                .request(json!({"type": "video.layer", "study_id": study, "user_id": leader_id, "layer": "high"}))
                .await;
            assert_eq!(r["type"], "ack", "{r}");
        }
    }
    run(&mut parts, Duration::from_millis(300)).await;
    let layers = |p: &Part| -> Vec<(u16, u8, bool)> {
        p.got(leader_id, "camera")
            .iter()
            .map(|r| {
                (
                    u16::from_be_bytes([r.data[2], r.data[3]]),
                    r.data[4],
                    r.keyframe,
                )
            })
            .collect()
    };
    let ann_layers = layers(&parts[1]);
    let bob_layers = layers(&parts[2]);
    // Ann (default: high) gets the high layer only, and every frame of it.
    assert!(
        ann_layers.iter().all(|(_, l, _)| *l == b'h'),
        "{ann_layers:?}"
    );
    assert_eq!(ann_layers.len(), 60, "{ann_layers:?}");
    // Bob gets low until his switch, then high from a key frame on; never both at once.
    let first_high = bob_layers
        .iter()
        .position(|(_, l, _)| *l == b'h')
        .expect("Bob switched to high");
    assert!(first_high > 20, "Bob got low first: {bob_layers:?}");
    assert!(bob_layers[..first_high].iter().all(|(_, l, _)| *l == b'l'));
    assert!(
        bob_layers[first_high].2,
        "the switch happened at a key frame: {bob_layers:?}"
    );
    assert!(
        bob_layers[first_high..].iter().all(|(_, l, _)| *l == b'h'),
        "{bob_layers:?}"
    );
    let seqs_bob: Vec<u16> = bob_layers.iter().map(|x| x.0).collect();
    let mut sorted = seqs_bob.clone();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        seqs_bob.len(),
        "no frame twice: {bob_layers:?}"
    );
}

/// A subscriber whose link loses packets gets its losses resent, and is given a lower
/// simulcast layer than it asked for without asking.
#[actix_rt::test]
async fn a_lossy_subscriber_gets_a_lower_layer() {
    let (_b, s, [leader, ann], study) = call_study(&[], 1).await;
    let pub_part = simulcast_camera(&s, &leader, study).await;
    let mut parts = vec![pub_part, Part::join(&s, &ann, study, &[]).await];
    let leader_id = parts[0].user;
    until(&mut parts, "Ann subscribes", |ps| {
        ps[0].media.connected
            && ps[1].media.connected
            && ps[1].has_tracks_of(&[leader_id], 1)
            && ps[1].answers_acked == ps[1].answers_sent
    })
    .await;
    // Ann's link loses every third packet; she asked for nothing, so high.
    parts[1].media.drop_rtp_every = 3;
    let layer_of = |p: &Part| -> Vec<(u8, bool)> {
        p.got(leader_id, "camera")
            .iter()
            .map(|r| (r.data[4], r.keyframe))
            .collect()
    };
    let high_seqs = |p: &Part| -> Vec<u16> {
        p.got(leader_id, "camera")
            .iter()
            .filter(|r| r.data[4] == b'h')
            .map(|r| u16::from_be_bytes([r.data[2], r.data[3]]))
            .collect()
    };
    let mut answered = 0;
    let mut seq = 0u16;
    // Receiver reports come every second or so and str0m sums them up every stats
    // interval (5 s): the cap moves within two intervals.
    let deadline = Instant::now() + sfu::STATS_INTERVAL * 3;
    while !layer_of(&parts[1]).iter().any(|(l, _)| *l == b'l') {
        assert!(
            Instant::now() < deadline,
            "Ann was not moved to the low layer: {:?}",
            layer_of(&parts[1])
        );
        let key = seq == 0 || parts[0].media.keyframe_requests.len() > answered;
        answered = parts[0].media.keyframe_requests.len();
        for rid in ["h", "l"] {
            let mut p = pattern(leader_id, Source::Camera, seq, 200);
            p[4] = rid.as_bytes()[0];
            parts[0]
                .media
                .send_layer(Source::Camera, Some(rid), &p, key);
        }
        seq = seq.wrapping_add(1);
        run(&mut parts, Duration::from_millis(20)).await;
    }
    run(&mut parts, Duration::from_millis(500)).await;
    let got = layer_of(&parts[1]);
    // Losses are repaired hop by hop: Ann's NACKs are answered from what the server sent
    // her. Without resends she would hold two frames in three (one packet per frame);
    // with them most holes are filled (a resend is dropped one time in three as well).
    let hs = high_seqs(&parts[1]);
    let span = usize::from(hs.iter().max().unwrap() - hs.iter().min().unwrap()) + 1;
    assert!(
        hs.len() * 4 >= span * 3,
        "only {} of {span} high frames reached Ann: NACKs not answered?",
        hs.len()
    );
    let first_low = got.iter().position(|(l, _)| *l == b'l').unwrap();
    assert!(first_low > 0, "Ann got high first: {got:?}");
    assert!(got[..first_low].iter().all(|(l, _)| *l == b'h'), "{got:?}");
    // (The server switches at a key frame, as the simulcast test shows; here that key
    // frame's packet may be one Ann drops and never gets repaired.)
    assert!(
        got[first_low..].iter().all(|(l, _)| *l == b'l'),
        "Ann stays on the low layer: {got:?}"
    );

    // Everyone sees Ann's link as poor; the leader's, which loses nothing, is good.
    let quality = |p: &Part, who: i64| -> Option<String> {
        p.saw("video.participants")?["participants"]
            .as_array()?
            .iter()
            .find(|x| x["user_id"] == who)?["quality"]
            .as_str()
            .map(str::to_string)
    };
    let ann_id = parts[1].user;
    let deadline = Instant::now() + sfu::STATS_INTERVAL * 3;
    while quality(&parts[0], ann_id).as_deref() != Some("poor")
        || quality(&parts[0], leader_id).as_deref() != Some("good")
    {
        assert!(
            Instant::now() < deadline,
            "qualities shown: Ann {:?}, the leader {:?}",
            quality(&parts[0], ann_id),
            quality(&parts[0], leader_id)
        );
        for rid in ["h", "l"] {
            let mut p = pattern(leader_id, Source::Camera, seq, 200);
            p[4] = rid.as_bytes()[0];
            parts[0]
                .media
                .send_layer(Source::Camera, Some(rid), &p, false);
        }
        seq = seq.wrapping_add(1);
        run(&mut parts, Duration::from_millis(20)).await;
    }
}

/// A client offer while the server's own offer waits for an answer is refused with
/// `negotiating`; once the client answers, its offer is taken.
#[actix_rt::test]
async fn a_client_offer_during_the_servers_offer_is_refused() {
    let (_b, s, [leader, ann], study) = call_study(&[], 1).await;
    let mut parts = vec![Part::join(&s, &leader, study, &[Source::Mic]).await];
    until(&mut parts, "the leader connects", |ps| {
        ps[0].media.connected
    })
    .await;
    // Ann publishes: once her microphone's first frame arrives, the server owes the
    // leader an offer for it.
    let ann_part = Part::join(&s, &ann, study, &[Source::Mic]).await;
    parts.push(ann_part);
    // Wait (without answering) until the server's offer to the leader has arrived.
    let deadline = Instant::now() + Duration::from_secs(10);
    let server_offer = loop {
        assert!(Instant::now() < deadline, "no server offer to the leader");
        parts[1].announce();
        parts[1].step().await;
        if let Ok(Some(Ok(Frame::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(5), parts[0].ws.next()).await
        {
            let f: Value = serde_json::from_slice(&t).unwrap();
            if f["type"] == "video.offer" {
                break f;
            }
        }
    };
    // The leader offers again (a parseable offer from a second client) before answering
    // it: refused, and the room goes on.
    let mut other = MediaClient::new().await.unwrap();
    let (sdp, named) = other.offer(&[Source::Camera]);
    let msg =
        json!({"type": "video.offer", "id": "x1", "study_id": study, "sdp": sdp, "sources": named});
    send_text(&mut parts[0].ws, msg.to_string()).await;
    let reply = loop {
        let f = parts[0].read(Duration::from_millis(100)).await;
        if let Some(f) = f
            && f["id"] == "x1"
        {
            break f;
        }
    };
    assert_eq!(reply["error"], "negotiating", "{reply}");
    // Now the leader answers the server's offer, and everything meshes.
    parts[0].handle(&server_offer).await;
    let ann_id = parts[1].user;
    let leader_id = parts[0].user;
    until(&mut parts, "meshed", |ps| {
        ps[1].media.connected
            && ps[0].has_tracks_of(&[ann_id], 1)
            && ps[1].has_tracks_of(&[leader_id], 1)
            && ps.iter().all(|p| p.answers_acked == p.answers_sent)
    })
    .await;
    publish_burst(&mut parts, &[1], 0, 5).await;
    assert_eq!(
        seqs(&parts[0].got(ann_id, "mic")),
        (0..5).collect::<Vec<_>>()
    );
}
