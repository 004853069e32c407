//! `UserSession`: one per user with at least one open tab. It knows the user's live
//! connections (on any node, by `ConnId`) and fans out to all of them: notifications land
//! here, and logging out closes the sockets opened with that login session.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Context};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::ids::{ConnId, SessionId, UserId};
use crate::keyed_actor_handlers;
use crate::registry::{ActorKey, Deps, KeyedActor, Registry, ReplyTo, Supervision};
use crate::studies::Notification;
use crate::ws::close_code;
use crate::ws::hub::{ConnHub, Control};
use crate::ws::protocol::ServerMsg;

pub struct UserSession {
    user: UserId,
    sup: Supervision,
    hub: Arc<ConnHub>,
    /// Live tabs and the login session each was opened with.
    conns: HashMap<ConnId, SessionId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UserSessionMsg {
    /// A tab opened (or re-attached after a resync).
    Attach { conn: ConnId, session: SessionId },
    /// A tab closed.
    Detach { conn: ConnId },
    /// Deliver a notification to every open tab.
    Notify { notification: serde_json::Value },
    /// Deliver an already-serialized frame to every open tab (direct messages, receipts).
    Push { frame: String },
    /// The login session was revoked: close its tabs with 4001.
    SessionRevoked { session: SessionId },
    /// List the live tabs.
    Connections,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserSessionReply {
    Done,
    /// How many tabs a notification or close reached.
    Reached(usize),
    Connections(Vec<ConnId>),
}

impl UserSession {
    /// Queues one frame (shared bytes) for every open tab; returns how many took it.
    fn fan_out(&self, frame: bytestring::ByteString) -> usize {
        self.conns
            .keys()
            .filter(|c| self.hub.push(**c, frame.clone()))
            .count()
    }
}

impl Actor for UserSession {
    type Context = Context<Self>;
}

impl KeyedActor for UserSession {
    type Id = UserId;
    type Msg = UserSessionMsg;
    type Reply = UserSessionReply;

    fn key(id: UserId) -> ActorKey {
        ActorKey::UserSession(id)
    }

    fn load(
        id: UserId,
        deps: Arc<Deps>,
        _registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, anyhow::Result<Self>> {
        Box::pin(async move {
            // The user must exist; a deleted account gets no session actor.
            deps.store
                .user(id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user {id}"))?;
            Ok(UserSession {
                user: id,
                sup,
                hub: deps.hub.clone(),
                conns: HashMap::new(),
            })
        })
    }

    fn supervision(&mut self) -> &mut Supervision {
        &mut self.sup
    }

    fn handle_msg(
        &mut self,
        msg: UserSessionMsg,
        reply: ReplyTo<UserSessionReply>,
        _ctx: &mut Context<Self>,
    ) {
        let r = match msg {
            UserSessionMsg::Attach { conn, session } => {
                self.conns.insert(conn, session);
                self.sup.watch(conn);
                UserSessionReply::Done
            }
            UserSessionMsg::Detach { conn } => {
                self.conns.remove(&conn);
                self.sup.unwatch(&conn);
                UserSessionReply::Done
            }
            UserSessionMsg::Notify { notification } => {
                // Serialized once; every tab shares the same bytes.
                let frame = ServerMsg::Notification {
                    notification: &notification,
                }
                .to_text();
                UserSessionReply::Reached(self.fan_out(frame))
            }
            UserSessionMsg::Push { frame } => UserSessionReply::Reached(self.fan_out(frame.into())),
            UserSessionMsg::SessionRevoked { session } => {
                let mut n = 0;
                for (conn, s) in &self.conns {
                    if *s == session {
                        let close = Control::Close {
                            code: close_code::SESSION_ENDED,
                            reason: "logged_out".into(),
                        };
                        n += usize::from(self.hub.control(*conn, close));
                    }
                }
                UserSessionReply::Reached(n)
            }
            UserSessionMsg::Connections => {
                UserSessionReply::Connections(self.conns.keys().copied().collect())
            }
        };
        tracing::trace!(user = %self.user, "user session handled a message");
        reply.send(r);
    }
}

keyed_actor_handlers!(UserSession);

/// Pushes already-stored notifications to every open tab of their users. Best effort: a
/// user with no live session is skipped (no actor is started for them), and the inbox keeps
/// everything for the next page load.
pub async fn push_notifications(registry: &Registry, list: Vec<Notification>) {
    for n in list {
        let user = n.user_id;
        let msg = UserSessionMsg::Notify {
            notification: serde_json::to_value(&n).unwrap_or_default(),
        };
        if let Err(e) = registry.tell_live::<UserSession>(user, msg).await {
            tracing::warn!(%user, error = %e, "live notification not delivered (it is stored)");
        }
    }
}
