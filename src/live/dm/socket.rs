//! The `dm.*` family: requests about the conversation with another user, handed to its
//! `DirectChat` actor, which answers the socket itself.

use std::collections::HashSet;

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

/// Peers a socket remembers as allowed; past this the memory starts over (one query each).
const PEERS_REMEMBERED: usize = 256;

pub struct DmSocket {
    /// Users this socket may talk to (checked once each), so a conversation's actor is only
    /// ever started for a pair that may have one.
    peers: HashSet<UserId>,
}

impl DmSocket {
    /// Whether the two may have a conversation: they share a study now, or wrote to each
    /// other before (history stays readable after one leaves). Checked before any actor
    /// starts: an id that is no user, or a stranger, starts nothing.
    async fn may_talk(&mut self, conn: &Conn<'_>, other: UserId) -> Result<bool, ApiError> {
        if self.peers.contains(&other) {
            return Ok(true);
        }
        let store = &conn.app.store;
        let me = conn.user.id;
        let ok = store.share_study(me, other).await?
            || store.direct_state(crate::chat::pair(me, other)).await?.0 > 0;
        if ok {
            if self.peers.len() >= PEERS_REMEMBERED {
                self.peers.clear();
            }
            self.peers.insert(other);
        }
        Ok(ok)
    }

    /// Hands a direct-message request to the conversation with `other`. Sending needs a
    /// study in common now, which the conversation checks with every batch.
    async fn hand_to_conversation(
        &mut self,
        conn: &Conn<'_>,
        other: UserId,
        id: Option<ReqId>,
        msg: DirectMsg,
    ) {
        if other == conn.user.id {
            let e = ApiError::validation("to", "you cannot message yourself");
            return conn.error(id, &e);
        }
        match self.may_talk(conn, other).await {
            Ok(true) => {}
            Ok(false) => return conn.error(id, &ApiError::NotFound),
            Err(e) => return conn.error(id, &e),
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
        DmSocket {
            peers: HashSet::new(),
        }
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
        self.hand_to_conversation(conn, other, id, msg).await;
    }
}
