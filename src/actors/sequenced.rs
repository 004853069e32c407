//! What `ChatRoom` and `DirectChat` share about sends: admitting one (body check, resend ack,
//! queueing), and after a batch was handed to the persistence actor: settle the outcome (acks and delivery on commit, error frames on
//! failure) and, when the batch hit the unique index because a client id was stored before
//! the actor's memory, ack those sends with their stored seq and queue the rest again. The
//! two actors differ only in the store lookup, the ack frame and what a commit delivers.

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use bytestring::ByteString;
use futures_util::future::BoxFuture;
use serde_json::Value;

use std::time::Instant;

use crate::chat::sequencer::{Admit, Pending, Sequencer, Waiter};
use crate::chat::{self, Author};
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
    /// Acks one waiter of `author`'s send `client_id`, stored at `seq`.
    fn ack(&self, conn: ConnId, req: Option<Value>, author: UserId, client_id: &str, seq: i64);
    /// The stored seq of each (author, client id), `None` where it is not stored.
    fn stored_seqs(&self, keys: Vec<(UserId, String)>) -> BoxFuture<'static, Vec<Option<i64>>>;
}

/// Takes one send: checks the body, then acks a resend at once, queues a new one (committing
/// if no batch is in flight) or refuses it.
pub fn admit<A: SequencedSends>(
    act: &mut A,
    ctx: &mut Context<A>,
    author: Author,
    client_id: String,
    body: String,
    (conn, req): Waiter,
) {
    let body = match chat::outgoing(&client_id, &body) {
        Ok(b) => b,
        Err(e) => return act.push(conn, error_frame(req, &e)),
    };
    let author_id = author.id;
    match act
        .sends()
        .admit(author, client_id, body, (conn, req), Instant::now())
    {
        // A resend: the first ack again, nothing stored.
        Admit::Stored {
            seq,
            client_id,
            waiter: (conn, req),
        } => act.ack(conn, req, author_id, &client_id, seq),
        Admit::Waiting => {}
        Admit::Queued => act.flush(ctx),
        Admit::Refused {
            waiter: (conn, req),
            error,
        } => act.push(conn, error_frame(req, &error)),
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
                    act.ack(conn, req, p.author.id, &p.client_id, seq);
                }
                act.sends().stored(p.author.id, p.client_id, seq);
            }
            None => act.sends().requeue(p),
        }
    }
    act.flush(ctx);
}
