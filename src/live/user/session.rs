//! `UserSession`: one per user with at least one open tab. It knows the user's live
//! connections (on any node, by `ConnId`) and fans out to all of them: notifications land
//! here, and logging out closes the sockets opened with that login session.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Context};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::socket::NotificationFrame;
use crate::ids::{ConnId, SessionId, UserId};
use crate::keyed_actor_handlers;
use crate::registry::{Deps, KeyedActor, Registry, ReplyTo, StartError, Supervision};
use crate::store::Rule;
use crate::studies::Notification;
use crate::ws::close_code;
use crate::ws::frame::{Frame, ServerFrame};
use crate::ws::router::{Control, Sockets};

pub struct UserSession {
    user: UserId,
    sup: Supervision,
    sockets: Sockets,
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
    Notify { notification: Notification },
    /// Deliver an already-serialized frame to every open tab (direct messages, receipts).
    Push { frame: Frame },
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
    fn fan_out(&self, frame: Frame) -> usize {
        self.conns
            .keys()
            .filter(|c| self.sockets.push(**c, frame.clone()))
            .count()
    }
}

impl Actor for UserSession {
    type Context = Context<Self>;
}

impl KeyedActor for UserSession {
    const KIND: &'static str = "user_session";
    type Id = UserId;
    type Msg = UserSessionMsg;
    type Reply = UserSessionReply;

    fn load(
        id: UserId,
        deps: Arc<Deps>,
        _registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, Result<Self, StartError>> {
        Box::pin(async move {
            // The user must exist; a deleted account gets no session actor.
            deps.store.user(id).await?.ok_or(Rule::NotFound)?;
            Ok(UserSession {
                user: id,
                sup,
                sockets: deps.sockets.clone(),
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
                let frame = NotificationFrame {
                    notification: &notification,
                }
                .to_frame();
                UserSessionReply::Reached(self.fan_out(frame))
            }
            UserSessionMsg::Push { frame } => UserSessionReply::Reached(self.fan_out(frame)),
            UserSessionMsg::SessionRevoked { session } => {
                let mut n = 0;
                for (conn, s) in &self.conns {
                    if *s == session {
                        let close = Control::Close {
                            code: close_code::SESSION_ENDED,
                            reason: "logged_out".into(),
                        };
                        n += usize::from(self.sockets.control(*conn, close));
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
/// user with no running session (no tab open anywhere) is skipped, and the inbox keeps
/// everything for the next page load.
pub async fn push_notifications(registry: &Registry, list: Vec<Notification>) {
    for notification in list {
        let user = notification.user_id;
        let msg = UserSessionMsg::Notify { notification };
        if let Err(e) = registry.tell_if_running::<UserSession>(user, msg).await {
            tracing::warn!(%user, error = %e, "live notification not delivered (it is stored)");
        }
    }
}
