//! `DirectChat`: one per conversation between two users, its single writer. Like a chat room
//! it numbers messages with no gaps, commits a batch before anyone sees it, dedupes resent
//! client ids and replays what a tab missed; unlike a room, it delivers to every open tab of
//! both users (through their `UserSession`s), and it carries read receipts back to the sender.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::actors::chat_room::SEND_POLICY;
use crate::actors::sequenced::{SequencedSends, admit, settle};
use crate::actors::user_session::{UserSession, UserSessionMsg};
use crate::chat::sequencer::{Pending, Sequencer};
use crate::chat::{Author, DirectMessage, NewDirectMessage};
use crate::error::ApiError;
use crate::ids::{ConnId, UserId};
use crate::keyed_actor_handlers;
use crate::persist::PersistError;
use crate::registry::{ActorKey, Deps, KeyedActor, Registry, ReplyTo, Supervision};
use crate::store::chat::Page;
use crate::store::{DurableWrite, Rule, StoreError, now_millis};
use crate::ws::protocol::error_frame;

/// Messages kept in memory for resume.
const RECENT: usize = 500;
/// At most this many missed messages are replayed on sync; the client pages the rest.
pub const SYNC_MAX: i64 = 1000;
/// Client ids remembered for deduplication (the store's unique index stands behind them).
const DEDUPE_WINDOW: usize = 5000;
const QUEUE_MAX: usize = 500;
const BATCH_MAX: usize = 256;
/// Frames waiting for delivery to the two users' sessions, in order.
const DELIVERY_QUEUE: usize = 4096;

pub struct DirectChat {
    pair: (UserId, UserId),
    sup: Supervision,
    deps: Arc<Deps>,
    last_seq: i64,
    /// How far each side has read (index 0: pair.0, 1: pair.1).
    read: [i64; 2],
    recent: VecDeque<DirectMessage>,
    sends: Sequencer,
    /// Frames for users' tabs, delivered in order by one task.
    outbox: mpsc::Sender<(UserId, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DirectMsg {
    Send {
        conn: ConnId,
        sender: Author,
        client_id: String,
        body: String,
        req: Option<Value>,
    },
    Sync {
        conn: ConnId,
        user: UserId,
        last_seq: i64,
        req: Option<Value>,
    },
    Read {
        conn: ConnId,
        reader: UserId,
        seq: i64,
        req: Option<Value>,
    },
}

impl Actor for DirectChat {
    type Context = Context<Self>;
}

impl DirectChat {
    fn other(&self, user: UserId) -> UserId {
        if user == self.pair.0 {
            self.pair.1
        } else {
            self.pair.0
        }
    }

    fn side(&self, user: UserId) -> usize {
        usize::from(user != self.pair.0)
    }

    fn push(&self, conn: ConnId, frame: bytestring::ByteString) {
        self.deps.hub.push(conn, frame);
    }

    fn frame_for(&self, receiver: UserId, m: &DirectMessage) -> String {
        json!({ "type": "dm.message", "with": self.other(receiver), "message": m }).to_string()
    }

    /// Queues a frame for every tab of `user`; the delivery task keeps the order.
    fn deliver(&self, user: UserId, frame: String) {
        if self.outbox.try_send((user, frame)).is_err() {
            tracing::warn!(%user, "direct message delivery queue full; the message is stored");
        }
    }

    fn send(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnId,
        sender: Author,
        client_id: String,
        body: String,
        req: Option<Value>,
    ) {
        admit(self, ctx, sender, client_id, body, (conn, req));
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(batch) = self.sends.next_batch() else {
            return;
        };
        let (store, persister, pair, first) = (
            self.deps.store.clone(),
            self.deps.persister.clone(),
            self.pair,
            self.last_seq + 1,
        );
        let now = now_millis();
        let messages: Vec<NewDirectMessage> = batch
            .iter()
            .enumerate()
            .map(|(i, p)| NewDirectMessage {
                seq: first + i as i64,
                client_id: p.client_id.clone(),
                sender_id: p.author.id,
                body: p.body.clone(),
                at: now,
            })
            .collect();
        let fut = async move {
            // Checked per batch: writing needs a study in common now, not when the
            // conversation started.
            if !store.share_study(pair.0, pair.1).await? {
                return Err(PersistError::Store(StoreError::Rule(Rule::NotFound)));
            }
            persister
                .persist(DurableWrite::DirectMessages {
                    pair,
                    messages: messages.clone(),
                })
                .await?;
            Ok(messages)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| settle(act, ctx, batch, res)),
        );
    }

    fn committed(&mut self, batch: Vec<Pending>, messages: Vec<NewDirectMessage>) {
        for (p, m) in batch.into_iter().zip(messages) {
            self.last_seq = m.seq;
            let msg = DirectMessage {
                seq: m.seq,
                client_id: m.client_id.clone(),
                sender: p.author.clone(),
                body: m.body,
                created_at: m.at,
            };
            for user in [self.pair.0, self.pair.1] {
                self.deliver(user, self.frame_for(user, &msg));
            }
            for (conn, req) in p.waiters {
                self.ack(conn, req, p.author.id, &m.client_id, m.seq);
            }
            self.sends.stored(p.author.id, m.client_id, m.seq);
            if self.recent.len() >= RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(msg);
        }
    }

    fn sync(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnId,
        user: UserId,
        last_seq: i64,
        req: Option<Value>,
    ) {
        let from_memory = self.recent.front().is_none_or(|m| m.seq <= last_seq + 1);
        let (store, pair) = (self.deps.store.clone(), self.pair);
        let fut = async move {
            if from_memory {
                Ok(Vec::new())
            } else {
                store
                    .direct_messages(pair, Page::After(last_seq), SYNC_MAX)
                    .await
            }
        };
        // `wait`: no new message is delivered between the replay and the live stream.
        ctx.wait(fut.into_actor(self).map(move |res, act, _| match res {
            Err(e) => act.push(conn, error_frame(req, &e.into())),
            Ok(missed) => {
                let other = act.other(user);
                let synced = json!({
                    "type": "dm.synced", "id": req, "with": other, "last_seq": act.last_seq,
                    "read_seq": act.read[act.side(other)],
                });
                act.push(conn, synced.to_string().into());
                let mut upto = last_seq;
                for m in missed.iter().take_while(|m| m.seq <= act.last_seq) {
                    act.push(conn, act.frame_for(user, m).into());
                    upto = m.seq;
                }
                let rest: Vec<String> = act
                    .recent
                    .iter()
                    .filter(|m| m.seq > upto)
                    .map(|m| act.frame_for(user, m))
                    .collect();
                for f in rest.into_iter().take(SYNC_MAX as usize) {
                    act.push(conn, f.into());
                }
            }
        }));
    }

    fn read(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnId,
        reader: UserId,
        seq: i64,
        req: Option<Value>,
    ) {
        // Nothing to have read in an empty conversation: no marker is written for strangers.
        if self.last_seq == 0 {
            return self.push(conn, error_frame(req, &ApiError::NotFound));
        }
        let seq = seq.clamp(0, self.last_seq);
        let persister = self.deps.persister.clone();
        let write = DurableWrite::DirectRead {
            pair: self.pair,
            reader,
            seq,
        };
        ctx.spawn(
            async move { persister.persist(write).await }
                .into_actor(self)
                .map(move |r, act, _| match r {
                    Ok(()) => {
                        let side = act.side(reader);
                        act.read[side] = act.read[side].max(seq);
                        act.push(conn, json!({ "type": "ack", "id": req }).to_string().into());
                        // The check mark: every tab of the other side learns how far this one read.
                        let receipt =
                            json!({ "type": "dm.read", "with": reader, "seq": act.read[side] })
                                .to_string();
                        act.deliver(act.other(reader), receipt);
                    }
                    Err(e) => act.push(conn, error_frame(req, &e.into())),
                }),
        );
    }
}

impl SequencedSends for DirectChat {
    type Committed = Vec<NewDirectMessage>;

    fn sends(&mut self) -> &mut Sequencer {
        &mut self.sends
    }

    fn push(&self, conn: ConnId, frame: bytestring::ByteString) {
        DirectChat::push(self, conn, frame)
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        DirectChat::flush(self, ctx)
    }

    fn committed(&mut self, batch: Vec<Pending>, messages: Vec<NewDirectMessage>) {
        DirectChat::committed(self, batch, messages)
    }

    fn ack(&self, conn: ConnId, req: Option<Value>, author: UserId, client_id: &str, seq: i64) {
        let ack = json!({ "type": "dm.ack", "id": req, "to": self.other(author), "client_id": client_id, "seq": seq });
        DirectChat::push(self, conn, ack.to_string().into());
    }

    fn stored_seqs(&self, keys: Vec<(UserId, String)>) -> BoxFuture<'static, Vec<Option<i64>>> {
        let (store, pair) = (self.deps.store.clone(), self.pair);
        Box::pin(async move {
            let mut found = Vec::with_capacity(keys.len());
            for (u, c) in keys {
                found.push(store.direct_client_seq(pair, u, &c).await.ok().flatten());
            }
            found
        })
    }
}

impl KeyedActor for DirectChat {
    type Id = (UserId, UserId);
    type Msg = DirectMsg;
    type Reply = ();

    fn key(pair: (UserId, UserId)) -> ActorKey {
        ActorKey::DirectChat(pair.0, pair.1)
    }

    fn load(
        pair: (UserId, UserId),
        deps: Arc<Deps>,
        registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, anyhow::Result<Self>> {
        Box::pin(async move {
            if pair.0 >= pair.1 {
                return Err(anyhow::Error::new(Rule::NotFound));
            }
            let (last_seq, read_a, read_b) = deps.store.direct_state(pair).await?;
            let (outbox, mut rx) = mpsc::channel::<(UserId, String)>(DELIVERY_QUEUE);
            // One task delivers in order; it ends when the actor (the only sender) is gone.
            actix_rt::spawn(async move {
                while let Some((user, frame)) = rx.recv().await {
                    let _ = registry
                        .tell_live::<UserSession>(user, UserSessionMsg::Push { frame })
                        .await;
                }
            });
            let mut chat = DirectChat {
                pair,
                sup,
                deps: deps.clone(),
                last_seq,
                read: [read_a, read_b],
                recent: VecDeque::new(),
                sends: Sequencer::new(SEND_POLICY, DEDUPE_WINDOW, QUEUE_MAX, BATCH_MAX),
                outbox,
            };
            for (u, c, s) in deps
                .store
                .direct_recent_client_ids(pair, DEDUPE_WINDOW as i64)
                .await?
                .into_iter()
                .rev()
            {
                chat.sends.stored(u, c, s);
            }
            chat.recent = deps
                .store
                .direct_messages(pair, Page::Before(None), RECENT as i64)
                .await?
                .into();
            Ok(chat)
        })
    }

    fn supervision(&mut self) -> &mut Supervision {
        &mut self.sup
    }

    fn is_idle(&mut self) -> bool {
        self.sends.is_idle()
    }

    fn handle_msg(&mut self, msg: DirectMsg, reply: ReplyTo<()>, ctx: &mut Context<Self>) {
        match msg {
            DirectMsg::Send {
                conn,
                sender,
                client_id,
                body,
                req,
            } => self.send(ctx, conn, sender, client_id, body, req),
            DirectMsg::Sync {
                conn,
                user,
                last_seq,
                req,
            } => self.sync(ctx, conn, user, last_seq, req),
            DirectMsg::Read {
                conn,
                reader,
                seq,
                req,
            } => self.read(ctx, conn, reader, seq, req),
        }
        reply.send(());
    }
}

keyed_actor_handlers!(DirectChat);
