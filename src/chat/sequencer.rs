//! The send queue that chat rooms and direct conversations share: a plain state machine of
//! (state, input, now) with no IO, wrapped by the `ChatRoom` and `DirectChat` actors.
//!
//! It decides, for each send: already stored (ack the stored seq again), already waiting
//! (join the first send's waiters), refused (rate limit, full queue), or queued. It hands out
//! one batch at a time; the actor commits it, then reports back.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::{Author, Dedupe};
use crate::error::ApiError;
use crate::ids::{ConnId, UserId};
use crate::ratelimit::{Bucket, Policy};

/// A socket waiting for an ack, and its request id.
pub type Waiter = (ConnId, Option<crate::ws::frame::ReqId>);

/// A message waiting for its commit.
pub struct Pending {
    pub author: Author,
    pub client_id: String,
    pub body: String,
    /// Sockets to ack (a resend while the first is queued joins the first's waiters).
    pub waiters: Vec<Waiter>,
}

/// What became of one send.
pub enum Admit {
    /// Stored before at `seq`: ack it again, store nothing.
    Stored {
        seq: i64,
        client_id: String,
        waiter: Waiter,
    },
    /// The same message is already queued; this waiter will get its ack.
    Waiting,
    /// Queued for the next batch.
    Queued,
    /// Refused; nothing changed.
    Refused { waiter: Waiter, error: ApiError },
}

pub struct Sequencer {
    queue: VecDeque<Pending>,
    in_flight: bool,
    dedupe: Dedupe,
    buckets: HashMap<UserId, Bucket>,
    policy: Policy,
    queue_max: usize,
    batch_max: usize,
}

impl Sequencer {
    pub fn new(policy: Policy, dedupe_window: usize, queue_max: usize, batch_max: usize) -> Self {
        Sequencer {
            queue: VecDeque::new(),
            in_flight: false,
            dedupe: Dedupe::new(dedupe_window),
            buckets: HashMap::new(),
            policy,
            queue_max,
            batch_max,
        }
    }

    /// Decides what to do with a send whose client id and body were already checked.
    pub fn admit(
        &mut self,
        author: Author,
        client_id: String,
        body: String,
        waiter: Waiter,
        now: Instant,
    ) -> Admit {
        if let Some(seq) = self.dedupe.get(author.id, &client_id) {
            return Admit::Stored {
                seq,
                client_id,
                waiter,
            };
        }
        if let Some(p) = self
            .queue
            .iter_mut()
            .find(|p| p.author.id == author.id && p.client_id == client_id)
        {
            p.waiters.push(waiter);
            return Admit::Waiting;
        }
        let policy = self.policy;
        let bucket = self
            .buckets
            .entry(author.id)
            .or_insert_with(|| policy.bucket(now));
        if let Err(wait) = bucket.take(&policy, now) {
            let error = ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            };
            return Admit::Refused { waiter, error };
        }
        if self.queue.len() >= self.queue_max {
            return Admit::Refused {
                waiter,
                error: ApiError::Busy,
            };
        }
        self.queue.push_back(Pending {
            author,
            client_id,
            body,
            waiters: vec![waiter],
        });
        Admit::Queued
    }

    /// The next batch to commit, unless one is in flight or nothing waits.
    pub fn next_batch(&mut self) -> Option<Vec<Pending>> {
        if self.in_flight || self.queue.is_empty() {
            return None;
        }
        let n = self.queue.len().min(self.batch_max);
        self.in_flight = true;
        Some(self.queue.drain(..n).collect())
    }

    /// The batch in flight is settled (committed or failed).
    pub fn settled(&mut self) {
        self.in_flight = false;
    }

    /// A message is stored at `seq`: later resends get that seq.
    pub fn stored(&mut self, author: UserId, client_id: String, seq: i64) {
        self.dedupe.remember(author, client_id, seq);
    }

    /// Puts a message back at the front of the queue (it keeps its place in line).
    pub fn requeue(&mut self, p: Pending) {
        self.queue.push_front(p);
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && !self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn author(id: i64) -> Author {
        Author {
            id: UserId(id),
            display_name: format!("u{id}"),
        }
    }

    fn waiter(n: u64) -> Waiter {
        (ConnId { node: 1, seq: n }, None)
    }

    fn seq() -> Sequencer {
        Sequencer::new(Policy::new(3, 1.0), 100, 4, 2)
    }

    #[test]
    fn queues_batches_one_at_a_time_in_order() {
        let mut s = seq();
        let t = Instant::now();
        for i in 0..3 {
            assert!(matches!(
                s.admit(author(1), format!("c{i}"), "b".into(), waiter(1), t),
                Admit::Queued
            ));
        }
        let b1 = s.next_batch().unwrap();
        assert_eq!(
            b1.iter().map(|p| p.client_id.as_str()).collect::<Vec<_>>(),
            ["c0", "c1"]
        );
        assert!(s.next_batch().is_none(), "one batch in flight at a time");
        s.settled();
        assert_eq!(s.next_batch().unwrap()[0].client_id, "c2");
        s.settled();
        assert!(s.is_idle());
    }

    #[test]
    fn resends_are_answered_not_stored_again() {
        let mut s = seq();
        let t = Instant::now();
        assert!(matches!(
            s.admit(author(1), "x".into(), "b".into(), waiter(1), t),
            Admit::Queued
        ));
        assert!(matches!(
            s.admit(author(1), "x".into(), "b".into(), waiter(2), t),
            Admit::Waiting
        ));
        let batch = s.next_batch().unwrap();
        assert_eq!(batch[0].waiters.len(), 2, "both sockets get the one ack");
        s.stored(UserId(1), "x".into(), 7);
        s.settled();
        match s.admit(author(1), "x".into(), "b".into(), waiter(3), t) {
            Admit::Stored { seq, .. } => assert_eq!(seq, 7),
            _ => panic!("a stored client id is acked again"),
        }
        // Client ids are per author.
        assert!(matches!(
            s.admit(author(2), "x".into(), "b".into(), waiter(4), t),
            Admit::Queued
        ));
    }

    #[test]
    fn refuses_floods_and_a_full_queue_without_changing_anything() {
        let mut s = seq();
        let t = Instant::now();
        for i in 0..3 {
            assert!(matches!(
                s.admit(author(1), format!("c{i}"), "b".into(), waiter(1), t),
                Admit::Queued
            ));
        }
        match s.admit(author(1), "c3".into(), "b".into(), waiter(1), t) {
            Admit::Refused {
                error: ApiError::RateLimited { retry_after_secs },
                ..
            } => assert_eq!(retry_after_secs, 1),
            _ => panic!("the fourth send in a burst of three is refused"),
        }
        assert!(matches!(
            s.admit(author(2), "d0".into(), "b".into(), waiter(2), t),
            Admit::Queued
        ));
        assert!(matches!(
            s.admit(author(3), "e0".into(), "b".into(), waiter(3), t),
            Admit::Refused {
                error: ApiError::Busy,
                ..
            }
        ));
        // After a second the first author may send again (once the queue has room).
        let _ = s.next_batch();
        s.settled();
        assert!(matches!(
            s.admit(
                author(1),
                "c4".into(),
                "b".into(),
                waiter(1),
                t + Duration::from_secs(1)
            ),
            Admit::Queued
        ));
    }

    #[test]
    fn requeued_messages_go_first() {
        let mut s = seq();
        let t = Instant::now();
        s.admit(author(1), "a".into(), "b".into(), waiter(1), t);
        s.admit(author(1), "b".into(), "b".into(), waiter(1), t);
        s.admit(author(1), "c".into(), "b".into(), waiter(1), t);
        let mut first = s.next_batch().unwrap();
        s.settled();
        s.requeue(first.pop().unwrap());
        s.requeue(first.pop().unwrap());
        let again = s.next_batch().unwrap();
        assert_eq!(
            again
                .iter()
                .map(|p| p.client_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
