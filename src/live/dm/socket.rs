//! The `dm.*` family: requests about the conversation with another user, handed to its
//! `DirectChat` actor, which answers the socket itself.

use async_trait::async_trait;

use super::conversation::{DirectChat, DirectMsg};
use crate::error::ApiError;
use crate::ids::UserId;
use crate::ws::family::{Conn, Family};
use crate::ws::frame::ReqId;

crate::client_requests! {
    pub enum DmRequest {
        "dm.send" => Send { to: UserId, client_id: String, body: String },
        "dm.sync" => Sync { with: UserId, last_seq: i64 },
        "dm.read" => Read { with: UserId, seq: i64 },
    }
}

pub struct DmSocket;

impl DmSocket {
    /// Hands a direct-message request to the conversation with `other`. Writing needs a
    /// study in common, which the conversation checks.
    async fn to_conversation(conn: &Conn<'_>, other: UserId, id: Option<ReqId>, msg: DirectMsg) {
        if other == conn.user.id {
            let e = ApiError::validation("to", "you cannot message yourself");
            return conn.error(id, &e);
        }
        let pair = crate::chat::pair(conn.user.id, other);
        if let Err(e) = conn.registry().tell::<DirectChat>(pair, msg).await {
            conn.error(id, &e.into());
        }
    }
}

#[async_trait(?Send)]
impl Family for DmSocket {
    type Request = DmRequest;
    const FRAMES: &'static [&'static str] = super::frames::SERVER_FRAMES;

    fn open(_conn: &Conn<'_>) -> Self {
        DmSocket
    }

    async fn on_request(&mut self, conn: &Conn<'_>, id: Option<ReqId>, req: DmRequest) {
        let me = conn.id;
        let (other, msg) = match req {
            DmRequest::Send {
                to,
                client_id,
                body,
            } => (
                to,
                DirectMsg::Send {
                    conn: me,
                    sender: conn.author(),
                    client_id,
                    body,
                    req: id.clone(),
                },
            ),
            DmRequest::Sync { with, last_seq } => (
                with,
                DirectMsg::Sync {
                    conn: me,
                    user: conn.user.id,
                    last_seq,
                    req: id.clone(),
                },
            ),
            DmRequest::Read { with, seq } => (
                with,
                DirectMsg::Read {
                    conn: me,
                    reader: conn.user.id,
                    seq,
                    req: id.clone(),
                },
            ),
        };
        Self::to_conversation(conn, other, id, msg).await;
    }
}
