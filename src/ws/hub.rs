//! This node's open connections: the local [`ConnRouter`]. Actors push frames to a
//! connection by [`ConnId`]; the hub puts them on that connection's bounded outbound queue,
//! or, when the queue is full, tells the connection to close as a slow consumer. Pushing
//! never blocks the pushing actor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::frame::Frame;
use super::router::{ConnRouter, Control};
use crate::ids::{ConnId, UserId};

/// What the writer task sends: client frames (shared bytes) and WebSocket pings and pongs.
#[derive(Debug, Clone)]
pub enum Outbound {
    Frame(Frame),
    Ping,
    Pong(bytes::Bytes),
    /// The close frame, queued behind what was sent before it so the client reads those
    /// first (an error frame, then the close it explains).
    Close(actix_ws::CloseReason),
}

/// Control messages a connection may have pending: closes and resyncs are rare.
const CONTROL_QUEUE: usize = 16;

struct Entry {
    user: UserId,
    out: mpsc::Sender<Outbound>,
    ctl: mpsc::Sender<Control>,
    /// Bytes of frames queued and not yet written (the writer takes them off).
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

pub struct Registration {
    pub id: ConnId,
    pub out: mpsc::Receiver<Outbound>,
    /// A sender into the connection's own queue, for replies it produces itself.
    pub out_tx: mpsc::Sender<Outbound>,
    pub ctl: mpsc::Receiver<Control>,
    /// Bytes queued for the writer; it subtracts each frame it writes.
    pub queued: Arc<AtomicUsize>,
}

/// How much one socket's outbound queue may hold: frames, and bytes (a few large answers
/// the client does not read must not pin megabytes each).
#[derive(Clone, Copy, Debug)]
pub struct QueueBound {
    pub frames: usize,
    pub bytes: usize,
}

pub struct ConnHub {
    node: u64,
    next: AtomicU64,
    conns: Mutex<Conns>,
}

#[derive(Default)]
struct Conns {
    by_id: HashMap<ConnId, Entry>,
    /// Open sockets per user, for the per-user cap.
    per_user: HashMap<UserId, usize>,
}

impl ConnHub {
    pub fn new(node: u64) -> Self {
        ConnHub {
            node,
            next: AtomicU64::new(1),
            conns: Mutex::new(Conns::default()),
        }
    }

    /// Registers a socket, unless its user already has `max_per_user` open.
    pub fn register(
        &self,
        user: UserId,
        queue: QueueBound,
        max_per_user: usize,
    ) -> Option<Registration> {
        let mut conns = self.conns.lock().expect("hub lock");
        let open = conns.per_user.entry(user).or_default();
        if *open >= max_per_user {
            return None;
        }
        *open += 1;
        let id = ConnId {
            node: self.node,
            seq: self.next.fetch_add(1, Ordering::Relaxed),
        };
        let (out_tx, out) = mpsc::channel(queue.frames);
        let (ctl_tx, ctl) = mpsc::channel(CONTROL_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        conns.by_id.insert(
            id,
            Entry {
                user,
                out: out_tx.clone(),
                ctl: ctl_tx,
                queued: queued.clone(),
                max_bytes: queue.bytes,
            },
        );
        metrics::gauge!(crate::metrics::WS_CONNECTIONS).increment(1.0);
        Some(Registration {
            id,
            out,
            out_tx,
            ctl,
            queued,
        })
    }

    pub fn unregister(&self, id: ConnId) {
        let mut conns = self.conns.lock().expect("hub lock");
        if let Some(e) = conns.by_id.remove(&id) {
            metrics::gauge!(crate::metrics::WS_CONNECTIONS).decrement(1.0);
            if let Some(n) = conns.per_user.get_mut(&e.user) {
                *n -= 1;
                if *n == 0 {
                    conns.per_user.remove(&e.user);
                }
            }
        }
    }

    fn queue(conns: &Conns, id: ConnId, frame: Frame) -> bool {
        let Some(e) = conns.by_id.get(&id) else {
            return false;
        };
        let len = frame.len();
        if e.queued.fetch_add(len, Ordering::AcqRel) + len > e.max_bytes {
            e.queued.fetch_sub(len, Ordering::AcqRel);
            let _ = e.ctl.try_send(Control::SlowConsumer);
            return false;
        }
        match e.out.try_send(Outbound::Frame(frame)) {
            Ok(()) => true,
            Err(err) => {
                e.queued.fetch_sub(len, Ordering::AcqRel);
                if matches!(err, mpsc::error::TrySendError::Full(_)) {
                    let _ = e.ctl.try_send(Control::SlowConsumer);
                }
                false
            }
        }
    }

    pub fn user_of(&self, id: ConnId) -> Option<UserId> {
        self.conns
            .lock()
            .expect("hub lock")
            .by_id
            .get(&id)
            .map(|e| e.user)
    }

    /// Asks every connection to close (graceful shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        let conns = self.conns.lock().expect("hub lock");
        for e in conns.by_id.values() {
            let _ = e.ctl.try_send(Control::Close {
                code,
                reason: reason.to_string(),
            });
        }
    }

    pub fn len(&self) -> usize {
        self.conns.lock().expect("hub lock").by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ConnRouter for ConnHub {
    fn push(&self, conn: ConnId, frame: Frame) -> bool {
        let conns = self.conns.lock().expect("hub lock");
        Self::queue(&conns, conn, frame)
    }

    /// One lock for the whole fan-out (a room's broadcast).
    fn push_many(&self, ids: &mut dyn Iterator<Item = ConnId>, frame: &Frame) {
        let conns = self.conns.lock().expect("hub lock");
        for id in ids {
            Self::queue(&conns, id, frame.clone());
        }
    }

    fn control(&self, id: ConnId, c: Control) -> bool {
        let conns = self.conns.lock().expect("hub lock");
        conns
            .by_id
            .get(&id)
            .is_some_and(|e| e.ctl.try_send(c).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: QueueBound = QueueBound {
        frames: 8,
        bytes: 1 << 20,
    };

    fn text(s: &str) -> Frame {
        Frame::Text(s.to_string().into())
    }

    #[test]
    fn a_full_queue_marks_a_slow_consumer() {
        let hub = ConnHub::new(7);
        let mut reg = hub.register(UserId(1), BOUND, 4).unwrap();
        for i in 0..8 {
            assert!(hub.push(reg.id, text(&format!("{i}"))));
        }
        assert!(!hub.push(reg.id, text("overflow")));
        assert_eq!(reg.ctl.try_recv().unwrap(), Control::SlowConsumer);
        // The frames already queued are intact and in order.
        for i in 0..8 {
            match reg.out.try_recv().unwrap() {
                Outbound::Frame(f) => assert_eq!(f, text(&format!("{i}"))),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        hub.unregister(reg.id);
        assert!(!hub.push(reg.id, text("gone")));
        assert!(hub.is_empty());
    }

    #[test]
    fn push_many_reaches_every_live_connection_and_marks_slow_ones() {
        let hub = ConnHub::new(3);
        let mut fast = hub.register(UserId(1), BOUND, 4).unwrap();
        let mut slow = hub.register(UserId(2), BOUND, 4).unwrap();
        for i in 0..8 {
            assert!(hub.push(slow.id, text(&format!("{i}"))));
        }
        let gone = ConnId { node: 3, seq: 999 };
        hub.push_many(&mut [fast.id, slow.id, gone].into_iter(), &text("all"));
        match fast.out.try_recv().unwrap() {
            Outbound::Frame(f) => assert_eq!(f, text("all")),
            other => panic!("unexpected frame {other:?}"),
        }
        assert_eq!(slow.ctl.try_recv().unwrap(), Control::SlowConsumer);
        assert!(fast.ctl.try_recv().is_err());
    }

    #[test]
    fn a_user_may_open_only_so_many_sockets() {
        let hub = ConnHub::new(1);
        let a = hub.register(UserId(1), BOUND, 2).unwrap();
        let _b = hub.register(UserId(1), BOUND, 2).unwrap();
        assert!(hub.register(UserId(1), BOUND, 2).is_none());
        assert!(
            hub.register(UserId(2), BOUND, 2).is_some(),
            "others are not affected"
        );
        hub.unregister(a.id);
        assert!(
            hub.register(UserId(1), BOUND, 2).is_some(),
            "a closed one frees its place"
        );
    }

    #[test]
    fn a_queue_past_its_bytes_marks_a_slow_consumer_however_few_frames() {
        let hub = ConnHub::new(1);
        let bound = QueueBound {
            frames: 100,
            bytes: 10_000,
        };
        let mut reg = hub.register(UserId(1), bound, 4).unwrap();
        let big = Frame::Binary(vec![0u8; 4_000].into());
        assert!(hub.push(reg.id, big.clone()));
        assert!(hub.push(reg.id, big.clone()));
        assert_eq!(reg.queued.load(Ordering::Relaxed), 8_000);
        assert!(!hub.push(reg.id, big.clone()), "a third would pass 10 kB");
        assert_eq!(reg.ctl.try_recv().unwrap(), Control::SlowConsumer);
        assert_eq!(
            reg.queued.load(Ordering::Relaxed),
            8_000,
            "the refused one is not counted"
        );
        // The writer takes frames off, freeing their bytes.
        assert!(matches!(reg.out.try_recv(), Ok(Outbound::Frame(_))));
        reg.queued.fetch_sub(4_000, Ordering::Relaxed);
        assert!(hub.push(reg.id, big));
    }
}
