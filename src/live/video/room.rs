//! `VideoRoom`: one per study with a live video session. It is the single writer of who is
//! in the room and of everyone's visible state (sources on, hand, leader's mute), checks
//! every signaling request against the participant list and the leader, and drives the
//! room's media loop ([`super::sfu`]) with commands. Media itself never passes through it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, StreamHandler};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Mid;
use tokio::sync::{mpsc, oneshot, watch};

use super::VideoNode;
use super::error::VideoError;
use super::frames::{
    LeftReason, Participant, Reaction, VideoLeft, VideoMuted, VideoParticipants, VideoReaction,
    VideoStopped,
};
use super::locks::Locks;
use super::sfu::route::{Layer, Source, one_of_each};
use super::sfu::{self, MediaCmd, MediaEvent};
use super::turn::IceServer;
use crate::chat::Author;
use crate::ids::{ConnId, StudyId, UserId};
use crate::live::study::{Study, StudyEvent, StudyMsg};
use crate::live::user::push_notifications;
use crate::ratelimit::{Bucket, Policy};
use crate::registry::{Deps, KeyedActor, Registry, ReplyTo, ResyncScope, StartError, Supervision};
use crate::store::Rule;
use crate::studies::NewNotification;
use crate::tasks::order::{Item, Step};
use crate::ws::frame::ReqId;
use crate::ws::router::Control;

/// Offers per participant: a burst of 5, then one a second. Each costs an SDP parse and a
/// renegotiation for everyone; a real client offers once per join (and per ICE restart).
pub const SIGNALING_POLICY: Policy = Policy::new(5, 1.0);
/// Reactions per participant: a burst of 5 (a round of applause), then one a second. Each
/// goes to everyone in the room; a held key must not flood a 25-person call.
pub const REACTION_POLICY: Policy = Policy::new(5, 1.0);
/// Media events queued from the media loop to the room (joins and losses; bounded by the
/// participant cap many times over).
const EVENTS: usize = 256;
/// Least time between two `call_changed` events of a room: a member joining and leaving
/// in a loop would otherwise send one to every watching member each time, and a notice
/// on the study page needs no finer news. A change inside the gap goes out at its end.
const CALL_NEWS_GAP: Duration = Duration::from_millis(250);
/// Least time between two `call_started` notifications of a study: a call whose last
/// participant leaves and comes back is the same session to the members, and one unread
/// notice per study is enough (its collapse key keeps it at one).
const CALL_NOTICE_GAP: Duration = Duration::from_secs(600);
/// How long a call's saved moderation counts after its room last had people in it: a call
/// resumed within it (after a restart, or everyone back from a break) is the same session,
/// as for [`CALL_NOTICE_GAP`]; a later one starts clean.
const HELD_FRESH: Duration = CALL_NOTICE_GAP;
/// How often a room with people in it restamps its saved moderation (see [`HELD_FRESH`]).
const HELD_TOUCH: Duration = Duration::from_secs(60);
/// How long a leader's request waits for its moderation to be saved before it is answered
/// `unavailable` (the change holds in the room either way; it may not outlive a restart).
const HELD_WAIT: Duration = Duration::from_secs(5);
/// Tries to save one state, a second apart, before the writer waits for the next change.
const HELD_TRIES: u32 = 10;

/// What of a call's moderation outlives its room: the leader's mutes and locks.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Held {
    muted: Vec<UserId>,
    locks: Locks,
}

/// Numbered states for [`write_held`]: `(number, JSON or None to delete)`.
type HeldState = (u64, Option<String>);

/// The payload of a `call_started` notification: someone opened the study's video call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStartedPayload {
    pub study_id: StudyId,
    pub study_title: String,
    pub by: Author,
}

/// A moderation action (leader only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Moderation {
    Mute(UserId),
    MuteAll,
    AllowUnmute(UserId),
    Remove(UserId),
    /// Lowers one participant's raised hand (they were given the word, or it was a slip).
    LowerHand(UserId),
    /// Lowers every raised hand (a question round is over).
    LowerHands,
    /// Stops a participant's camera or screen share (they may turn it on again unless it
    /// is locked).
    Stop(UserId, Source),
    /// Locks or unlocks a source for everyone but the leader (see [`Locks`]).
    Lock(Source, bool),
    /// Lets one participant turn a locked source on (for the microphone: lifts their mute).
    Allow(UserId, Source),
    End,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VideoMsg {
    Join {
        conn: ConnId,
        user: Author,
        /// The client is coming back after its connection dropped, not starting a call:
        /// an empty room then tells no one a call started (after a server restart the
        /// first one back would).
        rejoin: bool,
    },
    Leave {
        conn: ConnId,
    },
    Offer {
        conn: ConnId,
        req: Option<ReqId>,
        sdp: String,
        sources: BTreeMap<String, Source>,
    },
    Answer {
        conn: ConnId,
        sdp: String,
    },
    Media {
        conn: ConnId,
        mic: bool,
        camera: bool,
        screen: bool,
    },
    Hand {
        conn: ConnId,
        raised: bool,
    },
    React {
        conn: ConnId,
        reaction: Reaction,
    },
    Layer {
        conn: ConnId,
        publisher: UserId,
        layer: Layer,
    },
    Moderate {
        conn: ConnId,
        action: Moderation,
    },
    /// The member left or was removed from the study: out at once.
    MemberGone {
        user: UserId,
    },
    /// The study was deleted: everyone out.
    StudyGone,
    /// The study's lead moved.
    LeaderChanged {
        leader: UserId,
    },
    /// Who is in the call (asked only of a running room: a stopped one has no call).
    Status,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VideoReply {
    Joined {
        participants: Vec<Participant>,
        locks: Vec<Source>,
        ice_servers: Vec<IceServer>,
        max_participants: usize,
    },
    Status {
        user_ids: Vec<UserId>,
        version: i64,
    },
    Done,
}

struct Seat {
    conn: ConnId,
    state: Participant,
    signaling: Bucket,
    reactions: Bucket,
}

pub struct VideoRoom {
    id: StudyId,
    sup: Supervision,
    deps: Arc<Deps>,
    node: Arc<VideoNode>,
    leader: UserId,
    /// Participants by user (one seat per user: a second tab takes it over).
    seats: BTreeMap<UserId, Seat>,
    /// Who the leader muted, kept across leaving and joining again (else rejoining would
    /// lift the mute) until the leader allows them or the room ends.
    muted: std::collections::HashSet<UserId>,
    /// Cameras and screens the leader stopped, until their participant turns them on
    /// again or leaves.
    stopped: std::collections::HashSet<(UserId, Source)>,
    /// The leader's room-wide locks and who is allowed past them.
    locks: Locks,
    media: mpsc::Sender<MediaCmd>,
    events: Option<mpsc::Receiver<MediaEvent>>,
    registry: Registry,
    /// Who the study's watching members were last told is in the call, and that news's
    /// stamp (see [`VideoRoom::tell_study`]). `None` until this life of the room told
    /// them anything: a life before a crash may have told of a call that is gone with it,
    /// so the first check tells even an empty room.
    told: Option<Vec<UserId>>,
    version: i64,
    told_at: Option<Instant>,
    /// When the members were last told a call started here (see [`CALL_NOTICE_GAP`]).
    noticed_at: Option<Instant>,
    /// The moderation state to save, numbered; [`write_held`] saves the latest.
    held_tx: watch::Sender<HeldState>,
    /// The number of the last state saved.
    held_saved: watch::Receiver<u64>,
    /// The writer's ends, until `started` spawns it.
    held_writer: Option<(watch::Receiver<HeldState>, watch::Sender<u64>)>,
    /// The last state queued for saving.
    held_last: Option<String>,
}

impl Actor for VideoRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(rx) = self.events.take() {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|e| (e, rx))
            });
            ctx.add_stream(stream);
        }
        // Sends what changed inside the last gap (see `tell_study`), and at the first tick
        // of a room that nobody joined, that no call is going on.
        ctx.run_interval(CALL_NEWS_GAP, |act, _| act.tell_study());
        if let Some((rx, saved)) = self.held_writer.take() {
            actix::spawn(write_held(self.deps.store.clone(), self.id, rx, saved));
        }
        ctx.run_interval(HELD_TOUCH, |act, _| act.touch_held());
    }
}

impl StreamHandler<MediaEvent> for VideoRoom {
    fn handle(&mut self, e: MediaEvent, _ctx: &mut Context<Self>) {
        match e {
            MediaEvent::Connected(user) => {
                if let Some(s) = self.seats.get_mut(&user) {
                    s.state.connected = true;
                    self.announce();
                }
            }
            MediaEvent::Lost(user) => self.drop_seat(user, LeftReason::ConnectionLost),
            MediaEvent::Quality(user, q) => {
                if let Some(s) = self.seats.get_mut(&user) {
                    s.state.quality = Some(q);
                    self.announce();
                }
            }
        }
    }

    // The stream ends only with the media loop; the room keeps its state either way.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

/// Saves a room's moderation states in order, the latest first when several queued up,
/// and says which number it saved; ends once the room is gone and its last state saved.
async fn write_held(
    store: Arc<dyn crate::store::Store>,
    study: StudyId,
    mut rx: watch::Receiver<HeldState>,
    saved: watch::Sender<u64>,
) {
    let mut failed = 0;
    loop {
        let (v, state) = rx.borrow_and_update().clone();
        if v > *saved.borrow() {
            let now = crate::store::now_millis();
            match store
                .set_video_moderation(study, state.as_deref(), now)
                .await
            {
                Ok(()) => {
                    saved.send_replace(v);
                    failed = 0;
                }
                Err(e) if failed + 1 < HELD_TRIES => {
                    failed += 1;
                    tracing::warn!(%study, error = %e, "video moderation not saved; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(%study, error = %e, "video moderation not saved; giving up");
                    failed = 0;
                }
            }
        }
        if rx.changed().await.is_err() {
            break;
        }
    }
}

impl VideoRoom {
    /// Queues the moderation state for saving if it changed; the number to wait for.
    fn persist(&mut self) -> Option<u64> {
        let state = (!self.muted.is_empty() || !self.locks.locked().is_empty()).then(|| {
            let mut muted: Vec<UserId> = self.muted.iter().copied().collect();
            muted.sort();
            let held = Held {
                muted,
                locks: self.locks.clone(),
            };
            serde_json::to_string(&held).expect("moderation serializes")
        });
        if state == self.held_last {
            return None;
        }
        self.held_last = state.clone();
        Some(self.send_held(state))
    }

    fn send_held(&mut self, state: Option<String>) -> u64 {
        let v = self.held_tx.borrow().0 + 1;
        self.held_tx.send_replace((v, state));
        v
    }

    /// Restamps the saved moderation of a call with people in it, so a restart finds it
    /// fresh however long ago the leader set it.
    fn touch_held(&mut self) {
        if !self.seats.is_empty() && self.held_last.is_some() {
            let state = self.held_last.clone();
            self.send_held(state);
        }
    }

    /// Answers a leader's request once the moderation state numbered `v` is saved.
    fn reply_when_saved(
        &self,
        v: u64,
        done: VideoReply,
        reply: ReplyTo<Result<VideoReply, VideoError>>,
    ) {
        let mut saved = self.held_saved.clone();
        actix::spawn(async move {
            let r = tokio::time::timeout(HELD_WAIT, saved.wait_for(|s| *s >= v)).await;
            reply.send(match r {
                Ok(Ok(_)) => Ok(done),
                _ => Err(VideoError::Unavailable),
            });
        });
    }

    fn participants(&self) -> Vec<Participant> {
        self.seats.values().map(|s| s.state.clone()).collect()
    }

    fn announce(&mut self) {
        let participants = self.participants();
        let locks = self.locks.locked();
        let frame = VideoParticipants {
            study_id: self.id,
            participants: &participants,
            locks: &locks,
        };
        let conns: Vec<ConnId> = self.seats.values().map(|s| s.conn).collect();
        self.deps.sockets.send_many(conns.iter(), &frame);
        self.tell_study();
    }

    /// Tells the other members (stored, in their inbox, and pushed to their tabs) that
    /// `by` opened the call, unless they were told within [`CALL_NOTICE_GAP`]: by this
    /// room (checked here, with no store read) or by an earlier life of it, which an idle
    /// stop ends a minute after the last one leaves (checked in the store).
    fn notice_call_started(&mut self, by: &Author) {
        let now = Instant::now();
        if self
            .noticed_at
            .is_some_and(|t| now.saturating_duration_since(t) < CALL_NOTICE_GAP)
        {
            return;
        }
        self.noticed_at = Some(now);
        let (store, registry, study, by) = (
            self.deps.store.clone(),
            self.registry.clone(),
            self.id,
            by.clone(),
        );
        actix::spawn(async move {
            let key = format!("call_started:{study}");
            let gap = CALL_NOTICE_GAP.as_millis() as i64;
            match store.last_collapsed_at(&key).await {
                Ok(Some(at)) if crate::store::now_millis() - at < gap => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%study, error = %e, "call notice: last one not read");
                    return;
                }
            }
            let state = match store.study_state(study).await {
                Ok(Some(s)) => s,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(%study, error = %e, "call notice: study not read");
                    return;
                }
            };
            let payload = serde_json::to_value(CallStartedPayload {
                study_id: study,
                study_title: state.title,
                by: by.clone(),
            })
            .expect("payloads serialize");
            let notes: Vec<NewNotification> = state
                .members
                .into_iter()
                .filter(|u| *u != by.id)
                .map(|u| NewNotification {
                    user_id: u,
                    kind: "call_started",
                    payload: payload.clone(),
                    collapse_key: Some(key.clone()),
                })
                .collect();
            match store
                .insert_notifications(&notes, crate::store::now_millis())
                .await
            {
                Ok(stored) => push_notifications(&registry, stored).await,
                Err(e) => tracing::warn!(%study, error = %e, "call notices failed"),
            }
        });
    }

    /// Tells the study's watching members who is in the call when that changed (not for
    /// a toggle or a raised hand: those are the participants' business), so a member on
    /// the study page sees a call going on before joining it.
    ///
    /// The stamp is the time in microseconds, or one past the last stamp: it grows across
    /// restarts of the room, and the study forwards only news newer than what it sent.
    /// At most one per [`CALL_NEWS_GAP`]; the room's timer sends a change held back.
    fn tell_study(&mut self) {
        if self
            .told
            .as_ref()
            .is_some_and(|t| self.seats.len() == t.len() && self.seats.keys().eq(t.iter()))
        {
            return;
        }
        let now = Instant::now();
        if self
            .told_at
            .is_some_and(|t| now.saturating_duration_since(t) < CALL_NEWS_GAP)
        {
            return;
        }
        self.told_at = Some(now);
        let user_ids: Vec<UserId> = self.seats.keys().copied().collect();
        self.told = Some(user_ids.clone());
        self.version = (crate::store::now_millis() * 1000).max(self.version + 1);
        let event = StudyEvent::CallChanged {
            user_ids,
            version: self.version,
        };
        let order = Some((Item::Call, Step::At(self.version)));
        let (registry, id) = (self.registry.clone(), self.id);
        actix::spawn(async move {
            // No study actor running means no one watches the study page to tell.
            let msg = StudyMsg::AnnounceToMembers { event, order };
            let _ = registry.tell_if_running::<Study>(id, msg).await;
        });
    }

    fn seat_of(&self, conn: ConnId) -> Result<UserId, VideoError> {
        self.seats
            .iter()
            .find(|(_, s)| s.conn == conn)
            .map(|(u, _)| *u)
            .ok_or(VideoError::NotInRoom)
    }

    fn cmd(&self, c: MediaCmd) {
        if self.media.try_send(c).is_err() {
            tracing::warn!(study = %self.id, "video: media loop queue full; command dropped");
        }
    }

    /// Takes a user out of the room and tells their socket why.
    fn drop_seat(&mut self, user: UserId, reason: LeftReason) {
        let Some(seat) = self.seats.remove(&user) else {
            return;
        };
        self.stopped.retain(|(u, _)| *u != user);
        self.cmd(MediaCmd::Remove { user });
        self.sup.unwatch(&seat.conn);
        self.deps.sockets.send(
            seat.conn,
            &VideoLeft {
                study_id: self.id,
                reason,
            },
        );
        self.deps.sockets.control(
            seat.conn,
            Control::Released {
                key: VideoRoom::key(self.id),
            },
        );
        self.announce();
    }

    /// Everyone out (`ended`), and the leader's mutes and locks forgotten with the session.
    fn end(&mut self) {
        self.muted.clear();
        self.locks.clear();
        let all: Vec<UserId> = self.seats.keys().copied().collect();
        for u in all {
            self.drop_seat(u, LeftReason::Ended);
        }
    }

    fn join(&mut self, conn: ConnId, user: Author, rejoin: bool) -> Result<VideoReply, VideoError> {
        let existing = self.seats.get(&user.id).map(|s| s.conn);
        match existing {
            Some(c) if c == conn => {}
            Some(_) => self.drop_seat(user.id, LeftReason::Replaced),
            None => {
                if self.seats.len() >= self.node.max_participants {
                    return Err(VideoError::Full(self.node.max_participants));
                }
            }
        }
        if !self.seats.contains_key(&user.id) {
            if self.seats.is_empty() && !rejoin {
                self.notice_call_started(&user);
            }
            self.seats.insert(
                user.id,
                Seat {
                    conn,
                    state: Participant {
                        user_id: user.id,
                        display_name: user.display_name.clone(),
                        leader: user.id == self.leader,
                        mic: false,
                        camera: false,
                        screen: false,
                        hand: false,
                        hand_at: None,
                        muted: false,
                        locked: Vec::new(),
                        connected: false,
                        quality: None,
                    },
                    signaling: SIGNALING_POLICY.bucket(Instant::now()),
                    reactions: REACTION_POLICY.bucket(Instant::now()),
                },
            );
            self.sup.watch(conn);
            // Their mute and locks hold from the start; the join reply tells them.
            self.enforce(user.id, false);
        }
        self.announce();
        let now_unix = (crate::store::now_millis() / 1000).max(0) as u64;
        Ok(VideoReply::Joined {
            participants: self.participants(),
            locks: self.locks.locked(),
            ice_servers: self.node.turn.ice_servers(user.id, now_unix),
            max_participants: self.node.max_participants,
        })
    }

    /// Checks the caller is seated and under its signaling rate.
    fn signaling(&mut self, conn: ConnId) -> Result<UserId, VideoError> {
        let user = self.seat_of(conn)?;
        let seat = self.seats.get_mut(&user).expect("seated");
        seat.signaling
            .take(&SIGNALING_POLICY, Instant::now())
            .map_err(|_| VideoError::RateLimited)?;
        Ok(user)
    }

    /// Hands a command with a reply to the media loop and answers the asker when it does.
    fn ask_media(
        &self,
        reply: ReplyTo<Result<VideoReply, VideoError>>,
        make: impl FnOnce(oneshot::Sender<Result<(), VideoError>>) -> MediaCmd,
    ) {
        let (tx, rx) = oneshot::channel();
        if self.media.try_send(make(tx)).is_err() {
            return reply.send(Err(VideoError::Unavailable));
        }
        actix_rt::spawn(async move {
            let r = rx.await.unwrap_or(Err(VideoError::Unavailable));
            reply.send(r.map(|()| VideoReply::Done));
        });
    }

    fn offer(
        &mut self,
        conn: ConnId,
        req: Option<ReqId>,
        sdp: String,
        sources: BTreeMap<String, Source>,
        reply: ReplyTo<Result<VideoReply, VideoError>>,
    ) {
        let user = match self.signaling(conn) {
            Ok(u) => u,
            Err(e) => return reply.send(Err(e)),
        };
        // Checked here too (the media loop checks across offers) so a bad offer costs no
        // SDP parse.
        if !one_of_each(sources.values().copied()) {
            return reply.send(Err(VideoError::TooManyTracks));
        }
        let offer = match SdpOffer::from_sdp_string(&sdp) {
            Ok(o) => o,
            Err(e) => return reply.send(Err(VideoError::BadSdp(e.to_string()))),
        };
        let sources = sources
            .into_iter()
            .map(|(mid, s)| (Mid::from(mid.as_str()), s))
            .collect();
        self.ask_media(reply, |tx| MediaCmd::Offer {
            user,
            conn,
            req,
            offer,
            sources,
            reply: tx,
        });
    }

    fn answer(
        &mut self,
        conn: ConnId,
        sdp: String,
        reply: ReplyTo<Result<VideoReply, VideoError>>,
    ) {
        // Answers are not counted against the signaling rate: they follow the server's own
        // offers (one outstanding at a time), and when people join together a participant
        // answers one per arrival. An answer with no offer waiting is refused as such, and
        // the socket's own message rate bounds a flood.
        let user = match self.seat_of(conn) {
            Ok(u) => u,
            Err(e) => return reply.send(Err(e)),
        };
        let answer = match SdpAnswer::from_sdp_string(&sdp) {
            Ok(a) => a,
            Err(e) => return reply.send(Err(VideoError::BadSdp(e.to_string()))),
        };
        self.ask_media(reply, |tx| MediaCmd::Answer {
            user,
            answer,
            reply: tx,
        });
    }

    /// The leader mutes `user` (and takes back any allowance past the microphone lock), or
    /// lets them unmute (and past the lock).
    fn set_muted(&mut self, user: UserId, muted: bool) {
        if muted {
            self.muted.insert(user);
            self.locks.revoke(user, Source::Mic);
        } else {
            self.muted.remove(&user);
            self.locks.allow(user, Source::Mic);
        }
        self.enforce(user, true);
    }

    /// Brings a seated participant's mute, locked sources and the media loop's forwarding
    /// in line with the leader's mutes, stops and locks; tells them what changed when
    /// `tell` (a joiner learns it from the join reply instead).
    fn enforce(&mut self, user: UserId, tell: bool) {
        let muted = self.muted.contains(&user) || self.locks.holds(user, self.leader, Source::Mic);
        let locked = self.locks.held_video(user, self.leader);
        let Some(seat) = self.seats.get_mut(&user) else {
            return;
        };
        let conn = seat.conn;
        // A joiner's forwarding is set in full: the media loop keeps a mute across leaving
        // and joining again, and a lock may have been lifted meanwhile.
        let fresh = !tell;
        let mut cmds = Vec::new();
        let mut frames_muted = None;
        let mut frames_stopped = Vec::new();
        if seat.state.muted != muted || fresh {
            if seat.state.muted != muted {
                frames_muted = Some(muted);
            }
            seat.state.muted = muted;
            if muted {
                seat.state.mic = false;
            }
            cmds.push(MediaCmd::Mute { user, muted });
        }
        for source in [Source::Camera, Source::Screen] {
            let now = locked.contains(&source);
            let was = seat.state.locked.contains(&source);
            if now && (!was || fresh) {
                let on = match source {
                    Source::Camera => std::mem::replace(&mut seat.state.camera, false),
                    _ => std::mem::replace(&mut seat.state.screen, false),
                };
                if on {
                    frames_stopped.push(source);
                }
                // Held even from a client that ignores the news and keeps sending.
                cmds.push(MediaCmd::Stop {
                    user,
                    source,
                    stopped: true,
                });
            } else if !now && (was || fresh) && !self.stopped.contains(&(user, source)) {
                cmds.push(MediaCmd::Stop {
                    user,
                    source,
                    stopped: false,
                });
            }
        }
        seat.state.locked = locked;
        for c in cmds {
            self.cmd(c);
        }
        if !tell {
            return;
        }
        if let Some(muted) = frames_muted {
            self.deps.sockets.send(
                conn,
                &VideoMuted {
                    study_id: self.id,
                    muted,
                },
            );
        }
        for source in frames_stopped {
            self.deps.sockets.send(
                conn,
                &VideoStopped {
                    study_id: self.id,
                    source,
                },
            );
        }
    }

    fn enforce_all(&mut self) {
        let users: Vec<UserId> = self.seats.keys().copied().collect();
        for u in users {
            self.enforce(u, true);
        }
    }

    /// The leader stops `user`'s camera or screen: the SFU drops it until they turn it on
    /// again (`video.media`), and they are told, so an honest client stops sending.
    fn stop_source(&mut self, user: UserId, source: Source) {
        let Some(seat) = self.seats.get_mut(&user) else {
            return;
        };
        match source {
            Source::Camera => seat.state.camera = false,
            Source::Screen => seat.state.screen = false,
            Source::Mic => return,
        }
        let conn = seat.conn;
        self.stopped.insert((user, source));
        // Stopping someone allowed past a lock takes the allowance back.
        self.locks.revoke(user, source);
        seat.state.locked = self.locks.held_video(user, self.leader);
        self.cmd(MediaCmd::Stop {
            user,
            source,
            stopped: true,
        });
        self.deps.sockets.send(
            conn,
            &VideoStopped {
                study_id: self.id,
                source,
            },
        );
    }

    /// A participant turned a stopped source on again: it is forwarded again.
    fn restart_sources(&mut self, user: UserId, camera: bool, screen: bool) {
        for (source, on) in [(Source::Camera, camera), (Source::Screen, screen)] {
            if on && self.stopped.remove(&(user, source)) {
                self.cmd(MediaCmd::Stop {
                    user,
                    source,
                    stopped: false,
                });
            }
        }
    }

    /// The leader let a participant speak or show something: a hand raised to ask for it
    /// was answered, so it goes down, as it does when the leader lowers it (else the
    /// leader's list of raised hands keeps someone already given the word).
    fn hand_answered(&mut self, user: UserId) {
        if let Some(s) = self.seats.get_mut(&user) {
            set_hand(&mut s.state, false);
        }
    }

    /// Shows everyone in the room (the reacting one too) a participant's reaction.
    fn react(&mut self, conn: ConnId, reaction: Reaction) -> Result<VideoReply, VideoError> {
        let user = self.seat_of(conn)?;
        let seat = self.seats.get_mut(&user).expect("seated");
        seat.reactions
            .take(&REACTION_POLICY, Instant::now())
            .map_err(|_| VideoError::RateLimited)?;
        let frame = VideoReaction {
            study_id: self.id,
            user_id: user,
            reaction,
        };
        let conns: Vec<ConnId> = self.seats.values().map(|s| s.conn).collect();
        self.deps.sockets.send_many(conns.iter(), &frame);
        Ok(VideoReply::Done)
    }

    fn moderate(&mut self, conn: ConnId, action: Moderation) -> Result<VideoReply, VideoError> {
        let me = self.seat_of(conn)?;
        if me != self.leader {
            return Err(VideoError::NotLeader);
        }
        if let Moderation::Mute(u)
        | Moderation::AllowUnmute(u)
        | Moderation::Remove(u)
        | Moderation::LowerHand(u)
        | Moderation::Stop(u, _)
        | Moderation::Allow(u, _) = action
            && !self.seats.contains_key(&u)
        {
            return Err(VideoError::NotInRoom);
        }
        match action {
            Moderation::Mute(u) => self.set_muted(u, true),
            Moderation::AllowUnmute(u) | Moderation::Allow(u, Source::Mic) => {
                self.set_muted(u, false);
                self.hand_answered(u);
            }
            Moderation::MuteAll => {
                let others: Vec<UserId> = self.seats.keys().copied().filter(|u| *u != me).collect();
                for u in others {
                    self.set_muted(u, true);
                }
            }
            Moderation::Remove(u) => {
                self.drop_seat(u, LeftReason::Removed);
                return Ok(VideoReply::Done);
            }
            Moderation::LowerHand(u) => {
                if let Some(s) = self.seats.get_mut(&u) {
                    set_hand(&mut s.state, false);
                }
            }
            Moderation::LowerHands => {
                for s in self.seats.values_mut() {
                    set_hand(&mut s.state, false);
                }
            }
            Moderation::Stop(u, source) => self.stop_source(u, source),
            Moderation::Lock(source, locked) => {
                self.locks.set(source, locked);
                self.enforce_all();
            }
            Moderation::Allow(u, source) => {
                self.locks.allow(u, source);
                self.enforce(u, true);
                self.hand_answered(u);
            }
            Moderation::End => {
                self.end();
                return Ok(VideoReply::Done);
            }
        }
        self.announce();
        Ok(VideoReply::Done)
    }

    fn handle(&mut self, msg: VideoMsg, reply: ReplyTo<Result<VideoReply, VideoError>>) {
        let result = match msg {
            VideoMsg::Join { conn, user, rejoin } => self.join(conn, user, rejoin),
            VideoMsg::Leave { conn } => {
                if let Ok(user) = self.seat_of(conn) {
                    let seat = self.seats.remove(&user).expect("seated");
                    self.sup.unwatch(&seat.conn);
                    self.stopped.retain(|(u, _)| *u != user);
                    self.cmd(MediaCmd::Remove { user });
                    self.announce();
                }
                Ok(VideoReply::Done)
            }
            VideoMsg::Offer {
                conn,
                req,
                sdp,
                sources,
            } => return self.offer(conn, req, sdp, sources, reply),
            VideoMsg::Answer { conn, sdp } => return self.answer(conn, sdp, reply),
            VideoMsg::Media {
                conn,
                mic,
                camera,
                screen,
            } => self.seat_of(conn).and_then(|u| {
                let seat = self.seats.get_mut(&u).expect("seated");
                if mic && seat.state.muted {
                    return Err(VideoError::MutedByLeader);
                }
                for (on, source) in [(camera, Source::Camera), (screen, Source::Screen)] {
                    if on && seat.state.locked.contains(&source) {
                        return Err(VideoError::Locked(source));
                    }
                }
                seat.state.mic = mic;
                seat.state.camera = camera;
                seat.state.screen = screen;
                self.restart_sources(u, camera, screen);
                self.announce();
                Ok(VideoReply::Done)
            }),
            VideoMsg::React { conn, reaction } => self.react(conn, reaction),
            VideoMsg::Hand { conn, raised } => self.seat_of(conn).map(|u| {
                set_hand(&mut self.seats.get_mut(&u).expect("seated").state, raised);
                self.announce();
                VideoReply::Done
            }),
            VideoMsg::Layer {
                conn,
                publisher,
                layer,
            } => self.seat_of(conn).map(|sub| {
                self.cmd(MediaCmd::Layer {
                    sub,
                    publisher,
                    layer,
                });
                VideoReply::Done
            }),
            VideoMsg::Moderate { conn, action } => match self.moderate(conn, action) {
                // Acknowledged once saved: a restart must not lift what the leader was
                // told holds.
                Ok(done) => match self.persist() {
                    Some(v) => return self.reply_when_saved(v, done, reply),
                    None => Ok(done),
                },
                Err(e) => Err(e),
            },
            VideoMsg::MemberGone { user } => {
                self.drop_seat(user, LeftReason::NotMember);
                Ok(VideoReply::Done)
            }
            VideoMsg::StudyGone => {
                self.end();
                self.persist();
                Ok(VideoReply::Done)
            }
            // Who is in it now, though news of the last change may wait for its gap: a
            // tab deciding whether to rejoin must not see a participant who just left.
            // The stamp is the last one told, so the news that follows is newer.
            VideoMsg::Status => Ok(VideoReply::Status {
                user_ids: self.seats.keys().copied().collect(),
                version: self.version,
            }),
            VideoMsg::LeaderChanged { leader } => {
                self.leader = leader;
                for (u, s) in self.seats.iter_mut() {
                    s.state.leader = *u == leader;
                }
                // The locks hold everyone but the leader: the new one is free, the old
                // one held.
                self.enforce_all();
                self.announce();
                Ok(VideoReply::Done)
            }
        };
        reply.send(result);
    }
}

/// Raises or lowers a hand; raising it again keeps its place in the order.
fn set_hand(p: &mut Participant, raised: bool) {
    if raised && p.hand_at.is_none() {
        p.hand_at = Some(crate::store::now_millis());
    } else if !raised {
        p.hand_at = None;
    }
    p.hand = raised;
}

impl KeyedActor for VideoRoom {
    const KIND: &'static str = "video_room";
    type Id = StudyId;
    type Msg = VideoMsg;
    type Reply = Result<VideoReply, VideoError>;

    fn resync_scope(id: StudyId) -> ResyncScope {
        ResyncScope::with(Self::KIND, "study_id", id.0)
    }

    fn load(
        id: StudyId,
        deps: Arc<Deps>,
        registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, Result<Self, StartError>> {
        Box::pin(async move {
            let state = deps.store.study_state(id).await?.ok_or(Rule::NotFound)?;
            let node = deps
                .ext
                .get::<VideoNode>()
                .ok_or_else(|| StartError::Failed("video is not enabled on this node".into()))?;
            // A call resumed within HELD_FRESH keeps the leader's mutes and locks.
            let (held, held_last) = match deps.store.video_moderation(id).await? {
                Some((json, at))
                    if crate::store::now_millis() - at < HELD_FRESH.as_millis() as i64 =>
                {
                    match serde_json::from_str::<Held>(&json) {
                        Ok(h) => (h, Some(json)),
                        Err(e) => {
                            tracing::warn!(study = %id, error = %e, "saved video moderation unreadable");
                            (Held::default(), None)
                        }
                    }
                }
                _ => (Held::default(), None),
            };
            let (held_tx, held_rx) = watch::channel((0, None));
            let (saved_tx, held_saved) = watch::channel(0);
            let (ev_tx, ev_rx) = mpsc::channel(EVENTS);
            let media = sfu::spawn(
                &node.runtime,
                id,
                node.net.clone(),
                deps.sockets.clone(),
                ev_tx,
            );
            Ok(VideoRoom {
                id,
                sup,
                node,
                leader: state.leader,
                seats: BTreeMap::new(),
                muted: held.muted.into_iter().collect(),
                stopped: Default::default(),
                locks: held.locks,
                media,
                events: Some(ev_rx),
                deps,
                registry,
                told: None,
                version: 0,
                told_at: None,
                noticed_at: None,
                held_tx,
                held_saved,
                held_writer: Some((held_rx, saved_tx)),
                held_last,
            })
        })
    }

    fn supervision(&mut self) -> &mut Supervision {
        &mut self.sup
    }

    fn is_idle(&mut self) -> bool {
        self.seats.is_empty()
    }

    fn handle_msg(
        &mut self,
        msg: VideoMsg,
        reply: ReplyTo<Result<VideoReply, VideoError>>,
        _ctx: &mut Context<Self>,
    ) {
        self.handle(msg, reply);
    }
}

crate::keyed_actor_handlers!(VideoRoom);
