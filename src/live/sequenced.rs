//! What `ChatRoom` and `DirectChat` share: one implementation of each part of a sequenced
//! message log.
//!
//! - Sends: admitting one (body check, resend ack, queueing); after a batch was handed to
//!   the persistence actor, settling the outcome (acks and delivery on commit, error frames
//!   on failure); and when the batch hit the unique index because a client id was stored
//!   before the actor's memory, acking those sends with their stored seq (one query) and
//!   queueing the rest again.
//! - Loading: priming the dedupe memory from the store.
//! - Resume: what a socket that saw up to `last_seq` is sent, from memory or the store.
//! - Read markers: commit, then ack.
//!
//! The two actors differ only in their store log, their frames and what a commit delivers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};

use crate::chat::sequencer::{Admit, Pending, Sequencer, Waiter};
use crate::chat::{self, Author};
use crate::error::ApiError;
use crate::ids::{ConnId, UserId};
use crate::persist::PersistError;
use crate::registry::Deps;
use crate::store::chat::ChatLog;
use crate::store::{DurableWrite, Rule, StoreError, StoreResult};
use crate::ws::frame::{self, Frame, ReqId};

/// A keyed actor that numbers sends and commits them in batches through a [`Sequencer`].
pub trait SequencedSends: Actor<Context = Context<Self>> {
    /// What a committed batch carries to [`SequencedSends::committed`].
    type Committed: 'static;

    fn sends(&mut self) -> &mut Sequencer;
    fn deps(&self) -> &Arc<Deps>;
    /// The store log this actor writes.
    fn log(&self) -> ChatLog;
    /// Commits the next batch unless one is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>);
    /// The batch is stored: ack, deliver, remember.
    fn committed(&mut self, batch: Vec<Pending>, committed: Self::Committed);
    /// The ack frame for `author`'s send `client_id`, stored at `seq`.
    fn ack_frame(&self, req: Option<ReqId>, author: UserId, client_id: &str, seq: i64) -> Frame;

    fn push(&self, conn: ConnId, frame: Frame) {
        self.deps().sockets.push(conn, frame);
    }

    fn ack(&self, (conn, req): Waiter, author: UserId, client_id: &str, seq: i64) {
        self.push(conn, self.ack_frame(req, author, client_id, seq));
    }
}

/// Takes one send: checks the body, then acks a resend at once, queues a new one (committing
/// if no batch is in flight) or refuses it.
pub fn admit<A: SequencedSends>(
    act: &mut A,
    ctx: &mut Context<A>,
    author: Author,
    client_id: String,
    body: String,
    waiter: Waiter,
) {
    let body = match chat::outgoing(&client_id, &body) {
        Ok(b) => b,
        Err(e) => return act.push(waiter.0, frame::error(waiter.1, &e)),
    };
    let author_id = author.id;
    match act
        .sends()
        .admit(author, client_id, body, waiter, Instant::now())
    {
        // A resend: the first ack again, nothing stored.
        Admit::Stored {
            seq,
            client_id,
            waiter,
        } => act.ack(waiter, author_id, &client_id, seq),
        Admit::Waiting => {}
        Admit::Queued => act.flush(ctx),
        Admit::Refused {
            waiter: (conn, req),
            error,
        } => act.push(conn, frame::error(req, &error)),
    }
}

/// Handles the outcome of one batch, then starts the next.
pub fn settle<A: SequencedSends>(
    act: &mut A,
    ctx: &mut Context<A>,
    batch: Vec<Pending>,
    res: Result<A::Committed, PersistError>,
) {
    act.sends().settled();
    match res {
        Ok(c) => act.committed(batch, c),
        Err(PersistError::Store(StoreError::Rule(Rule::DuplicateMessage))) => {
            return resolve_duplicates(act, ctx, batch);
        }
        Err(e) => {
            let e = ApiError::from(e);
            for p in batch {
                for (conn, req) in p.waiters {
                    act.push(conn, frame::error(req, &e));
                }
            }
        }
    }
    act.flush(ctx);
}

/// Acks the sends the store already has and queues the rest again, first in line. `wait`
/// holds other messages back so the requeued sends keep their place.
fn resolve_duplicates<A: SequencedSends>(act: &mut A, ctx: &mut Context<A>, batch: Vec<Pending>) {
    let keys: Vec<(UserId, String)> = batch
        .iter()
        .map(|p| (p.author.id, p.client_id.clone()))
        .collect();
    let (store, log) = (act.deps().store.clone(), act.log());
    let lookup = async move { store.client_seqs(log, &keys).await };
    ctx.wait(
        lookup
            .into_actor(act)
            .map(move |found, act, ctx| rearm(act, ctx, batch, found)),
    );
}

fn rearm<A: SequencedSends>(
    act: &mut A,
    ctx: &mut Context<A>,
    batch: Vec<Pending>,
    found: StoreResult<Vec<Option<i64>>>,
) {
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            // The lookup failed: nothing is known, so nobody is acked; clients resend.
            let e = ApiError::from(e);
            for p in batch {
                for (conn, req) in p.waiters {
                    act.push(conn, frame::error(req, &e));
                }
            }
            return act.flush(ctx);
        }
    };
    if found.iter().all(Option::is_none) {
        // Nothing of the batch was stored before, so the conflict is on the seq itself:
        // another writer took it and this actor's last seq is stale. Requeueing would collide
        // forever. Refuse the batch and stop as a crash does: the restart reloads from the
        // store, watchers are told to re-join, and clients resend with the same client ids.
        tracing::error!("a batch collided on its seq; restarting to reload the last seq");
        for p in batch {
            for (conn, req) in p.waiters {
                act.push(conn, frame::error(req, &ApiError::Unavailable));
            }
        }
        actix::ActorContext::stop(ctx);
        return;
    }
    for (p, seq) in batch.into_iter().zip(found).rev() {
        match seq {
            Some(seq) => {
                for w in p.waiters.clone() {
                    act.ack(w, p.author.id, &p.client_id, seq);
                }
                act.sends().stored(p.author.id, p.client_id, seq);
            }
            None => act.sends().requeue(p),
        }
    }
    act.flush(ctx);
}

/// Fills a new actor's dedupe memory with the log's newest client ids, oldest first.
pub async fn prime(
    deps: &Deps,
    log: ChatLog,
    sends: &mut Sequencer,
    window: usize,
) -> StoreResult<()> {
    let recent = deps.store.recent_client_ids(log, window as i64).await?;
    for (author, client_id, seq) in recent.into_iter().rev() {
        sends.stored(author, client_id, seq);
    }
    Ok(())
}

/// Commits a read marker and acks the request after the commit; `then` runs on success.
pub fn commit_marker<A: SequencedSends>(
    act: &A,
    ctx: &mut Context<A>,
    write: DurableWrite,
    (conn, req): Waiter,
    then: impl FnOnce(&mut A) + 'static,
) {
    let persister = act.deps().persister.clone();
    ctx.spawn(
        async move { persister.persist(write).await }
            .into_actor(act)
            .map(move |r, act, _| match r {
                Ok(()) => {
                    act.push(conn, frame::ack(req));
                    then(act);
                }
                Err(e) => act.push(conn, frame::error(req, &e.into())),
            }),
    );
}

/// Something with a place in a log.
pub trait Seq {
    fn seq(&self) -> i64;
}

/// The newest messages of a log, kept for resume without a store read.
pub struct Recent<M> {
    items: VecDeque<M>,
    cap: usize,
}

impl<M: Seq> Recent<M> {
    pub fn new(cap: usize) -> Self {
        Recent {
            items: VecDeque::new(),
            cap,
        }
    }

    pub fn push(&mut self, m: M) {
        if self.items.len() >= self.cap {
            self.items.pop_front();
        }
        self.items.push_back(m);
    }

    /// The kept message with this seq.
    pub fn get_mut(&mut self, seq: i64) -> Option<&mut M> {
        self.items.iter_mut().find(|m| m.seq() == seq)
    }

    /// Whether memory holds everything after `last_seq` (or there is nothing to resume).
    /// Saturating: a client may send any number, `i64::MAX` included.
    pub fn covers(&self, last_seq: Option<i64>) -> bool {
        self.items
            .front()
            .is_none_or(|m| last_seq.is_none_or(|l| m.seq() <= l.saturating_add(1)))
    }

    /// What a socket that saw up to `last_seq` is sent: the messages read from the store
    /// (`missed`, which memory did not cover) up to the log's `newest`, then everything newer
    /// from memory; at most `max` of each.
    pub fn replay<'a, T: Seq>(
        &'a self,
        missed: &'a [T],
        last_seq: i64,
        newest: i64,
        max: usize,
    ) -> (impl Iterator<Item = &'a T>, impl Iterator<Item = &'a M>) {
        let from_store: Vec<&T> = missed
            .iter()
            .take_while(|m| m.seq() <= newest)
            .take(max)
            .collect();
        let upto = from_store.last().map_or(last_seq, |m| m.seq());
        let from_memory = self.items.iter().filter(move |m| m.seq() > upto).take(max);
        (from_store.into_iter(), from_memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Seq for i64 {
        fn seq(&self) -> i64 {
            *self
        }
    }

    fn recent(seqs: std::ops::RangeInclusive<i64>) -> Recent<i64> {
        let mut r = Recent::new(5);
        for s in seqs {
            r.push(s);
        }
        r
    }

    #[test]
    fn memory_covers_a_resume_only_from_its_oldest_message() {
        let r = recent(1..=12);
        // Kept: 8..=12.
        assert!(r.covers(None));
        assert!(r.covers(Some(7)));
        assert!(r.covers(Some(12)));
        assert!(!r.covers(Some(6)));
        assert!(r.covers(Some(i64::MAX)), "no overflow on the largest seq");
        assert!(!r.covers(Some(i64::MIN)));
        assert!(Recent::<i64>::new(5).covers(Some(0)));
    }

    #[test]
    fn replay_sends_the_store_part_then_newer_memory_without_repeats() {
        let r = recent(1..=12);
        let missed: Vec<i64> = (3..=13).collect();
        let (store, memory) = r.replay(&missed, 2, 11, 100);
        let store: Vec<i64> = store.copied().collect();
        let memory: Vec<i64> = memory.copied().collect();
        assert_eq!(
            store,
            (3..=11).collect::<Vec<_>>(),
            "nothing past the newest seq"
        );
        assert_eq!(memory, vec![12]);
        let (store, memory) = r.replay::<i64>(&[], 9, 12, 100);
        assert_eq!(store.count(), 0);
        assert_eq!(memory.copied().collect::<Vec<_>>(), vec![10, 11, 12]);
        let (_, memory) = r.replay::<i64>(&[], i64::MAX, 12, 100);
        assert_eq!(memory.count(), 0);
        let (_, memory) = r.replay::<i64>(&[], 0, 12, 2);
        assert_eq!(memory.count(), 2, "capped");
    }
}
