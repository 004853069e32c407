//! `DirectChat`: one per conversation between two users, its single writer. Like a chat room
//! it numbers messages with no gaps, commits a batch before anyone sees it, dedupes resent
//! client ids and replays what a tab missed; unlike a room, it delivers to every open tab of
//! both users (through their `UserSession`s), and it carries read receipts back to the sender.

use std::sync::Arc;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::frames::{DmAck, DmMessage, DmRead, DmSynced};
use crate::chat::sequencer::{Pending, Sequencer};
use crate::chat::{Author, DirectMessage, NewDirectMessage};
use crate::error::ApiError;
use crate::ids::{ConnId, UserId};
use crate::keyed_actor_handlers;
use crate::live::chat::SEND_POLICY;
use crate::live::sequenced::{self, Recent, Seq, SequencedSends, admit, settle};
use crate::live::user::{UserSession, UserSessionMsg};
use crate::persist::PersistError;
use crate::registry::{Deps, KeyedActor, Registry, ReplyTo, StartError, Supervision};
use crate::store::chat::{ChatLog, Page};
use crate::store::{DurableWrite, Fence, Rule, StoreError, now_millis};
use crate::ws::frame::{self, Frame, ReqId, ServerFrame};

/// Messages kept in memory for resume.
const RECENT: usize = 500;
/// At most this many missed messages are replayed on sync; the client pages the rest.
pub const SYNC_MAX: i64 = 1000;
/// Client ids remembered for deduplication (the store's unique index stands behind them).
const DEDUPE_WINDOW: usize = 5000;
/// Sends waiting for the next batch before senders get `busy`.
const QUEUE_MAX: usize = 500;
/// Messages per commit.
const BATCH_MAX: usize = 256;
/// Frames waiting for delivery to the two users' sessions, in order.
const DELIVERY_QUEUE: usize = 4096;

impl Seq for DirectMessage {
    fn seq(&self) -> i64 {
        self.seq
    }
}

pub struct DirectChat {
    pair: (UserId, UserId),
    sup: Supervision,
    deps: Arc<Deps>,
    last_seq: i64,
    /// How far each side has read (index 0: pair.0, 1: pair.1).
    read: [i64; 2],
    recent: Recent<DirectMessage>,
    sends: Sequencer,
    /// Frames for users' tabs, delivered in order by one task.
    outbox: mpsc::Sender<(UserId, Frame)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DirectMsg {
    Send {
        conn: ConnId,
        sender: Author,
        client_id: String,
        body: String,
        req: Option<ReqId>,
    },
    Sync {
        conn: ConnId,
        user: UserId,
        last_seq: i64,
        req: Option<ReqId>,
    },
    Read {
        conn: ConnId,
        reader: UserId,
        seq: i64,
        req: Option<ReqId>,
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

    fn frame_for(&self, receiver: UserId, m: &DirectMessage) -> Frame {
        DmMessage {
            with: self.other(receiver),
            message: m,
        }
        .to_frame()
    }

    /// Queues a frame for every tab of `user`; the delivery task keeps the order.
    fn deliver(&self, user: UserId, frame: Frame) {
        if self.outbox.try_send((user, frame)).is_err() {
            tracing::warn!(%user, "direct message delivery queue full; the message is stored");
        }
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
        let fence = Some(Fence::of(self.sup.lease()));
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
                    fence,
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
            for w in p.waiters {
                self.ack(w, p.author.id, &m.client_id, m.seq);
            }
            self.sends.stored(p.author.id, m.client_id, m.seq);
            self.recent.push(msg);
        }
    }

    fn sync(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnId,
        user: UserId,
        last_seq: i64,
        req: Option<ReqId>,
    ) {
        let from_memory = self.recent.covers(Some(last_seq));
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
            Err(e) => act.push(conn, frame::error(req, &e.into())),
            Ok(missed) => {
                let other = act.other(user);
                let synced = DmSynced {
                    id: req,
                    with: other,
                    last_seq: act.last_seq,
                    read_seq: act.read[act.side(other)],
                }
                .to_frame();
                act.push(conn, synced);
                let (stored, kept) =
                    act.recent
                        .replay(&missed, last_seq, act.last_seq, SYNC_MAX as usize);
                let frames: Vec<Frame> =
                    stored.chain(kept).map(|m| act.frame_for(user, m)).collect();
                for f in frames {
                    act.push(conn, f);
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
        req: Option<ReqId>,
    ) {
        // Nothing to have read in an empty conversation: no marker is written for strangers.
        if self.last_seq == 0 {
            return self.push(conn, frame::error(req, &ApiError::NotFound));
        }
        let seq = seq.clamp(0, self.last_seq);
        let write = DurableWrite::DirectRead {
            pair: self.pair,
            reader,
            seq,
        };
        sequenced::commit_marker(self, ctx, write, (conn, req), move |act| {
            let side = act.side(reader);
            act.read[side] = act.read[side].max(seq);
            // The check mark: every tab of the other side learns how far this one read.
            let receipt = DmRead {
                with: reader,
                seq: act.read[side],
            }
            .to_frame();
            act.deliver(act.other(reader), receipt);
        });
    }
}

impl SequencedSends for DirectChat {
    type Committed = Vec<NewDirectMessage>;

    fn sends(&mut self) -> &mut Sequencer {
        &mut self.sends
    }

    fn deps(&self) -> &Arc<Deps> {
        &self.deps
    }

    fn log(&self) -> ChatLog {
        ChatLog::Direct(self.pair.0, self.pair.1)
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        DirectChat::flush(self, ctx)
    }

    fn committed(&mut self, batch: Vec<Pending>, messages: Vec<NewDirectMessage>) {
        DirectChat::committed(self, batch, messages)
    }

    fn ack_frame(&self, req: Option<ReqId>, author: UserId, client_id: &str, seq: i64) -> Frame {
        DmAck {
            id: req,
            to: self.other(author),
            client_id: client_id.to_string(),
            seq,
        }
        .to_frame()
    }
}

impl KeyedActor for DirectChat {
    const KIND: &'static str = "direct_chat";
    // Its seqs must come from one owner: a paused old owner's writes are refused.
    const FENCED: bool = true;
    type Id = (UserId, UserId);
    type Msg = DirectMsg;
    type Reply = ();

    fn load(
        pair: (UserId, UserId),
        deps: Arc<Deps>,
        registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, Result<Self, StartError>> {
        Box::pin(async move {
            if pair.0 >= pair.1 {
                return Err(StartError::NotFound);
            }
            let (last_seq, read_a, read_b) = deps.store.direct_state(pair).await?;
            let log = ChatLog::Direct(pair.0, pair.1);
            let mut sends = Sequencer::new(SEND_POLICY, DEDUPE_WINDOW, QUEUE_MAX, BATCH_MAX);
            sequenced::prime(&deps, log, &mut sends, DEDUPE_WINDOW).await?;
            let mut recent = Recent::new(RECENT);
            for m in deps
                .store
                .direct_messages(pair, Page::Before(None), RECENT as i64)
                .await?
            {
                recent.push(m);
            }
            let (outbox, mut rx) = mpsc::channel::<(UserId, Frame)>(DELIVERY_QUEUE);
            // One task delivers in order; it ends when the actor (the only sender) is gone.
            actix_rt::spawn(async move {
                while let Some((user, frame)) = rx.recv().await {
                    let _ = registry
                        .tell_if_running::<UserSession>(user, UserSessionMsg::Push { frame })
                        .await;
                }
            });
            Ok(DirectChat {
                pair,
                sup,
                deps,
                last_seq,
                read: [read_a, read_b],
                recent,
                sends,
                outbox,
            })
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
            } => admit(self, ctx, sender, client_id, body, (conn, req)),
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
