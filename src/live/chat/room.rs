//! `ChatRoom`: one per chat room with someone in it. It is the room's single writer:
//!
//! - Sends queue up; one batch at a time gets the next sequence numbers and goes to the
//!   persistence actor as one all-or-nothing write. Only after that commit does the room ack
//!   the senders and deliver the messages to every joined socket, in seq order. A failed batch
//!   gives its numbers back, so seqs never have gaps.
//! - Resends of a `client_id` already stored get the first ack again and store nothing.
//! - Joining with `last_seq` replays what the socket missed (from memory, else the store)
//!   before any live frame, so a reconnect sees no gap and no duplicate.
//! - Closing the room (the leader, over HTTP) goes through here too, so the store and the
//!   people in the room never disagree.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::frames::{
    ChatAck, ChatClosed, ChatJoined, ChatMessageFrame, ChatPresence, ChatRemoved, ChatTyping,
    ChatUpdated,
};
use crate::chat::sequencer::{Pending, Sequencer};
use crate::chat::{self, Author, ChatMessage, NewChatMessage};
use crate::error::ApiError;
use crate::ids::{ConnId, RoomId, StudyId, UserId};
use crate::keyed_actor_handlers;
use crate::live::CommandError;
use crate::live::sequenced::{self, Recent, Seq, SequencedSends, admit, settle};
use crate::live::user::push_notifications;
use crate::persist::PersistError;
use crate::ratelimit::Policy;
use crate::registry::{Deps, KeyedActor, Registry, ReplyTo, ResyncScope, StartError, Supervision};
use crate::store::chat::{ChatLog, Page};
use crate::store::{DurableWrite, Fence, Rule, StoreError, now_millis};
use crate::studies::{NewNotification, Role};
use crate::ws::frame::{self, Frame, ReqId, ServerFrame};
use crate::ws::router::Control;

/// Per user and room: a burst of 10, then 5 messages a second (the policy).
pub const SEND_POLICY: Policy = Policy::new(10, 5.0);
/// Messages kept in memory for resume; older gaps are read from the store.
const RECENT: usize = 1000;
/// At most this many missed messages are replayed on join; the client pages the rest.
pub const RESUME_MAX: i64 = 1000;
/// Client ids remembered for deduplication (plus the store's unique index behind them).
const DEDUPE_WINDOW: usize = 20_000;
/// Sends waiting for the next batch before senders get `busy`.
const QUEUE_MAX: usize = 2000;
/// Messages per commit: bounds one commit's size and latency.
const BATCH_MAX: usize = 512;
/// A typing indicator with no refresh for this long is cleared by the server.
const TYPING_TTL: Duration = Duration::from_secs(6);

/// A kept message with its `chat.message` frame, serialized once for every resume.
struct Kept(ChatMessage, Frame);

impl Seq for Kept {
    fn seq(&self) -> i64 {
        self.0.seq
    }
}

impl Seq for ChatMessage {
    fn seq(&self) -> i64 {
        self.seq
    }
}

pub struct ChatRoom {
    id: RoomId,
    study: StudyId,
    sup: Supervision,
    deps: Arc<Deps>,
    registry: Registry,
    closed: bool,
    /// Newest committed seq.
    last_seq: i64,
    recent: Recent<Kept>,
    sends: Sequencer,
    /// Joined sockets and who they are.
    joined: HashMap<ConnId, Author>,
    typing: HashMap<UserId, (Instant, Author)>,
    typing_timer: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ChatRoomMsg {
    Join {
        conn: ConnId,
        user: Author,
        last_seq: Option<i64>,
        req: Option<ReqId>,
    },
    Leave {
        conn: ConnId,
    },
    Send {
        conn: ConnId,
        user: Author,
        client_id: String,
        body: String,
        req: Option<ReqId>,
    },
    Edit {
        conn: ConnId,
        user: UserId,
        seq: i64,
        body: String,
        req: Option<ReqId>,
    },
    Delete {
        conn: ConnId,
        user: UserId,
        seq: i64,
        req: Option<ReqId>,
    },
    React {
        conn: ConnId,
        user: UserId,
        seq: i64,
        emoji: String,
        on: bool,
        req: Option<ReqId>,
    },
    Typing {
        conn: ConnId,
        user: Author,
        typing: bool,
    },
    Read {
        conn: ConnId,
        user: UserId,
        seq: i64,
        req: Option<ReqId>,
    },
    /// The user left or was removed from the study: out of the room at once.
    DropUser {
        user: UserId,
    },
    /// The leader closes the room: stored, then everyone inside is told.
    Close {
        study: StudyId,
        leader: UserId,
    },
    /// The room's rows are gone (its study was deleted): tell the people inside.
    Closed,
}

impl Actor for ChatRoom {
    type Context = Context<Self>;
}

impl ChatRoom {
    fn push(&self, conn: ConnId, frame: Frame) {
        self.deps.sockets.push(conn, frame);
    }

    fn broadcast(&self, frame: &Frame) {
        self.deps.sockets.push_many(self.joined.keys(), frame);
    }

    fn message_frame(&self, m: &ChatMessage) -> Frame {
        ChatMessageFrame {
            room_id: self.id,
            message: m,
        }
        .to_frame()
    }

    /// Who is in the room: each user once, however many tabs they have.
    fn present_users(&self) -> Vec<&Author> {
        let mut users: Vec<&Author> = Vec::new();
        for a in self.joined.values() {
            if !users.iter().any(|u| u.id == a.id) {
                users.push(a);
            }
        }
        users
    }

    fn presence(&self) {
        let frame = ChatPresence {
            room_id: self.id,
            users: self.present_users(),
        }
        .to_frame();
        self.broadcast(&frame);
    }

    fn keep_recent(&mut self, m: ChatMessage) {
        let f = self.message_frame(&m);
        self.recent.push(Kept(m, f));
    }

    fn send(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnId,
        user: Author,
        client_id: String,
        body: String,
        req: Option<ReqId>,
    ) {
        if self.closed {
            return self.push(conn, frame::error(req, &Rule::RoomClosed.into()));
        }
        if !self.joined.contains_key(&conn) {
            return self.push(conn, frame::error(req, &ApiError::NotFound));
        }
        admit(self, ctx, user, client_id, body, (conn, req));
    }

    /// Commits the next batch unless one is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(batch) = self.sends.next_batch() else {
            return;
        };
        let store = self.deps.store.clone();
        let persister = self.deps.persister.clone();
        let (room, study, first_seq) = (self.id, self.study, self.last_seq + 1);
        let drafts: Vec<(UserId, String, String)> = batch
            .iter()
            .map(|p| (p.author.id, p.client_id.clone(), p.body.clone()))
            .collect();
        let fence = Some(Fence::of(self.sup.lease()));
        let fut = async move {
            // Mentions are resolved against the study's members once per batch, and only
            // when someone wrote an '@'.
            let logins: Vec<String> = drafts
                .iter()
                .flat_map(|d| chat::mentioned_logins(&d.2))
                .collect();
            let members = if logins.is_empty() {
                Vec::new()
            } else {
                store.members_by_login(study, &logins).await?
            };
            let now = now_millis();
            let messages: Vec<NewChatMessage> = drafts
                .into_iter()
                .enumerate()
                .map(|(i, (author_id, client_id, body))| {
                    let mentions = chat::mentioned_logins(&body)
                        .iter()
                        .filter_map(|l| {
                            members
                                .iter()
                                .find(|(login, _)| login == l)
                                .map(|(_, id)| *id)
                        })
                        .filter(|id| *id != author_id)
                        .collect();
                    NewChatMessage {
                        seq: first_seq + i as i64,
                        client_id,
                        author_id,
                        body,
                        mentions,
                        at: now,
                    }
                })
                .collect();
            persister
                .persist(DurableWrite::ChatMessages {
                    room_id: room,
                    messages: messages.clone(),
                    fence,
                })
                .await?;
            Ok::<_, PersistError>(messages)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| settle(act, ctx, batch, res)),
        );
    }

    fn committed(&mut self, batch: Vec<Pending>, messages: Vec<NewChatMessage>) {
        let mut notes = Vec::new();
        for (p, m) in batch.into_iter().zip(messages) {
            self.last_seq = m.seq;
            let msg = ChatMessage {
                seq: m.seq,
                client_id: m.client_id.clone(),
                author: p.author.clone(),
                body: m.body,
                created_at: m.at,
                edited_at: None,
                deleted: false,
                reactions: Default::default(),
                mentions: m.mentions.clone(),
            };
            // Serialized once; every socket gets the same bytes.
            let frame = self.message_frame(&msg);
            self.broadcast(&frame);
            for w in p.waiters {
                self.ack(w, p.author.id, &m.client_id, m.seq);
            }
            for u in &m.mentions {
                notes.push(NewNotification {
                    user_id: *u,
                    kind: "chat_mention",
                    payload: serde_json::to_value(chat::MentionPayload {
                        study_id: self.study,
                        room_id: self.id,
                        seq: m.seq,
                        author: p.author.clone(),
                        excerpt: msg.body.chars().take(100).collect(),
                    })
                    .expect("payloads serialize"),
                    // One unread mention per room and author, however many they write.
                    collapse_key: Some(format!("chat_mention:{}:{}", self.id, p.author.id)),
                });
            }
            self.typing.remove(&p.author.id);
            self.sends.stored(p.author.id, m.client_id, m.seq);
            self.recent.push(Kept(msg, frame));
        }
        if !notes.is_empty() {
            let (store, registry) = (self.deps.store.clone(), self.registry.clone());
            actix_rt::spawn(async move {
                match store.insert_notifications(&notes, now_millis()).await {
                    Ok(stored) => push_notifications(&registry, stored).await,
                    Err(e) => tracing::warn!(error = %e, "mention notifications failed"),
                }
            });
        }
    }

    fn join(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnId,
        user: Author,
        last_seq: Option<i64>,
        req: Option<ReqId>,
    ) {
        let store = self.deps.store.clone();
        let (room, study) = (self.id, self.study);
        let from_memory = self.recent.covers(last_seq);
        let uid = user.id;
        let fut = async move {
            let role = store.role_of(study, uid).await?;
            if !role.is_some_and(Role::is_member) {
                return Err(StoreError::Rule(Rule::NotFound));
            }
            let read_seq = store.read_seq(room, uid).await?;
            let missed = match last_seq {
                Some(l) if !from_memory => store.messages(room, Page::After(l), RESUME_MAX).await?,
                _ => Vec::new(),
            };
            Ok((read_seq, missed))
        };
        // `wait`: nothing else runs in the room until this socket is caught up and joined,
        // so no live frame can overtake its backlog.
        ctx.wait(fut.into_actor(self).map(move |res, act, _| match res {
            Err(e) => act.push(conn, frame::error(req, &e.into())),
            Ok((read_seq, missed)) => {
                let joined = ChatJoined {
                    id: req,
                    room_id: act.id,
                    last_seq: act.last_seq,
                    read_seq,
                    closed: act.closed,
                    presence: act.present_users(),
                }
                .to_frame();
                act.push(conn, joined);
                if let Some(l) = last_seq {
                    let (stored, kept) =
                        act.recent
                            .replay(&missed, l, act.last_seq, RESUME_MAX as usize);
                    let frames: Vec<Frame> = stored
                        .map(|m| act.message_frame(m))
                        .chain(kept.map(|k| k.1.clone()))
                        .collect();
                    for f in frames {
                        act.push(conn, f);
                    }
                }
                act.joined.insert(conn, user);
                act.sup.watch(conn);
                act.presence();
            }
        }));
    }

    fn leave(&mut self, conn: ConnId) {
        if self.joined.remove(&conn).is_some() {
            self.sup.unwatch(&conn);
            self.presence();
        }
    }

    /// Edit, delete and react share this path: check the message and the right to change it,
    /// commit, then tell everyone the new state of the message.
    fn change(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnId,
        user: UserId,
        seq: i64,
        req: Option<ReqId>,
        kind: Change,
    ) {
        if self.closed {
            return self.push(conn, frame::error(req, &Rule::RoomClosed.into()));
        }
        if !self.joined.contains_key(&conn) {
            return self.push(conn, frame::error(req, &ApiError::NotFound));
        }
        let (store, persister) = (self.deps.store.clone(), self.deps.persister.clone());
        let (room, study) = (self.id, self.study);
        let fut = async move {
            let m = store.message(room, seq).await?.ok_or(ApiError::NotFound)?;
            let now = now_millis();
            let write = match kind {
                Change::Edit(body) => {
                    if m.author.id != user || m.deleted {
                        return Err(ApiError::NotFound);
                    }
                    DurableWrite::ChatEdit {
                        room_id: room,
                        seq,
                        body,
                        at: now,
                    }
                }
                Change::Delete => {
                    let leader = store.role_of(study, user).await? == Some(Role::Leader);
                    if m.author.id != user && !leader {
                        return Err(ApiError::NotFound);
                    }
                    DurableWrite::ChatDelete {
                        room_id: room,
                        seq,
                        at: now,
                    }
                }
                Change::React(emoji, on) => {
                    if m.deleted {
                        return Err(ApiError::NotFound);
                    }
                    DurableWrite::ChatReaction {
                        room_id: room,
                        seq,
                        user_id: user,
                        emoji,
                        on,
                    }
                }
            };
            persister.persist(write).await?;
            store.message(room, seq).await?.ok_or(ApiError::NotFound)
        };
        ctx.spawn(
            fut.into_actor(self).map(
                move |res: Result<ChatMessage, ApiError>, act, _| match res {
                    Ok(m) => {
                        act.push(conn, frame::ack(req));
                        let updated = ChatUpdated {
                            room_id: act.id,
                            message: &m,
                        }
                        .to_frame();
                        act.broadcast(&updated);
                        let f = act.message_frame(&m);
                        if let Some(slot) = act.recent.get_mut(m.seq) {
                            *slot = Kept(m, f);
                        }
                    }
                    Err(e) => act.push(conn, frame::error(req, &e)),
                },
            ),
        );
    }

    fn typing(&mut self, conn: ConnId, user: Author, typing: bool) {
        if !self.joined.contains_key(&conn) || self.closed {
            return;
        }
        let was = self.typing.contains_key(&user.id);
        if typing {
            self.typing
                .insert(user.id, (Instant::now() + TYPING_TTL, user.clone()));
        } else {
            self.typing.remove(&user.id);
        }
        if was != typing {
            self.typing_frame(&user, typing);
        }
    }

    fn typing_frame(&self, user: &Author, typing: bool) {
        let frame = ChatTyping {
            room_id: self.id,
            user,
            typing,
        }
        .to_frame();
        let others = self
            .joined
            .iter()
            .filter(|(_, a)| a.id != user.id)
            .map(|(c, _)| c);
        self.deps.sockets.push_many(others, &frame);
    }

    fn expire_typing(&mut self) {
        let now = Instant::now();
        let expired: Vec<Author> = self
            .typing
            .values()
            .filter(|(t, _)| *t <= now)
            .map(|(_, a)| a.clone())
            .collect();
        for a in expired {
            self.typing.remove(&a.id);
            self.typing_frame(&a, false);
        }
    }

    /// Marks the room closed and tells everyone inside.
    fn mark_closed(&mut self) {
        self.closed = true;
        self.broadcast(&ChatClosed { room_id: self.id }.to_frame());
    }

    /// Stores the leader's close, then tells the people inside; the reply carries the
    /// store's verdict (only the leader may, and only a room of this study).
    fn close(
        &mut self,
        ctx: &mut Context<Self>,
        study: StudyId,
        leader: UserId,
        reply: ReplyTo<Result<(), CommandError>>,
    ) {
        let (store, room) = (self.deps.store.clone(), self.id);
        let fut = async move { store.close_room(study, room, leader, now_millis()).await };
        ctx.wait(fut.into_actor(self).map(move |res, act, _| match res {
            Ok(()) => {
                act.mark_closed();
                reply.send(Ok(()));
            }
            Err(e) => reply.send(Err(e.into())),
        }));
    }

    fn drop_user(&mut self, user: UserId) {
        let conns: Vec<ConnId> = self
            .joined
            .iter()
            .filter(|(_, a)| a.id == user)
            .map(|(c, _)| *c)
            .collect();
        let frame = ChatRemoved { room_id: self.id }.to_frame();
        let key = ChatRoom::key(self.id);
        for c in &conns {
            self.joined.remove(c);
            self.sup.unwatch(c);
            self.push(*c, frame.clone());
            self.deps.sockets.control(*c, Control::Released { key });
        }
        self.typing.remove(&user);
        if !conns.is_empty() {
            self.presence();
        }
    }
}

enum Change {
    Edit(String),
    Delete,
    React(String, bool),
}

impl SequencedSends for ChatRoom {
    type Committed = Vec<NewChatMessage>;

    fn sends(&mut self) -> &mut Sequencer {
        &mut self.sends
    }

    fn deps(&self) -> &Arc<Deps> {
        &self.deps
    }

    fn log(&self) -> ChatLog {
        ChatLog::Room(self.id)
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        ChatRoom::flush(self, ctx)
    }

    fn committed(&mut self, batch: Vec<Pending>, messages: Vec<NewChatMessage>) {
        ChatRoom::committed(self, batch, messages)
    }

    fn ack_frame(&self, req: Option<ReqId>, _author: UserId, client_id: &str, seq: i64) -> Frame {
        ChatAck {
            id: req,
            room_id: self.id,
            client_id: client_id.to_string(),
            seq,
        }
        .to_frame()
    }
}

impl KeyedActor for ChatRoom {
    const KIND: &'static str = "chat_room";
    // Its seqs must come from one owner: a paused old owner's writes are refused.
    const FENCED: bool = true;
    type Id = RoomId;
    type Msg = ChatRoomMsg;
    type Reply = Result<(), CommandError>;

    fn resync_scope(id: RoomId) -> ResyncScope {
        ResyncScope::with(Self::KIND, "room_id", id.0)
    }

    fn load(
        id: RoomId,
        deps: Arc<Deps>,
        registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, Result<Self, StartError>> {
        Box::pin(async move {
            let state = deps.store.room_state(id).await?.ok_or(Rule::NotFound)?;
            let mut sends = Sequencer::new(SEND_POLICY, DEDUPE_WINDOW, QUEUE_MAX, BATCH_MAX);
            sequenced::prime(&deps, ChatLog::Room(id), &mut sends, DEDUPE_WINDOW).await?;
            let newest = deps
                .store
                .messages(id, Page::Before(None), RECENT as i64)
                .await?;
            let mut room = ChatRoom {
                id,
                study: state.study_id,
                sup,
                registry,
                closed: state.closed,
                last_seq: state.last_seq,
                recent: Recent::new(RECENT),
                joined: HashMap::new(),
                sends,
                typing: HashMap::new(),
                typing_timer: false,
                deps,
            };
            for m in newest {
                room.keep_recent(m);
            }
            Ok(room)
        })
    }

    fn supervision(&mut self) -> &mut Supervision {
        &mut self.sup
    }

    fn is_idle(&mut self) -> bool {
        self.joined.is_empty() && self.sends.is_idle()
    }

    fn handle_msg(
        &mut self,
        msg: ChatRoomMsg,
        reply: ReplyTo<Result<(), CommandError>>,
        ctx: &mut Context<Self>,
    ) {
        if !self.typing_timer {
            // Typing states expire on the server even if their client vanishes.
            self.typing_timer = true;
            ctx.run_interval(Duration::from_secs(1), |act, _| act.expire_typing());
        }
        match msg {
            ChatRoomMsg::Join {
                conn,
                user,
                last_seq,
                req,
            } => self.join(ctx, conn, user, last_seq, req),
            ChatRoomMsg::Leave { conn } => self.leave(conn),
            ChatRoomMsg::Send {
                conn,
                user,
                client_id,
                body,
                req,
            } => self.send(ctx, conn, user, client_id, body, req),
            ChatRoomMsg::Edit {
                conn,
                user,
                seq,
                body,
                req,
            } => match chat::body(&body) {
                Ok(b) => self.change(ctx, conn, user, seq, req, Change::Edit(b)),
                Err(e) => self.push(conn, frame::error(req, &e)),
            },
            ChatRoomMsg::Delete {
                conn,
                user,
                seq,
                req,
            } => self.change(ctx, conn, user, seq, req, Change::Delete),
            ChatRoomMsg::React {
                conn,
                user,
                seq,
                emoji,
                on,
                req,
            } => {
                if chat::EMOJIS.contains(&emoji.as_str()) {
                    self.change(ctx, conn, user, seq, req, Change::React(emoji, on));
                } else {
                    let e = ApiError::validation("emoji", "not one of the reaction emoji");
                    self.push(conn, frame::error(req, &e));
                }
            }
            ChatRoomMsg::Typing { conn, user, typing } => self.typing(conn, user, typing),
            ChatRoomMsg::Read {
                conn,
                user,
                seq,
                req,
            } => {
                // Only a socket that joined (and so passed the membership check) moves a marker.
                if !self.joined.contains_key(&conn) {
                    self.push(conn, frame::error(req, &ApiError::NotFound));
                } else {
                    let write = DurableWrite::ChatRead {
                        room_id: self.id,
                        user_id: user,
                        seq: seq.clamp(0, self.last_seq),
                    };
                    sequenced::commit_marker(self, ctx, write, (conn, req), |_| {});
                }
            }
            ChatRoomMsg::DropUser { user } => self.drop_user(user),
            ChatRoomMsg::Close { study, leader } => return self.close(ctx, study, leader, reply),
            ChatRoomMsg::Closed => self.mark_closed(),
        }
        reply.send(Ok(()));
    }
}

keyed_actor_handlers!(ChatRoom);

/// Tells every running room of a study that a user is out (left or removed).
pub async fn drop_user_from_rooms(registry: &Registry, rooms: Vec<RoomId>, user: UserId) {
    for room in rooms {
        let _ = registry
            .tell_if_running::<ChatRoom>(room, ChatRoomMsg::DropUser { user })
            .await;
    }
}
