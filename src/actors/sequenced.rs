//! What `ChatRoom` and `DirectChat` share after a batch of sends was handed to the
//! persistence actor: settle the outcome (acks and delivery on commit, error frames on
//! failure) and, when the batch hit the unique index because a client id was stored before
//! the actor's memory, ack those sends with their stored seq and queue the rest again. The
//! two actors differ only in the store lookup, the ack frame and what a commit delivers.

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use bytestring::ByteString;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::chat::sequencer::{Pending, Sequencer};
use crate::error::ApiError;
use crate::ids::{ConnId, UserId};
use crate::persist::PersistError;
use crate::store::{Rule, StoreError};
use crate::ws::protocol::error_frame;

/// A keyed actor that numbers sends and commits them in batches through a [`Sequencer`].
pub trait SequencedSends: Actor<Context = Context<Self>> {
    /// What a committed batch carries to [`SequencedSends::committed`].
    type Committed: 'static;

    fn sends(&mut self) -> &mut Sequencer;
    fn push(&self, conn: ConnId, frame: ByteString);
    /// Commits the next batch unless one is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>);
    /// The batch is stored: ack, deliver, remember.
    fn committed(&mut self, batch: Vec<Pending>, committed: Self::Committed);
    /// Acks one waiter of a send that was stored before, at `seq`.
    fn ack_stored(&mut self, conn: ConnId, req: Option<Value>, send: &Pending, seq: i64);
    /// The stored seq of each (author, client id), `None` where it is not stored.
    fn stored_seqs(&self, keys: Vec<(UserId, String)>) -> BoxFuture<'static, Vec<Option<i64>>>;
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
                    act.push(conn, error_frame(req, &e));
                }
            }
        }
    }
    act.flush(ctx);
}

/// Acks the sends the store already has and queues the rest again, first in line. `wait`
/// holds other messages back so the requeued sends keep their place.
fn resolve_duplicates<A: SequencedSends>(act: &mut A, ctx: &mut Context<A>, batch: Vec<Pending>) {
    let keys = batch
        .iter()
        .map(|p| (p.author.id, p.client_id.clone()))
        .collect();
    ctx.wait(
        act.stored_seqs(keys)
            .into_actor(act)
            .map(move |found, act, ctx| rearm(act, ctx, batch, found)),
    );
}

fn rearm<A: SequencedSends>(
    act: &mut A,
    ctx: &mut Context<A>,
    batch: Vec<Pending>,
    found: Vec<Option<i64>>,
) {
    if found.iter().all(Option::is_none) {
        // Nothing of the batch was stored before, so the conflict is on the seq itself:
        // another writer took it and this actor's last seq is stale. Requeueing would collide
        // forever. Refuse the batch and stop as a crash does: the restart reloads from the
        // store, watchers are told to re-join, and clients resend with the same client ids.
        tracing::error!("a batch collided on its seq; restarting to reload the last seq");
        for p in batch {
            for (conn, req) in p.waiters {
                act.push(conn, error_frame(req, &ApiError::Unavailable));
            }
        }
        actix::ActorContext::stop(ctx);
        return;
    }
    for (p, seq) in batch.into_iter().zip(found).rev() {
        match seq {
            Some(seq) => {
                for (conn, req) in p.waiters.clone() {
                    act.ack_stored(conn, req, &p, seq);
                }
                act.sends().stored(p.author.id, p.client_id, seq);
            }
            None => act.sends().requeue(p),
        }
    }
    act.flush(ctx);
}
