//! The `chat.*` family: the rooms a socket joined (at most [`MAX_ROOMS_PER_CONN`]), requests
//! handed to their `ChatRoom` actors, and leaving every room on close.

use std::collections::HashSet;

use async_trait::async_trait;

use super::room::{ChatRoom, ChatRoomMsg};
use crate::error::ApiError;
use crate::ids::RoomId;
use crate::ws::family::{Conn, Family};
use crate::ws::frame::ReqId;
use crate::ws::router::Control;

/// Chat rooms one socket may have joined at once (a study has at most 3 open).
pub const MAX_ROOMS_PER_CONN: usize = 16;

crate::client_requests! {
    pub enum ChatRequest {
        "chat.join" => Join { room_id: RoomId, #[serde(default)] last_seq: Option<i64> },
        "chat.leave" => Leave { room_id: RoomId },
        "chat.send" => Send { room_id: RoomId, client_id: String, body: String },
        "chat.edit" => Edit { room_id: RoomId, seq: i64, body: String },
        "chat.delete" => Delete { room_id: RoomId, seq: i64 },
        "chat.react" => React { room_id: RoomId, seq: i64, emoji: String, on: bool },
        "chat.typing" => Typing { room_id: RoomId, typing: bool },
        "chat.read" => Read { room_id: RoomId, seq: i64 },
    }
}

pub struct ChatSocket {
    /// Chat rooms this socket joined.
    rooms: HashSet<RoomId>,
}

impl ChatSocket {
    async fn may_join(conn: &Conn<'_>, room: RoomId) -> Result<bool, ApiError> {
        let store = &conn.app.store;
        let Some(state) = store.room_state(room).await? else {
            return Ok(false);
        };
        let role = store.role_of(state.study_id, conn.user.id).await?;
        Ok(role.is_some_and(crate::studies::Role::is_member))
    }

    /// Hands a request to its room; the room answers the socket itself.
    async fn to_room(conn: &Conn<'_>, room: RoomId, id: Option<ReqId>, msg: ChatRoomMsg) {
        if let Err(e) = conn.registry().tell::<ChatRoom>(room, msg).await {
            conn.error(id, &e.into());
        }
    }

    /// Like `to_room`, for requests that need the socket to have joined the room first.
    async fn to_joined_room(
        &self,
        conn: &Conn<'_>,
        room: RoomId,
        id: Option<ReqId>,
        msg: ChatRoomMsg,
    ) {
        if !self.rooms.contains(&room) {
            return conn.error(id, &ApiError::NotFound);
        }
        Self::to_room(conn, room, id, msg).await;
    }
}

#[async_trait(?Send)]
impl Family for ChatSocket {
    type Request = ChatRequest;
    const FRAMES: &'static [&'static str] = super::frames::SERVER_FRAMES;

    fn open(_conn: &Conn<'_>) -> Self {
        ChatSocket {
            rooms: HashSet::new(),
        }
    }

    async fn on_request(&mut self, conn: &Conn<'_>, id: Option<ReqId>, req: ChatRequest) {
        let me = conn.id;
        match req {
            ChatRequest::Join { room_id, last_seq } => {
                if !self.rooms.contains(&room_id) && self.rooms.len() >= MAX_ROOMS_PER_CONN {
                    let e = ApiError::validation(
                        "room_id",
                        format!("at most {MAX_ROOMS_PER_CONN} rooms per socket"),
                    );
                    return conn.error(id, &e);
                }
                // The room must exist and the caller belong to its study before its actor is
                // started; the room checks again when the socket joins.
                match Self::may_join(conn, room_id).await {
                    Ok(true) => {}
                    Ok(false) => return conn.error(id, &ApiError::NotFound),
                    Err(e) => return conn.error(id, &e),
                }
                self.rooms.insert(room_id);
                let msg = ChatRoomMsg::Join {
                    conn: me,
                    user: conn.author(),
                    last_seq,
                    req: id.clone(),
                };
                Self::to_room(conn, room_id, id, msg).await;
            }
            ChatRequest::Leave { room_id } => {
                if self.rooms.remove(&room_id) {
                    let msg = ChatRoomMsg::Leave { conn: me };
                    let _ = conn
                        .registry()
                        .tell_if_running::<ChatRoom>(room_id, msg)
                        .await;
                }
                conn.ack(id);
            }
            ChatRequest::Send {
                room_id,
                client_id,
                body,
            } => {
                let msg = ChatRoomMsg::Send {
                    conn: me,
                    user: conn.author(),
                    client_id,
                    body,
                    req: id.clone(),
                };
                self.to_joined_room(conn, room_id, id, msg).await;
            }
            ChatRequest::Edit { room_id, seq, body } => {
                let msg = ChatRoomMsg::Edit {
                    conn: me,
                    user: conn.user.id,
                    seq,
                    body,
                    req: id.clone(),
                };
                self.to_joined_room(conn, room_id, id, msg).await;
            }
            ChatRequest::Delete { room_id, seq } => {
                let msg = ChatRoomMsg::Delete {
                    conn: me,
                    user: conn.user.id,
                    seq,
                    req: id.clone(),
                };
                self.to_joined_room(conn, room_id, id, msg).await;
            }
            ChatRequest::React {
                room_id,
                seq,
                emoji,
                on,
            } => {
                let msg = ChatRoomMsg::React {
                    conn: me,
                    user: conn.user.id,
                    seq,
                    emoji,
                    on,
                    req: id.clone(),
                };
                self.to_joined_room(conn, room_id, id, msg).await;
            }
            ChatRequest::Typing { room_id, typing } => {
                let msg = ChatRoomMsg::Typing {
                    conn: me,
                    user: conn.author(),
                    typing,
                };
                self.to_joined_room(conn, room_id, id, msg).await;
            }
            ChatRequest::Read { room_id, seq } => {
                let msg = ChatRoomMsg::Read {
                    conn: me,
                    user: conn.user.id,
                    seq,
                    req: id.clone(),
                };
                self.to_joined_room(conn, room_id, id, msg).await;
            }
        }
    }

    async fn on_control(&mut self, _conn: &Conn<'_>, c: &Control) {
        match c {
            // Only the client knows its last seq: it re-joins with it after the resync frame.
            Control::Resync { key } | Control::Released { key } => {
                if let Some(room) = key.id_of::<ChatRoom>() {
                    self.rooms.remove(&room);
                }
            }
            _ => {}
        }
    }

    async fn on_close(&mut self, conn: &Conn<'_>) {
        for room in std::mem::take(&mut self.rooms) {
            let msg = ChatRoomMsg::Leave { conn: conn.id };
            let _ = conn.registry().tell_if_running::<ChatRoom>(room, msg).await;
        }
    }
}
