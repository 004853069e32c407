//! The per-connection actor behind `/ws`.
//!
//! Each socket gets two tasks: this actor's loop, which owns the connection's state (user,
//! session, rate bucket, heartbeat clock) and handles inbound frames and control messages one
//! at a time; and a writer, which drains the bounded outbound queue into the socket. Other
//! actors never touch the socket: they push frames through the hub.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseReason};
use bytestring::ByteString;
use tokio::sync::{Semaphore, mpsc};

use super::close_code;
use super::hub::{Control, Outbound};
use super::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};
use crate::actors::chat_room::{ChatRoom, ChatRoomMsg};
use crate::actors::direct_chat::{DirectChat, DirectMsg};
use crate::actors::study::{MAX_WATCHED_PER_CONN, Study, StudyMsg};
use crate::actors::user_session::{UserSession, UserSessionMsg};
use crate::chat::Author;
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::ids::{ConnId, RoomId, SessionId, StudyId, UserId};
use crate::ratelimit::{Bucket, Policy};
use crate::registry::ActorKey;
use crate::server::AppState;
use crate::store::{DurableWrite, Millis, User, now_millis};

/// Requests per connection: a burst of 100, 50 a second sustained. Generous for a browser
/// tab, tight enough that one socket cannot monopolize its actor's attention.
pub const SOCKET_POLICY: Policy = Policy::new(100, 50.0);
/// Chat rooms one socket may have joined at once (a study has at most 3 open).
pub const MAX_ROOMS_PER_CONN: usize = 16;
/// Requests awaiting a durable commit per connection; beyond this the client gets `busy`.
pub const MAX_IN_FLIGHT: usize = 64;
/// How long a close frame may wait for room in a congested socket before we just hang up.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Preference keys: short identifiers; values: small strings (UI settings, not documents).
const PREF_KEY_MAX: usize = 64;
const PREF_VALUE_MAX: usize = 4096;

/// Upgrades an authenticated request to a WebSocket and starts the connection actor.
pub async fn upgrade(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    // A cross-site page could open a socket with the user's cookie: the upgrade is a GET, so
    // the general CSRF check does not cover it.
    crate::http::check_origin(&req, &state)?;
    if state.is_shutting_down() {
        return Err(ApiError::Unavailable);
    }
    let (resp, session, stream) =
        actix_ws::handle(&req, payload).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let settings = &state.settings;
    let hard_max = settings.ws_max_message_bytes.saturating_mul(4);
    let stream = stream
        .max_frame_size(hard_max)
        .aggregate_continuations()
        .max_continuation_size(hard_max);
    let reg = state
        .hub
        .register(auth.user.id, auth.session, settings.ws_outbound_queue);
    actix_rt::spawn(writer(session.clone(), reg.out));
    let conn = Connection {
        id: reg.id,
        user: auth.user,
        session: auth.session,
        session_expires_at: auth.expires_at,
        out: reg.out_tx,
        ws: session,
        state: state.clone(),
        last_heard: Instant::now(),
        bucket: SOCKET_POLICY.bucket(Instant::now()),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        watching: HashSet::new(),
        rooms: HashSet::new(),
    };
    actix_rt::spawn(conn.run(stream, reg.ctl));
    Ok(resp)
}

/// Frames taken from the queue per wake-up: everything queued for a connection is handed to
/// the socket back to back, so the HTTP layer encodes them into one buffer and writes them in
/// one go instead of one write per frame.
const WRITE_BATCH: usize = 128;

/// Drains the outbound queue into the socket until either side goes away.
async fn writer(mut ws: actix_ws::Session, mut out: mpsc::Receiver<Outbound>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while out.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for frame in batch.drain(..) {
            let r = match frame {
                Outbound::Text(t) => ws.text(t).await,
                Outbound::Ping => ws.ping(b"").await,
                Outbound::Pong(p) => ws.pong(&p).await,
            };
            if r.is_err() {
                return;
            }
        }
    }
}

struct Connection {
    id: ConnId,
    user: User,
    session: SessionId,
    session_expires_at: Millis,
    /// This connection's own outbound queue (replies it produces itself, pings).
    out: mpsc::Sender<Outbound>,
    ws: actix_ws::Session,
    state: web::Data<AppState>,
    last_heard: Instant,
    bucket: Bucket,
    in_flight: Arc<Semaphore>,
    /// Studies this socket watches (to unwatch on close and re-watch after a resync).
    watching: HashSet<StudyId>,
    /// Chat rooms this socket joined.
    rooms: HashSet<RoomId>,
}

/// How the loop ended, for the close frame and the metric.
struct Ending {
    code: u16,
    reason: &'static str,
}

impl Connection {
    async fn run(mut self, mut stream: AggregatedMessageStream, mut ctl: mpsc::Receiver<Control>) {
        let hello = ServerMsg::Hello {
            v: PROTOCOL_VERSION,
            conn_id: self.id.to_string(),
            user: &self.user,
            heartbeat_ms: self.state.settings.heartbeat().as_millis() as u64,
            max_message_bytes: self.state.settings.ws_max_message_bytes,
        }
        .to_text();
        self.send(hello);
        self.attach().await;

        let heartbeat = self.state.settings.heartbeat();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        let ending = loop {
            tokio::select! {
                msg = stream.recv() => match msg {
                    None => break None,
                    Some(Ok(m)) => {
                        self.last_heard = Instant::now();
                        if let Some(end) = self.on_frame(m).await {
                            break Some(end);
                        }
                    }
                    Some(Err(e)) => {
                        let (code, reason) = match e {
                            actix_ws::ProtocolError::Overflow => (close_code::TOO_BIG, "frame_too_large"),
                            _ => (close_code::PROTOCOL_ERROR, "protocol_error"),
                        };
                        break Some(Ending { code, reason });
                    }
                },
                c = ctl.recv() => match c {
                    None => break Some(Ending { code: close_code::GOING_AWAY, reason: "server_stopping" }),
                    Some(c) => if let Some(end) = self.on_control(c).await {
                        break Some(end);
                    },
                },
                _ = tick.tick() => {
                    if self.last_heard.elapsed() >= heartbeat * 2 {
                        break Some(Ending { code: close_code::HEARTBEAT_TIMEOUT, reason: "heartbeat_timeout" });
                    }
                    if now_millis() >= self.session_expires_at {
                        break Some(Ending { code: close_code::SESSION_ENDED, reason: "session_expired" });
                    }
                    if self.out.try_send(Outbound::Ping).is_err() {
                        break Some(Ending { code: close_code::SLOW_CONSUMER, reason: "slow_consumer" });
                    }
                }
            }
        };
        if let Some(end) = ending {
            metrics::counter!(crate::metrics::WS_CLOSED, "reason" => end.reason).increment(1);
            let close = CloseReason {
                code: end.code.into(),
                description: Some(end.reason.to_string()),
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, self.ws.clone().close(Some(close))).await;
        }
        self.state.hub.unregister(self.id);
        let _ = self
            .state
            .registry
            .tell_live::<UserSession>(self.user.id, UserSessionMsg::Detach { conn: self.id })
            .await;
        for room in std::mem::take(&mut self.rooms) {
            let _ = self
                .state
                .registry
                .tell_live::<ChatRoom>(room, ChatRoomMsg::Leave { conn: self.id })
                .await;
        }
        for study in std::mem::take(&mut self.watching) {
            let _ = self
                .state
                .registry
                .tell_live::<Study>(study, StudyMsg::Unwatch { conn: self.id })
                .await;
        }
    }

    /// Registers this tab with the user's session actor (notifications fan out from there).
    async fn attach(&self) {
        let msg = UserSessionMsg::Attach {
            conn: self.id,
            session: self.session,
        };
        if let Err(e) = self
            .state
            .registry
            .tell::<UserSession>(self.user.id, msg)
            .await
        {
            tracing::warn!(conn = %self.id, error = %e, "could not attach to user session");
        }
    }

    /// Queues a frame this connection produced itself; a full queue means a slow consumer.
    fn send(&self, frame: ByteString) {
        if !self.state.hub.push(self.id, frame) {
            tracing::debug!(conn = %self.id, "frame dropped: connection gone or slow");
        }
    }

    fn send_error(&self, id: Option<serde_json::Value>, err: &ApiError) {
        self.send(protocol::error_frame(id, err));
    }

    async fn on_control(&mut self, c: Control) -> Option<Ending> {
        match c {
            Control::Close { code, reason } => Some(Ending {
                code,
                reason: match code {
                    close_code::SESSION_ENDED => "session_ended",
                    close_code::GOING_AWAY => "server_stopping",
                    _ => {
                        tracing::debug!(%reason, "closing connection");
                        "closed_by_server"
                    }
                },
            }),
            Control::SlowConsumer => Some(Ending {
                code: close_code::SLOW_CONSUMER,
                reason: "slow_consumer",
            }),
            Control::Unwatched { study } => {
                self.watching.remove(&study);
                None
            }
            Control::Resync { key } => {
                let (study_id, room_id) = match key {
                    ActorKey::UserSession(_) => {
                        self.attach().await;
                        (None, None)
                    }
                    ActorKey::Study(study) => {
                        // Watch again (which restarts the study actor); the client re-reads.
                        if let Err(e) = self.watch(study).await {
                            tracing::debug!(%study, error = %e, "re-watch after resync failed");
                        }
                        (Some(study), None)
                    }
                    ActorKey::ChatRoom(room) => {
                        // Only the client knows its last seq: it re-joins with it.
                        self.rooms.remove(&room);
                        (None, Some(room))
                    }
                    // The client re-syncs its open conversation with its last seq.
                    ActorKey::DirectChat(..) => (None, None),
                    #[cfg(test)]
                    ActorKey::Probe(_) => (None, None),
                };
                self.send(
                    ServerMsg::Resync {
                        scope: key.kind(),
                        study_id,
                        room_id,
                    }
                    .to_text(),
                );
                None
            }
        }
    }

    async fn on_frame(&mut self, msg: AggregatedMessage) -> Option<Ending> {
        match msg {
            AggregatedMessage::Text(text) => {
                self.on_text(text).await;
                None
            }
            AggregatedMessage::Binary(_) => {
                // Binary frames are reserved for Yjs and bulk payloads in later protocol parts.
                self.send(
                    ServerMsg::Error {
                        id: None,
                        error: "unsupported_binary",
                        message: "binary frames are not accepted on this connection yet".into(),
                        retry_after_ms: None,
                    }
                    .to_text(),
                );
                None
            }
            AggregatedMessage::Ping(p) => {
                if self.out.try_send(Outbound::Pong(p)).is_err() {
                    return Some(Ending {
                        code: close_code::SLOW_CONSUMER,
                        reason: "slow_consumer",
                    });
                }
                None
            }
            AggregatedMessage::Pong(_) => None,
            AggregatedMessage::Close(_) => Some(Ending {
                code: 1000,
                reason: "client_closed",
            }),
        }
    }

    async fn on_text(&mut self, text: ByteString) {
        if text.len() > self.state.settings.ws_max_message_bytes {
            self.send(
                ServerMsg::Error {
                    id: None,
                    error: "message_too_large",
                    message: format!(
                        "messages are limited to {} bytes",
                        self.state.settings.ws_max_message_bytes
                    ),
                    retry_after_ms: None,
                }
                .to_text(),
            );
            return;
        }
        if let Err(wait) = self.bucket.take(&SOCKET_POLICY, Instant::now()) {
            let e = ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            };
            self.send_error(None, &e);
            return;
        }
        let msg = match protocol::parse(&text) {
            Ok(m) => m,
            Err(e) => {
                self.send(
                    ServerMsg::Error {
                        id: e.id(),
                        error: e.code(),
                        message: e.message(),
                        retry_after_ms: None,
                    }
                    .to_text(),
                );
                return;
            }
        };
        match msg {
            ClientMsg::Ping { id } => self.send(ServerMsg::Pong { id }.to_text()),
            ClientMsg::PrefsGet { id } => match self.state.store.user_prefs(self.user.id).await {
                Ok(p) => self.send(
                    ServerMsg::Prefs {
                        id,
                        prefs: p.into_iter().collect(),
                    }
                    .to_text(),
                ),
                Err(e) => self.send_error(id, &e.into()),
            },
            ClientMsg::PrefsSet { id, key, value } => self.prefs_set(id, key, value),
            ClientMsg::StudyWatch { id, study_id } => match self.watch(study_id).await {
                Ok(()) => self.send(ServerMsg::Ack { id }.to_text()),
                Err(e) => self.send_error(id, &e),
            },
            ClientMsg::ChatJoin {
                id,
                room_id,
                last_seq,
            } => {
                if !self.rooms.contains(&room_id) && self.rooms.len() >= MAX_ROOMS_PER_CONN {
                    let e = ApiError::validation(
                        "room_id",
                        format!("at most {MAX_ROOMS_PER_CONN} rooms per socket"),
                    );
                    return self.send_error(id, &e);
                }
                self.rooms.insert(room_id);
                let msg = ChatRoomMsg::Join {
                    conn: self.id,
                    user: self.author(),
                    last_seq,
                    req: id.clone(),
                };
                self.to_room(room_id, id, msg).await;
            }
            ClientMsg::ChatLeave { id, room_id } => {
                if self.rooms.remove(&room_id) {
                    let _ = self
                        .state
                        .registry
                        .tell_live::<ChatRoom>(room_id, ChatRoomMsg::Leave { conn: self.id })
                        .await;
                }
                self.send(ServerMsg::Ack { id }.to_text());
            }
            ClientMsg::ChatSend {
                id,
                room_id,
                client_id,
                body,
            } => {
                let msg = ChatRoomMsg::Send {
                    conn: self.id,
                    user: self.author(),
                    client_id,
                    body,
                    req: id.clone(),
                };
                self.to_joined_room(room_id, id, msg).await;
            }
            ClientMsg::ChatEdit {
                id,
                room_id,
                seq,
                body,
            } => {
                let msg = ChatRoomMsg::Edit {
                    conn: self.id,
                    user: self.user.id,
                    seq,
                    body,
                    req: id.clone(),
                };
                self.to_joined_room(room_id, id, msg).await;
            }
            ClientMsg::ChatDelete { id, room_id, seq } => {
                let msg = ChatRoomMsg::Delete {
                    conn: self.id,
                    user: self.user.id,
                    seq,
                    req: id.clone(),
                };
                self.to_joined_room(room_id, id, msg).await;
            }
            ClientMsg::ChatReact {
                id,
                room_id,
                seq,
                emoji,
                on,
            } => {
                let msg = ChatRoomMsg::React {
                    conn: self.id,
                    user: self.user.id,
                    seq,
                    emoji,
                    on,
                    req: id.clone(),
                };
                self.to_joined_room(room_id, id, msg).await;
            }
            ClientMsg::ChatTyping {
                id,
                room_id,
                typing,
            } => {
                let msg = ChatRoomMsg::Typing {
                    conn: self.id,
                    user: self.author(),
                    typing,
                };
                self.to_joined_room(room_id, id, msg).await;
            }
            ClientMsg::ChatRead { id, room_id, seq } => {
                let msg = ChatRoomMsg::Read {
                    conn: self.id,
                    user: self.user.id,
                    seq,
                    req: id.clone(),
                };
                self.to_joined_room(room_id, id, msg).await;
            }
            ClientMsg::DmSend {
                id,
                to,
                client_id,
                body,
            } => {
                let msg = DirectMsg::Send {
                    conn: self.id,
                    sender: self.author(),
                    client_id,
                    body,
                    req: id.clone(),
                };
                self.to_conversation(to, id, msg).await;
            }
            ClientMsg::DmSync { id, with, last_seq } => {
                let msg = DirectMsg::Sync {
                    conn: self.id,
                    user: self.user.id,
                    last_seq,
                    req: id.clone(),
                };
                self.to_conversation(with, id, msg).await;
            }
            ClientMsg::DmRead { id, with, seq } => {
                let msg = DirectMsg::Read {
                    conn: self.id,
                    reader: self.user.id,
                    seq,
                    req: id.clone(),
                };
                self.to_conversation(with, id, msg).await;
            }
            ClientMsg::StudyUnwatch { id, study_id } => {
                if self.watching.remove(&study_id) {
                    let msg = StudyMsg::Unwatch { conn: self.id };
                    let _ = self.state.registry.tell_live::<Study>(study_id, msg).await;
                }
                self.send(ServerMsg::Ack { id }.to_text());
            }
        }
    }

    fn author(&self) -> Author {
        Author {
            id: self.user.id,
            display_name: self.user.display_name.clone(),
        }
    }

    /// Hands a direct-message request to the conversation with `other`; it answers the
    /// socket itself. Writing needs a study in common, which the conversation checks.
    async fn to_conversation(&self, other: UserId, id: Option<serde_json::Value>, msg: DirectMsg) {
        if other == self.user.id {
            return self.send_error(
                id,
                &ApiError::validation("to", "you cannot message yourself"),
            );
        }
        let pair = crate::chat::pair(self.user.id, other);
        if let Err(e) = self.state.registry.tell::<DirectChat>(pair, msg).await {
            self.send_error(id, &e.into());
        }
    }

    /// Hands a chat request to its room; the room answers the socket itself.
    async fn to_room(&self, room: RoomId, id: Option<serde_json::Value>, msg: ChatRoomMsg) {
        if let Err(e) = self.state.registry.tell::<ChatRoom>(room, msg).await {
            self.send_error(id, &e.into());
        }
    }

    /// Like `to_room`, for requests that need the socket to have joined the room first.
    async fn to_joined_room(&self, room: RoomId, id: Option<serde_json::Value>, msg: ChatRoomMsg) {
        if !self.rooms.contains(&room) {
            return self.send_error(id, &ApiError::NotFound);
        }
        self.to_room(room, id, msg).await;
    }

    /// Starts watching a study: checked by the study's own actor (a missing study is
    /// `not_found`), bounded per socket.
    async fn watch(&mut self, study: StudyId) -> Result<(), ApiError> {
        if !self.watching.contains(&study) && self.watching.len() >= MAX_WATCHED_PER_CONN {
            return Err(ApiError::validation(
                "study_id",
                format!("at most {MAX_WATCHED_PER_CONN} studies at once"),
            ));
        }
        let msg = StudyMsg::Watch {
            conn: self.id,
            user: self.user.id,
        };
        self.state
            .registry
            .ask::<Study>(study, msg)
            .await?
            .map_err(ApiError::from)?;
        self.watching.insert(study);
        Ok(())
    }

    /// Stores a preference through the group-commit persister and acks after the commit.
    /// The wait happens off this loop so one tab can have many writes in flight.
    fn prefs_set(&self, id: Option<serde_json::Value>, key: String, value: String) {
        let key_ok = !key.is_empty()
            && key.len() <= PREF_KEY_MAX
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if !key_ok {
            let e = ApiError::validation(
                "key",
                format!("key must be 1–{PREF_KEY_MAX} of a–z 0–9 _ . -"),
            );
            return self.send_error(id, &e);
        }
        if value.len() > PREF_VALUE_MAX {
            let e = ApiError::validation(
                "value",
                format!("value must be at most {PREF_VALUE_MAX} bytes"),
            );
            return self.send_error(id, &e);
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return self.send_error(id, &ApiError::Busy);
        };
        let write = DurableWrite::UserPref {
            user_id: self.user.id,
            key,
            value,
            at: now_millis(),
        };
        let persister = self.state.persister.clone();
        let hub = self.state.hub.clone();
        let conn = self.id;
        actix_rt::spawn(async move {
            let frame = match persister.persist(write).await {
                Ok(()) => ServerMsg::Ack { id }.to_text(),
                Err(e) => protocol::error_frame(id, &ApiError::from(e)),
            };
            hub.push(conn, frame);
            drop(permit);
        });
    }
}
