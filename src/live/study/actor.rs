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

use super::frames::{StudyEvent, StudyEventFrame, StudyRemoved};
use crate::chat::{Category, Room};
use crate::ids::{ApplicationId, ConnId, StudyId, UserId};
use crate::keyed_actor_handlers;
use crate::live::CommandError;
use crate::live::chat::{ChatRoom, ChatRoomMsg, drop_user_from_rooms};
use crate::live::doc::drop_user_from_docs;
use crate::live::user::push_notifications;
use crate::live::video::{VideoMsg, VideoRoom};
use crate::registry::{Deps, KeyedActor, Registry, ReplyTo, ResyncScope, StartError, Supervision};
use crate::store::{Rule, StoreError, now_millis};
use crate::studies::rules::StudyFields;
use crate::studies::{Application, ApplicationStatus, Notification, StudyStatus};
use crate::tasks::order::{Item, Newest, Step};
use crate::ws::frame::ServerFrame;
use crate::ws::router::Control;

/// Studies one socket may watch at once: a tab shows one study; a few spare for overlays.
pub const MAX_WATCHED_PER_CONN: usize = 16;

pub struct Study {
    id: StudyId,
    sup: Supervision,
    deps: Arc<Deps>,
    registry: Registry,
    leader: UserId,
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
    /// A member opens a chat room (at most 3 open per study, checked in the transaction).
    OpenRoom {
        user: UserId,
        name: String,
        category: Category,
    },
    /// Something already stored changed (a chat room closed): tell the watchers.
    Announce {
        event: StudyEvent,
    },
    /// Study content changed (a task or post): tell the watchers who are members, the only
    /// ones who may read it. With `order`, only if nothing newer about that item went out.
    AnnounceToMembers {
        event: StudyEvent,
        order: Option<(Item, Step)>,
    },
    /// Deletes the study and everything in it (leader).
    Delete {
        leader: UserId,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StudyOutcome {
    Done,
    Application(Application),
    Room(Room),
    /// The study is gone; these objects are to be deleted from storage.
    Deleted(Vec<String>),
}

pub type StudyReply = Result<StudyOutcome, CommandError>;

impl Actor for Study {
    type Context = Context<Self>;
}

/// What a finished write changes in the actor and tells the watchers.
struct Effect {
    event: StudyEvent,
    notifications: Vec<Notification>,
    outcome: StudyOutcome,
}

impl Study {
    fn frame(&self, event: &StudyEvent) -> crate::ws::frame::Frame {
        StudyEventFrame {
            study_id: self.id,
            event,
        }
        .to_frame()
    }

    fn broadcast(&self, event: &StudyEvent) {
        self.deps
            .sockets
            .push_many(self.watchers.keys(), &self.frame(event));
    }

    /// Tells a socket this study let it go (it frees its watch slot).
    fn release(&self, conn: ConnId) {
        let key = Study::key(self.id);
        self.deps.sockets.control(conn, Control::Released { key });
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
    /// told, and every chat room and post document of the study drops them. (Video rooms
    /// join this list when they exist.)
    fn drop_user(&mut self, user: UserId) {
        self.drop_from_rooms(user);
        let conns: Vec<ConnId> = self
            .watchers
            .iter()
            .filter(|(_, u)| **u == user)
            .map(|(c, _)| *c)
            .collect();
        let frame = StudyRemoved { study_id: self.id }.to_frame();
        for c in conns {
            self.watchers.remove(&c);
            self.sup.unwatch(&c);
            self.deps.sockets.push(c, frame.clone());
            self.release(c);
        }
    }

    /// Every live chat room of the study lets the user go at once.
    fn drop_from_rooms(&self, user: UserId) {
        let (store, registry, id) = (self.deps.store.clone(), self.registry.clone(), self.id);
        actix_rt::spawn(async move {
            let gone = VideoMsg::MemberGone { user };
            let _ = registry.tell_if_running::<VideoRoom>(id, gone).await;
            match store.room_ids(id).await {
                Ok(rooms) => drop_user_from_rooms(&registry, rooms, user).await,
                Err(e) => {
                    tracing::warn!(study = %id, error = %e, "could not list rooms to drop a user")
                }
            }
            match store.post_ids(id).await {
                Ok(posts) => drop_user_from_docs(&registry, posts, user).await,
                Err(e) => {
                    tracing::warn!(study = %id, error = %e, "could not list posts to drop a user")
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
    const KIND: &'static str = "study";
    type Id = StudyId;
    type Msg = StudyMsg;
    type Reply = StudyReply;

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
            Ok(Study {
                id,
                sup,
                registry,
                leader: state.leader,
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
                    let event = StudyEvent::ApplicationReceived {
                        application_id: a.id,
                    };
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
                    let event = StudyEvent::ApplicationWithdrawn {
                        application_id: a.id,
                    };
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
                    let (application_id, user_id) = (a.id, a.user_id);
                    let event = if accept {
                        StudyEvent::MemberJoined {
                            application_id,
                            user_id,
                        }
                    } else {
                        StudyEvent::ApplicationRejected {
                            application_id,
                            user_id,
                        }
                    };
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
                    let event = StudyEvent::MemberLeft { user_id: user };
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
                    let event = StudyEvent::LeadTransferred { user_id: to };
                    Ok(Effect {
                        event,
                        notifications: vec![],
                        outcome: StudyOutcome::Done,
                    })
                },
                move |act, _| {
                    act.leader = to;
                    let (registry, id) = (act.registry.clone(), act.id);
                    actix_rt::spawn(async move {
                        let msg = VideoMsg::LeaderChanged { leader: to };
                        let _ = registry.tell_if_running::<VideoRoom>(id, msg).await;
                    });
                },
            ),
            StudyMsg::Remove { leader, user, ban } => self.run(
                ctx,
                reply,
                async move {
                    let notifications = store.remove_member(id, leader, user, ban, now).await?;
                    let event = StudyEvent::MemberRemoved { user_id: user };
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
                    let event = StudyEvent::StatusChanged { status };
                    Ok(Effect {
                        event,
                        notifications,
                        outcome: StudyOutcome::Done,
                    })
                },
                |_, _| {},
            ),
            StudyMsg::OpenRoom {
                user,
                name,
                category,
            } => self.run(
                ctx,
                reply,
                async move {
                    let room = store.create_room(id, user, &name, category, now).await?;
                    Ok(Effect {
                        event: StudyEvent::RoomOpened { room_id: room.id },
                        notifications: vec![],
                        outcome: StudyOutcome::Room(room),
                    })
                },
                |_, _| {},
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
                let members = self
                    .watchers
                    .iter()
                    .filter(|(_, user)| self.members.contains(user))
                    .map(|(conn, _)| conn);
                self.deps.sockets.push_many(members, &self.frame(&event));
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
                        act.broadcast(&StudyEvent::Deleted);
                        let watchers: Vec<ConnId> = act.watchers.drain().map(|(c, _)| c).collect();
                        for conn in watchers {
                            act.sup.unwatch(&conn);
                            act.release(conn);
                        }
                        // People in its rooms are told the rooms closed (the rows are gone).
                        actix_rt::spawn(async move {
                            // The video room ends with the study.
                            let end = VideoMsg::StudyGone;
                            let _ = registry.tell_if_running::<VideoRoom>(id, end).await;
                            for room in rooms {
                                let _ = registry
                                    .tell_if_running::<ChatRoom>(room, ChatRoomMsg::Closed)
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
                        event: StudyEvent::Updated,
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
