//! `Study`: one per study with someone looking at it or acting on it. It is the single
//! writer for membership and status (apply, withdraw, decide, leave, remove, transfer,
//! status, edit), so these cannot race on one node; each write also re-checks its rule in
//! the store transaction, which keeps them correct across nodes. After each change it tells
//! the connections watching the study, and pushes the stored notifications to their users.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::actors::chat_room::{ChatRoom, ChatRoomMsg, drop_user_from_rooms};
use crate::actors::user_session::push_notifications;
use crate::ids::{ApplicationId, ConnId, StudyId, UserId};
use crate::keyed_actor_handlers;
use crate::registry::{ActorKey, Deps, KeyedActor, Registry, ReplyTo, Supervision};
use crate::store::{Rule, StoreError, now_millis};
use crate::studies::rules::StudyFields;
use crate::studies::{Application, ApplicationStatus, Notification, StudyStatus};
use crate::tasks::order::{Item, Newest, Step};
use crate::ws::hub::Control;

/// Studies one socket may watch at once: a tab shows one study; a few spare for overlays.
pub const MAX_WATCHED_PER_CONN: usize = 16;

pub struct Study {
    id: StudyId,
    sup: Supervision,
    deps: Arc<Deps>,
    registry: Registry,
    leader: UserId,
    status: StudyStatus,
    members: HashSet<UserId>,
    /// Sockets with this study open, and whose they are.
    watchers: HashMap<ConnId, UserId>,
    /// The newest version of each task and post announced, so none goes out of order.
    newest: Newest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StudyMsg {
    Watch {
        conn: ConnId,
        user: UserId,
    },
    Unwatch {
        conn: ConnId,
    },
    Apply {
        user: UserId,
        message: String,
    },
    Withdraw {
        user: UserId,
        application: ApplicationId,
    },
    Decide {
        leader: UserId,
        application: ApplicationId,
        accept: bool,
        reason: Option<String>,
    },
    Leave {
        user: UserId,
    },
    Transfer {
        leader: UserId,
        to: UserId,
    },
    Remove {
        leader: UserId,
        user: UserId,
        ban: bool,
    },
    SetStatus {
        leader: UserId,
        status: StudyStatus,
    },
    Edit {
        leader: UserId,
        fields: StudyFields,
    },
    /// Something already stored changed (a chat room opened or closed): tell the watchers.
    Announce {
        event: serde_json::Value,
    },
    /// Study content changed (a task or post): tell the watchers who are members, the only
    /// ones who may read it. With `order`, only if nothing newer about that item went out.
    AnnounceToMembers {
        event: serde_json::Value,
        order: Option<(Item, Step)>,
    },
    /// Deletes the study and everything in it (leader).
    Delete {
        leader: UserId,
    },
}

/// Why a command failed, in a form that can cross nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Rule(Rule),
    #[error("store unavailable")]
    Unavailable,
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rule(r) => CommandError::Rule(r),
            StoreError::Unavailable(_) => CommandError::Unavailable,
            other => CommandError::Internal(other.to_string()),
        }
    }
}

impl From<CommandError> for crate::error::ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Rule(r) => r.into(),
            CommandError::Unavailable => crate::error::ApiError::Unavailable,
            CommandError::Internal(m) => crate::error::ApiError::Internal(anyhow::anyhow!(m)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StudyOutcome {
    Done,
    Application(Application),
    /// The study is gone; these objects are to be deleted from storage.
    Deleted(Vec<String>),
}

pub type StudyReply = Result<StudyOutcome, CommandError>;

impl Actor for Study {
    type Context = Context<Self>;
}

/// What a finished write changes in the actor and tells the watchers.
struct Effect {
    event: serde_json::Value,
    notifications: Vec<Notification>,
    outcome: StudyOutcome,
}

impl Study {
    fn frame(&self, event: &serde_json::Value) -> bytestring::ByteString {
        json!({ "type": "study.event", "study_id": self.id, "event": event })
            .to_string()
            .into()
    }

    fn broadcast(&self, event: &serde_json::Value) {
        self.deps
            .hub
            .push_many(self.watchers.keys(), &self.frame(event));
    }

    /// Notifications are already stored; this is only the live push to open tabs.
    fn push(&self, notifications: Vec<Notification>) {
        if notifications.is_empty() {
            return;
        }
        let registry = self.registry.clone();
        actix_rt::spawn(async move { push_notifications(&registry, notifications).await });
    }

    /// Cuts a user off from this study's live state: their sockets stop watching it and are
    /// told, and every chat room of the study drops them. (Documents and video rooms join
    /// this list when they exist.)
    fn drop_user(&mut self, user: UserId) {
        self.drop_from_rooms(user);
        let conns: Vec<ConnId> = self
            .watchers
            .iter()
            .filter(|(_, u)| **u == user)
            .map(|(c, _)| *c)
            .collect();
        let frame: bytestring::ByteString = json!({ "type": "study.removed", "study_id": self.id })
            .to_string()
            .into();
        for c in conns {
            self.watchers.remove(&c);
            self.sup.unwatch(&c);
            self.deps.hub.push(c, frame.clone());
            self.deps
                .hub
                .control(c, Control::Unwatched { study: self.id });
        }
    }

    /// Every live chat room of the study lets the user go at once.
    fn drop_from_rooms(&self, user: UserId) {
        let (store, registry, id) = (self.deps.store.clone(), self.registry.clone(), self.id);
        actix_rt::spawn(async move {
            match store.room_ids(id).await {
                Ok(rooms) => drop_user_from_rooms(&registry, rooms, user).await,
                Err(e) => {
                    tracing::warn!(study = %id, error = %e, "could not list rooms to drop a user")
                }
            }
        });
    }

    /// Runs one store write with the mailbox paused, then applies its effect. `ctx.wait`
    /// keeps the next command from starting before this one committed: the single writer.
    fn run<F, A>(&mut self, ctx: &mut Context<Self>, reply: ReplyTo<StudyReply>, write: F, apply: A)
    where
        F: std::future::Future<Output = Result<Effect, StoreError>> + 'static,
        A: FnOnce(&mut Study, &Effect) + 'static,
    {
        ctx.wait(write.into_actor(self).map(move |res, act, _ctx| match res {
            Ok(effect) => {
                apply(act, &effect);
                act.broadcast(&effect.event);
                act.push(effect.notifications);
                reply.send(Ok(effect.outcome));
            }
            Err(e) => reply.send(Err(e.into())),
        }));
    }
}

impl KeyedActor for Study {
    type Id = StudyId;
    type Msg = StudyMsg;
    type Reply = StudyReply;

    fn key(id: StudyId) -> ActorKey {
        ActorKey::Study(id)
    }

    fn load(
        id: StudyId,
        deps: Arc<Deps>,
        registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, anyhow::Result<Self>> {
        Box::pin(async move {
            let state = deps
                .store
                .study_state(id)
                .await?
                .ok_or_else(|| anyhow::Error::new(Rule::NotFound))?;
            Ok(Study {
                id,
                sup,
                registry,
                leader: state.leader,
                status: state.status,
                members: state.members.into_iter().collect(),
                watchers: HashMap::new(),
                newest: Newest::default(),
                deps,
            })
        })
    }

    fn supervision(&mut self) -> &mut Supervision {
        &mut self.sup
    }

    fn handle_msg(&mut self, msg: StudyMsg, reply: ReplyTo<StudyReply>, ctx: &mut Context<Self>) {
        let store = self.deps.store.clone();
        let id = self.id;
        let now = now_millis();
        match msg {
            StudyMsg::Watch { conn, user } => {
                // The study page is visible to every signed-in user; events carry only kinds
                // and ids, and clients re-read details through role-checked routes.
                self.watchers.insert(conn, user);
                self.sup.watch(conn);
                reply.send(Ok(StudyOutcome::Done));
            }
            StudyMsg::Unwatch { conn } => {
                self.watchers.remove(&conn);
                self.sup.unwatch(&conn);
                reply.send(Ok(StudyOutcome::Done));
            }
            StudyMsg::Apply { user, message } => self.run(
                ctx,
                reply,
                async move {
                    let (a, notifications) = store.apply(id, user, &message, now).await?;
                    let event = json!({ "kind": "application_received", "application_id": a.id });
                    Ok(Effect {
                        event,
                        notifications,
                        outcome: StudyOutcome::Application(a),
                    })
                },
                |_, _| {},
            ),
            StudyMsg::Withdraw { user, application } => self.run(
                ctx,
                reply,
                async move {
                    let a = store.withdraw(id, application, user, now).await?;
                    let event = json!({ "kind": "application_withdrawn", "application_id": a.id });
                    Ok(Effect {
                        event,
                        notifications: vec![],
                        outcome: StudyOutcome::Application(a),
                    })
                },
                |_, _| {},
            ),
            StudyMsg::Decide {
                leader,
                application,
                accept,
                reason,
            } => self.run(
                ctx,
                reply,
                async move {
                    let (a, notifications) = store
                        .decide(id, application, leader, accept, reason, now)
                        .await?;
                    let kind = if accept {
                        "member_joined"
                    } else {
                        "application_rejected"
                    };
                    let event =
                        json!({ "kind": kind, "application_id": a.id, "user_id": a.user_id });
                    Ok(Effect {
                        event,
                        notifications,
                        outcome: StudyOutcome::Application(a),
                    })
                },
                |act, e| {
                    if let StudyOutcome::Application(a) = &e.outcome
                        && a.status == ApplicationStatus::Accepted
                    {
                        act.members.insert(a.user_id);
                    }
                },
            ),
            StudyMsg::Leave { user } => self.run(
                ctx,
                reply,
                async move {
                    store.leave(id, user, now).await?;
                    let event = json!({ "kind": "member_left", "user_id": user });
                    Ok(Effect {
                        event,
                        notifications: vec![],
                        outcome: StudyOutcome::Done,
                    })
                },
                move |act, _| {
                    act.members.remove(&user);
                    act.drop_from_rooms(user);
                },
            ),
            StudyMsg::Transfer { leader, to } => self.run(
                ctx,
                reply,
                async move {
                    store.transfer(id, leader, to, now).await?;
                    let event = json!({ "kind": "lead_transferred", "user_id": to });
                    Ok(Effect {
                        event,
                        notifications: vec![],
                        outcome: StudyOutcome::Done,
                    })
                },
                move |act, _| act.leader = to,
            ),
            StudyMsg::Remove { leader, user, ban } => self.run(
                ctx,
                reply,
                async move {
                    let notifications = store.remove_member(id, leader, user, ban, now).await?;
                    let event = json!({ "kind": "member_removed", "user_id": user });
                    Ok(Effect {
                        event,
                        notifications,
                        outcome: StudyOutcome::Done,
                    })
                },
                move |act, _| {
                    act.members.remove(&user);
                    act.drop_user(user);
                },
            ),
            StudyMsg::SetStatus { leader, status } => self.run(
                ctx,
                reply,
                async move {
                    let notifications = store.set_status(id, leader, status, now).await?;
                    let event = json!({ "kind": "status_changed", "status": status });
                    Ok(Effect {
                        event,
                        notifications,
                        outcome: StudyOutcome::Done,
                    })
                },
                move |act, _| act.status = status,
            ),
            StudyMsg::Announce { event } => {
                self.broadcast(&event);
                reply.send(Ok(StudyOutcome::Done));
            }
            StudyMsg::AnnounceToMembers { event, order } => {
                if let Some((item, step)) = order
                    && !self.newest.admit(item, step)
                {
                    reply.send(Ok(StudyOutcome::Done));
                    return;
                }
                let frame = self.frame(&event);
                for (conn, user) in &self.watchers {
                    if self.members.contains(user) {
                        self.deps.hub.push(*conn, frame.clone());
                    }
                }
                reply.send(Ok(StudyOutcome::Done));
            }
            StudyMsg::Delete { leader } => {
                let registry = self.registry.clone();
                let write = async move {
                    let rooms = store.room_ids(id).await?;
                    let keys = store.delete_study(id, leader).await?;
                    Ok::<_, StoreError>((rooms, keys))
                };
                ctx.wait(write.into_actor(self).map(move |res, act, ctx| match res {
                    Ok((rooms, keys)) => {
                        act.broadcast(&json!({ "kind": "deleted" }));
                        for (conn, _) in act.watchers.drain() {
                            act.sup.unwatch(&conn);
                            act.deps.hub.control(conn, Control::Unwatched { study: id });
                        }
                        // People in its rooms are told the rooms closed.
                        actix_rt::spawn(async move {
                            for room in rooms {
                                let _ = registry
                                    .tell_live::<ChatRoom>(room, ChatRoomMsg::Closed)
                                    .await;
                            }
                        });
                        reply.send(Ok(StudyOutcome::Deleted(keys)));
                        act.sup.stop_cleanly();
                        actix::ActorContext::stop(ctx);
                    }
                    Err(e) => reply.send(Err(e.into())),
                }));
            }
            StudyMsg::Edit { leader, fields } => self.run(
                ctx,
                reply,
                async move {
                    store.update_study(id, leader, &fields, now).await?;
                    Ok(Effect {
                        event: json!({ "kind": "updated" }),
                        notifications: vec![],
                        outcome: StudyOutcome::Done,
                    })
                },
                |_, _| {},
            ),
        }
    }
}

keyed_actor_handlers!(Study);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_errors_map_to_api_codes() {
        let e: crate::error::ApiError = CommandError::Rule(Rule::StudyFull).into();
        assert_eq!((e.status().as_u16(), e.code()), (409, "study_full"));
        let e: crate::error::ApiError = CommandError::Rule(Rule::NotFound).into();
        assert_eq!((e.status().as_u16(), e.code()), (404, "not_found"));
        let e: crate::error::ApiError = CommandError::Rule(Rule::Banned).into();
        assert_eq!((e.status().as_u16(), e.code()), (403, "banned"));
    }
}
