//! The persistence actor: group commit for durable writes on live paths.
//!
//! Callers hand a [`DurableWrite`] to a [`Persister`] and get their reply only after the
//! transaction holding it has committed, so an acknowledgement always means "on disk". While
//! one transaction commits, new writes queue; the next transaction takes all of them (up to
//! [`MAX_BATCH`]). Under load this turns N fsyncs into one; idle, a lone write commits at once.
//!
//! The mailbox is bounded: when it is full, `persist` fails fast with [`PersistError::Busy`]
//! instead of queueing without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::store::{DurableWrite, Store, StoreError};

/// Writes committed in one transaction at most: keeps one commit's latency bounded.
pub const MAX_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The mailbox is full; the caller should report `busy` and may retry.
    #[error("persistence queue is full")]
    Busy,
    /// The actor has shut down; nothing was written.
    #[error("persistence actor has stopped")]
    Closed,
    /// The transaction failed; nothing of this write was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Job {
    write: DurableWrite,
    reply: oneshot::Sender<Result<(), PersistError>>,
}

/// Handle to a persistence actor. Cheap to clone.
#[derive(Clone)]
pub struct Persister {
    tx: mpsc::Sender<Job>,
    /// Tells the loop to stop taking writes and drain; graceful shutdown uses it because
    /// sender clones live in every connection and would keep the channel open.
    close: Arc<tokio::sync::Notify>,
    task: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Batches that failed as a whole and were retried write by write.
    split: Arc<AtomicU64>,
}

impl Persister {
    /// Starts the actor on the current tokio runtime with a mailbox of `capacity` writes.
    pub fn start(store: Arc<dyn Store>, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let close = Arc::new(tokio::sync::Notify::new());
        let split = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(store, rx, close.clone(), split.clone()));
        Persister {
            tx,
            close,
            task: Arc::new(tokio::sync::Mutex::new(Some(task))),
            split,
        }
    }

    /// Stores `write` durably; returns once it is committed.
    pub async fn persist(&self, write: DurableWrite) -> Result<(), PersistError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job { write, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => PersistError::Busy,
                mpsc::error::TrySendError::Closed(_) => PersistError::Closed,
            })?;
        rx.await.map_err(|_| PersistError::Closed)?
    }

    /// How many group commits failed and were retried write by write (one bad write in a
    /// batch of good ones); for tests and operators.
    pub fn batches_split(&self) -> u64 {
        self.split.load(Ordering::Relaxed)
    }

    /// Writes waiting in the mailbox (for the mailbox-depth metric).
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Stops taking writes, commits everything already queued, and waits for it.
    pub async fn shutdown(&self) {
        self.close.notify_one();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Job>,
    close: Arc<tokio::sync::Notify>,
    split: Arc<AtomicU64>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    return;
                }
                commit(&*store, &mut batch, &split).await;
            }
            () = close.notified() => {
                // New sends now fail with `Closed`; what is already queued still commits.
                rx.close();
                while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                    commit(&*store, &mut batch, &split).await;
                }
                return;
            }
        }
    }
}

async fn commit(store: &dyn Store, batch: &mut Vec<Job>, split: &AtomicU64) {
    let writes: Vec<DurableWrite> = batch.iter().map(|j| j.write.clone()).collect();
    let started = Instant::now();
    let result = store.commit_batch(&writes).await;
    metrics::histogram!(crate::metrics::PERSIST_BATCH_SIZE).record(writes.len() as f64);
    metrics::histogram!(crate::metrics::PERSIST_COMMIT_SECONDS)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => {
            for job in batch.drain(..) {
                let _ = job.reply.send(Ok(()));
            }
        }
        Err(e) if batch.len() == 1 => {
            if let Some(job) = batch.pop() {
                let _ = job.reply.send(Err(PersistError::Store(e)));
            }
        }
        Err(e) => {
            // One bad write must not fail its neighbours: retry each alone so only the
            // offending one reports the error.
            tracing::warn!(error = %e, size = batch.len(), "group commit failed; retrying singly");
            split.fetch_add(1, Ordering::Relaxed);
            for job in batch.drain(..) {
                let r = store.commit_batch(std::slice::from_ref(&job.write)).await;
                let _ = job.reply.send(r.map_err(PersistError::from));
            }
        }
    }
}
