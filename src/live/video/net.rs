//! The node's one UDP socket for media, and the demultiplexer that hands each datagram to
//! its room's media loop without going through any actor mailbox.
//!
//! A participant's first packets are ICE connectivity checks (STUN) whose USERNAME starts
//! with the ICE ufrag the server gave that participant; the ufrag names the room. Once a
//! check arrived, the remote address is remembered, so DTLS and SRTP from it go to the
//! same room directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Datagrams queued for one room's media loop before more are dropped: about 100 ms of a
/// 25-person room's video; UDP is lossy anyway and a stalled loop must not grow memory.
pub const ROOM_INBOX: usize = 4096;
/// Largest datagram read (WebRTC keeps packets under the usual 1500-byte MTU).
pub const MAX_DATAGRAM: usize = 2048;
/// Remote addresses remembered per room: a participant uses a few (host, relay); more
/// means someone is spraying checks at us.
pub const MAX_ADDRS_PER_ROOM: usize = 256;

/// Datagrams handed to the kernel per `sendmmsg` call.
pub const SEND_BATCH: usize = 64;

/// Writes `addr` as a C socket address; returns its length.
fn write_sockaddr(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// One datagram for a room.
pub struct Datagram {
    pub at: Instant,
    pub source: SocketAddr,
    pub data: Vec<u8>,
}

type Inbox = mpsc::Sender<Datagram>;

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, (u64, Inbox)>,
    by_addr: HashMap<SocketAddr, (u64, Inbox)>,
    addrs_of_room: HashMap<u64, usize>,
}

/// The UDP socket, its address as clients should dial it, and the routing table.
pub struct VideoNet {
    pub socket: Arc<UdpSocket>,
    pub local: SocketAddr,
    /// The address put in host candidates (the public one behind NAT, if set).
    pub advertised: SocketAddr,
    routes: Mutex<Routes>,
    pub dropped: AtomicU64,
    pub unrouted: AtomicU64,
}

/// The ICE ufrag a STUN message is for: the part of its USERNAME before the colon (the
/// receiver's own ufrag). `None` for anything that is not a STUN message with a USERNAME.
pub fn stun_ufrag(buf: &[u8]) -> Option<&str> {
    // STUN's first byte is 0–3 on a port shared with DTLS and RTP (RFC 7983), the magic
    // cookie is at bytes 4..8 (RFC 5389), and attributes are type-length-value padded to 4
    // bytes after the 20-byte header.
    if buf.len() < 20 || buf[0] > 3 || buf[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let attrs = buf.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= attrs.len() {
        let ty = u16::from_be_bytes([attrs[at], attrs[at + 1]]);
        let n = usize::from(u16::from_be_bytes([attrs[at + 2], attrs[at + 3]]));
        let value = attrs.get(at + 4..at + 4 + n)?;
        if ty == 0x0006 {
            let user = std::str::from_utf8(value).ok()?;
            return user.split_once(':').map(|(local, _)| local);
        }
        at += 4 + n.div_ceil(4) * 4;
    }
    None
}

impl VideoNet {
    /// Binds the socket (inside a tokio runtime).
    pub fn bind(
        listen: SocketAddr,
        advertised: Option<SocketAddr>,
    ) -> std::io::Result<Arc<VideoNet>> {
        let std_socket = std::net::UdpSocket::bind(listen)?;
        std_socket.set_nonblocking(true)?;
        let local = std_socket.local_addr()?;
        let socket = Arc::new(UdpSocket::from_std(std_socket)?);
        let advertised = advertised.unwrap_or(local);
        Ok(Arc::new(VideoNet {
            socket,
            local,
            advertised,
            routes: Mutex::new(Routes::default()),
            dropped: AtomicU64::new(0),
            unrouted: AtomicU64::new(0),
        }))
    }

    /// Routes checks for `ufrag` to `room`'s inbox.
    pub fn add_ufrag(&self, ufrag: &str, room: u64, inbox: Inbox) {
        let mut r = self.routes.lock().expect("routes");
        r.by_ufrag.insert(ufrag.to_owned(), (room, inbox));
    }

    /// Forgets a participant: its ufrag and the addresses it used.
    pub fn remove_peer(&self, ufrag: &str, addrs: &[SocketAddr]) {
        let mut r = self.routes.lock().expect("routes");
        if let Some((room, _)) = r.by_ufrag.remove(ufrag) {
            for a in addrs {
                if r.by_addr.remove(a).is_some()
                    && let Some(n) = r.addrs_of_room.get_mut(&room)
                {
                    *n = n.saturating_sub(1);
                }
            }
            if r.addrs_of_room.get(&room) == Some(&0) {
                r.addrs_of_room.remove(&room);
            }
        }
    }

    /// Where a datagram goes: by its source address, else by the ufrag of a STUN check
    /// (which then also routes its address).
    fn route(&self, source: SocketAddr, data: &[u8]) -> Option<Inbox> {
        let mut r = self.routes.lock().expect("routes");
        if let Some((_, inbox)) = r.by_addr.get(&source) {
            return Some(inbox.clone());
        }
        let ufrag = stun_ufrag(data)?;
        let (room, inbox) = r.by_ufrag.get(ufrag).cloned()?;
        let n = r.addrs_of_room.entry(room).or_default();
        if *n < MAX_ADDRS_PER_ROOM {
            *n += 1;
            r.by_addr.insert(source, (room, inbox.clone()));
        }
        Some(inbox)
    }

    /// Reads datagrams forever and hands each to its room (dropping it when that room's
    /// inbox is full).
    pub async fn run_receiver(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, source) = match self.socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port-unreachable from a peer that went away shows up here on
                    // some systems; it is not fatal for the socket.
                    tracing::debug!(error = %e, "video socket read failed");
                    continue;
                }
            };
            let data = &buf[..n];
            let Some(inbox) = self.route(source, data) else {
                self.unrouted.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let d = Datagram {
                at: Instant::now(),
                source,
                data: data.to_vec(),
            };
            if inbox.try_send(d).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::metrics::VIDEO_DROPPED_DATAGRAMS).increment(1);
            }
        }
    }

    /// Sends a batch with one `sendmmsg` call per [`SEND_BATCH`] datagrams (a frame fanned
    /// out to a room is one batch), without waiting: what a full socket buffer refuses is
    /// dropped, as the network would, and never stalls the media loop. Empties `batch`.
    pub fn send_batch(&self, batch: &mut Vec<(SocketAddr, Vec<u8>)>) {
        use std::os::fd::AsRawFd;
        let fd = self.socket.as_raw_fd();
        for chunk in batch.chunks(SEND_BATCH) {
            // SAFETY: zeroed C structs are valid; every pointer handed to sendmmsg points
            // into `addrs`, `iovs` or `chunk`, which outlive the call and are not moved.
            unsafe {
                let mut addrs: [libc::sockaddr_storage; SEND_BATCH] = std::mem::zeroed();
                let mut iovs: [libc::iovec; SEND_BATCH] = std::mem::zeroed();
                let mut msgs: [libc::mmsghdr; SEND_BATCH] = std::mem::zeroed();
                for (i, (to, data)) in chunk.iter().enumerate() {
                    let len = write_sockaddr(*to, &mut addrs[i]);
                    iovs[i] = libc::iovec {
                        iov_base: data.as_ptr() as *mut libc::c_void,
                        iov_len: data.len(),
                    };
                    msgs[i].msg_hdr.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
                    msgs[i].msg_hdr.msg_namelen = len;
                    msgs[i].msg_hdr.msg_iov = &mut iovs[i];
                    msgs[i].msg_hdr.msg_iovlen = 1;
                }
                let mut sent = 0usize;
                while sent < chunk.len() {
                    let n = libc::sendmmsg(
                        fd,
                        msgs.as_mut_ptr().add(sent),
                        (chunk.len() - sent) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    );
                    if n <= 0 {
                        // Full buffer (EAGAIN) or an unreachable peer: drop this one and
                        // go on with the rest.
                        metrics::counter!(crate::metrics::VIDEO_DROPPED_DATAGRAMS).increment(1);
                        sent += 1;
                    } else {
                        sent += n as usize;
                    }
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN binding request with USERNAME `user` (no integrity: enough to route).
    fn binding(user: &str) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attr.extend_from_slice(user.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn stun_checks_name_the_local_ufrag() {
        assert_eq!(stun_ufrag(&binding("srv1:cli9")), Some("srv1"));
        assert_eq!(stun_ufrag(b"not stun at all, just bytes"), None);
        // DTLS (first byte 20..63) and RTP (128..191) never parse as STUN.
        let mut dtls = binding("a:b");
        dtls[0] = 22;
        assert_eq!(stun_ufrag(&dtls), None);
    }

    #[tokio::test]
    async fn datagrams_follow_the_ufrag_then_the_address() {
        let net = VideoNet::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        net.add_ufrag("srv1", 7, tx);
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        // Media from an unknown address is not routed; a check is, and teaches the address.
        assert!(net.route(a, &[0x80, 0, 0, 0]).is_none());
        assert!(net.route(a, &binding("other:x")).is_none());
        let inbox = net.route(a, &binding("srv1:x")).expect("routed by ufrag");
        inbox
            .try_send(Datagram {
                at: Instant::now(),
                source: a,
                data: vec![1],
            })
            .unwrap();
        assert_eq!(rx.recv().await.unwrap().data, vec![1]);
        assert!(net.route(a, &[0x80, 0, 0, 0]).is_some());
        assert!(net.route(b, &[0x80, 0, 0, 0]).is_none());
        net.remove_peer("srv1", &[a]);
        assert!(net.route(a, &[0x80, 0, 0, 0]).is_none());
        assert!(net.route(a, &binding("srv1:x")).is_none());
    }

    #[tokio::test]
    async fn a_batch_reaches_every_destination_in_order() {
        let net = VideoNet::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let r1 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r2 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        r1.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        r2.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut batch: Vec<(SocketAddr, Vec<u8>)> = (0..150u8)
            .map(|i| {
                let to = if i % 2 == 0 { &r1 } else { &r2 };
                (to.local_addr().unwrap(), vec![i; 1 + i as usize])
            })
            .collect();
        net.send_batch(&mut batch);
        assert!(batch.is_empty());
        let mut buf = [0u8; 512];
        for i in (0..150u8).step_by(2) {
            let (n, from) = r1.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0], from), (1 + i as usize, i, net.local));
        }
        for i in (1..150u8).step_by(2) {
            let (n, _) = r2.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (1 + i as usize, i));
        }
    }
}
