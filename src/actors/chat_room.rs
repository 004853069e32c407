//! `ChatRoom`: one per chat room with someone in it. It is the room's single writer:
//!
//! - Sends queue up; one batch at a time gets the next sequence numbers and goes to the
//!   persistence actor as one all-or-nothing write. Only after that commit does the room ack
//!   the senders and deliver the messages to every joined socket, in seq order. A failed batch
//!   gives its numbers back, so seqs never have gaps.
//! - Resends of a `client_id` already stored get the first ack again and store nothing.
//! - Joining with `last_seq` replays what the socket missed (from memory, else the store)
//!   before any live frame, so a reconnect sees no gap and no duplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use bytestring::ByteString;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::actors::sequenced::{SequencedSends, admit, settle};
use crate::actors::user_session::push_notifications;
use crate::chat::sequencer::{Pending, Sequencer};
use crate::chat::{self, Author, ChatMessage, NewChatMessage};
use crate::error::ApiError;
use crate::ids::{ConnId, RoomId, StudyId, UserId};
use crate::keyed_actor_handlers;
use crate::persist::PersistError;
use crate::ratelimit::Policy;
use crate::registry::{ActorKey, Deps, KeyedActor, Registry, ReplyTo, Supervision};
use crate::store::chat::Page;
use crate::store::{DurableWrite, Rule, StoreError, now_millis};
use crate::studies::{NewNotification, Role};
use crate::ws::protocol::error_frame;

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

pub struct ChatRoom {
    id: RoomId,
    study: StudyId,
    sup: Supervision,
    deps: Arc<Deps>,
    registry: Registry,
    closed: bool,
    /// Newest committed seq.
    last_seq: i64,
    recent: VecDeque<(ChatMessage, ByteString)>,
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
        req: Option<Value>,
    },
    Leave {
        conn: ConnId,
    },
    Send {
        conn: ConnId,
        user: Author,
        client_id: String,
        body: String,
        req: Option<Value>,
    },
    Edit {
        conn: ConnId,
        user: UserId,
        seq: i64,
        body: String,
        req: Option<Value>,
    },
    Delete {
        conn: ConnId,
        user: UserId,
        seq: i64,
        req: Option<Value>,
    },
    React {
        conn: ConnId,
        user: UserId,
        seq: i64,
        emoji: String,
        on: bool,
        req: Option<Value>,
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
        req: Option<Value>,
    },
    /// The user left or was removed from the study: out of the room at once.
    DropUser {
        user: UserId,
    },
    /// The leader closed the room (already stored).
    Closed,
}

impl Actor for ChatRoom {
    type Context = Context<Self>;
}

fn ack_frame(req: Option<Value>) -> ByteString {
    json!({ "type": "ack", "id": req }).to_string().into()
}

fn message_frame(room: RoomId, m: &ChatMessage) -> ByteString {
    json!({ "type": "chat.message", "room_id": room, "message": m })
        .to_string()
        .into()
}

impl ChatRoom {
    fn push(&self, conn: ConnId, frame: ByteString) {
        self.deps.hub.push(conn, frame);
    }

    fn broadcast(&self, frame: &ByteString) {
        self.deps.hub.push_many(self.joined.keys(), frame);
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
        let users = self.present_users();
        let frame = json!({ "type": "chat.presence", "room_id": self.id, "users": users })
            .to_string()
            .into();
        self.broadcast(&frame);
    }

    fn keep_recent(&mut self, m: ChatMessage, frame: ByteString) {
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((m, frame));
    }

    fn send(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnId,
        user: Author,
        client_id: String,
        body: String,
        req: Option<Value>,
    ) {
        if self.closed {
            return self.push(conn, error_frame(req, &Rule::RoomClosed.into()));
        }
        if !self.joined.contains_key(&conn) {
            return self.push(conn, error_frame(req, &ApiError::NotFound));
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
            let frame = message_frame(self.id, &msg);
            self.broadcast(&frame);
            for (conn, req) in p.waiters {
                self.ack(conn, req, p.author.id, &m.client_id, m.seq);
            }
            for u in &m.mentions {
                let excerpt: String = msg.body.chars().take(100).collect();
                notes.push(NewNotification {
                    user_id: *u,
                    kind: "chat_mention",
                    payload: json!({
                        "study_id": self.study, "room_id": self.id, "seq": m.seq,
                        "author": { "id": p.author.id, "display_name": p.author.display_name }, "excerpt": excerpt,
                    }),
                });
            }
            self.typing.remove(&p.author.id);
            self.sends.stored(p.author.id, m.client_id, m.seq);
            self.keep_recent(msg, frame);
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
        req: Option<Value>,
    ) {
        let store = self.deps.store.clone();
        let (room, study) = (self.id, self.study);
        let from_memory = self
            .recent
            .front()
            .is_none_or(|(m, _)| last_seq.is_none_or(|l| m.seq <= l + 1));
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
            Err(e) => act.push(conn, error_frame(req, &e.into())),
            Ok((read_seq, missed)) => {
                let joined = json!({
                    "type": "chat.joined", "id": req, "room_id": act.id, "last_seq": act.last_seq,
                    "read_seq": read_seq, "closed": act.closed,
                    "presence": act.present_users(),
                });
                act.push(conn, joined.to_string().into());
                if let Some(l) = last_seq {
                    let mut upto = l;
                    for m in missed.iter().take_while(|m| m.seq <= act.last_seq) {
                        act.push(conn, message_frame(act.id, m));
                        upto = m.seq;
                    }
                    // Whatever committed meanwhile is in memory.
                    let frames: Vec<ByteString> = act
                        .recent
                        .iter()
                        .filter(|(m, _)| m.seq > upto)
                        .take(RESUME_MAX as usize)
                        .map(|(_, f)| f.clone())
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
        req: Option<Value>,
        kind: Change,
    ) {
        if self.closed {
            return self.push(conn, error_frame(req, &Rule::RoomClosed.into()));
        }
        if !self.joined.contains_key(&conn) {
            return self.push(conn, error_frame(req, &ApiError::NotFound));
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
                        act.push(conn, ack_frame(req));
                        let frame: ByteString =
                            json!({ "type": "chat.updated", "room_id": act.id, "message": m })
                                .to_string()
                                .into();
                        act.broadcast(&frame);
                        if let Some(slot) = act.recent.iter_mut().find(|(r, _)| r.seq == m.seq) {
                            let f = message_frame(act.id, &m);
                            *slot = (m, f);
                        }
                    }
                    Err(e) => act.push(conn, error_frame(req, &e)),
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
        let frame: ByteString =
            json!({ "type": "chat.typing", "room_id": self.id, "user": user, "typing": typing })
                .to_string()
                .into();
        for (conn, a) in &self.joined {
            if a.id != user.id {
                self.deps.hub.push(*conn, frame.clone());
            }
        }
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

    fn push(&self, conn: ConnId, frame: ByteString) {
        ChatRoom::push(self, conn, frame)
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        ChatRoom::flush(self, ctx)
    }

    fn committed(&mut self, batch: Vec<Pending>, messages: Vec<NewChatMessage>) {
        ChatRoom::committed(self, batch, messages)
    }

    fn ack(&self, conn: ConnId, req: Option<Value>, _author: UserId, client_id: &str, seq: i64) {
        let ack = json!({ "type": "chat.ack", "id": req, "room_id": self.id, "client_id": client_id, "seq": seq });
        ChatRoom::push(self, conn, ack.to_string().into());
    }

    fn stored_seqs(&self, keys: Vec<(UserId, String)>) -> BoxFuture<'static, Vec<Option<i64>>> {
        let (store, room) = (self.deps.store.clone(), self.id);
        Box::pin(async move {
            let mut found = Vec::with_capacity(keys.len());
            for (u, c) in keys {
                found.push(store.client_seq(room, u, &c).await.ok().flatten());
            }
            found
        })
    }
}

impl KeyedActor for ChatRoom {
    type Id = RoomId;
    type Msg = ChatRoomMsg;
    type Reply = ();

    fn key(id: RoomId) -> ActorKey {
        ActorKey::ChatRoom(id)
    }

    fn load(
        id: RoomId,
        deps: Arc<Deps>,
        registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, anyhow::Result<Self>> {
        Box::pin(async move {
            let state = deps
                .store
                .room_state(id)
                .await?
                .ok_or_else(|| anyhow::Error::new(Rule::NotFound))?;
            let mut room = ChatRoom {
                id,
                study: state.study_id,
                sup,
                registry,
                closed: state.closed,
                last_seq: state.last_seq,
                recent: VecDeque::new(),
                joined: HashMap::new(),
                sends: Sequencer::new(SEND_POLICY, DEDUPE_WINDOW, QUEUE_MAX, BATCH_MAX),
                typing: HashMap::new(),
                typing_timer: false,
                deps: deps.clone(),
            };
            for (u, c, s) in deps
                .store
                .recent_client_ids(id, DEDUPE_WINDOW as i64)
                .await?
                .into_iter()
                .rev()
            {
                room.sends.stored(u, c, s);
            }
            for m in deps
                .store
                .messages(id, Page::Before(None), RECENT as i64)
                .await?
            {
                let f = message_frame(id, &m);
                room.keep_recent(m, f);
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

    fn handle_msg(&mut self, msg: ChatRoomMsg, reply: ReplyTo<()>, ctx: &mut Context<Self>) {
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
                Err(e) => self.push(conn, error_frame(req, &e)),
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
                    self.push(
                        conn,
                        error_frame(
                            req,
                            &ApiError::validation("emoji", "not one of the reaction emoji"),
                        ),
                    );
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
                    self.push(conn, error_frame(req, &ApiError::NotFound));
                    return reply.send(());
                }
                let persister = self.deps.persister.clone();
                let write = DurableWrite::ChatRead {
                    room_id: self.id,
                    user_id: user,
                    seq: seq.clamp(0, self.last_seq),
                };
                ctx.spawn(
                    async move { persister.persist(write).await }
                        .into_actor(self)
                        .map(move |r, act, _| match r {
                            Ok(()) => act.push(conn, ack_frame(req)),
                            Err(e) => act.push(conn, error_frame(req, &e.into())),
                        }),
                );
            }
            ChatRoomMsg::DropUser { user } => {
                let conns: Vec<ConnId> = self
                    .joined
                    .iter()
                    .filter(|(_, a)| a.id == user)
                    .map(|(c, _)| *c)
                    .collect();
                let frame: ByteString = json!({ "type": "chat.removed", "room_id": self.id })
                    .to_string()
                    .into();
                for c in &conns {
                    self.joined.remove(c);
                    self.sup.unwatch(c);
                    self.push(*c, frame.clone());
                }
                self.typing.remove(&user);
                if !conns.is_empty() {
                    self.presence();
                }
            }
            ChatRoomMsg::Closed => {
                self.closed = true;
                let frame: ByteString = json!({ "type": "chat.closed", "room_id": self.id })
                    .to_string()
                    .into();
                self.broadcast(&frame);
            }
        }
        reply.send(());
    }
}

keyed_actor_handlers!(ChatRoom);

/// Tells every live room of a study that a user is out (left or removed).
pub async fn drop_user_from_rooms(registry: &Registry, rooms: Vec<RoomId>, user: UserId) {
    for room in rooms {
        let _ = registry
            .tell_live::<ChatRoom>(room, ChatRoomMsg::DropUser { user })
            .await;
    }
}
