//! The node's one UDP socket for media, and the demultiplexer that hands each datagram to
//! its room's media loop without going through any actor mailbox.
//!
//! A participant's first packets are ICE connectivity checks (STUN) whose USERNAME starts
//! with the ICE ufrag the server gave that participant; the ufrag names the room. Once a
//! check arrived, the remote address is remembered, so DTLS and SRTP from it go to the
//! same room directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
/// Most bytes in one segmentation-offload send: an IP datagram's limit is 65 535, less
/// the headers; keeping well under it leaves room for any header size.
const GSO_MAX_BYTES: usize = 60_000;
/// Linux's `SOL_UDP` / `UDP_SEGMENT` (since 4.18; not in every libc build).
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;

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

/// Datagrams read per `recvmmsg` call: a burst of a few frames' packets from several
/// publishers; more would only grow the buffers (2 KiB each).
const RECV_BATCH: usize = 32;

/// The buffers of one `recvmmsg` call, kept across calls.
struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    addrs: [libc::sockaddr_storage; RECV_BATCH],
    lens: [(usize, libc::socklen_t); RECV_BATCH],
}

impl RecvBatch {
    fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![[0; MAX_DATAGRAM]; RECV_BATCH],
            // SAFETY: an all-zero sockaddr_storage is a valid (unspecified) address.
            addrs: unsafe { std::mem::zeroed() },
            lens: [(0, 0); RECV_BATCH],
        }
    }

    /// Reads what has arrived, up to [`RECV_BATCH`] datagrams, without waiting.
    fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        // SAFETY: every pointer handed to recvmmsg points into `iovs`, `msgs`, `self.bufs`
        // or `self.addrs`, which outlive the call; the lengths are those buffers' sizes.
        unsafe {
            let mut iovs: [libc::iovec; RECV_BATCH] = std::mem::zeroed();
            let mut msgs: [libc::mmsghdr; RECV_BATCH] = std::mem::zeroed();
            for i in 0..RECV_BATCH {
                iovs[i] = libc::iovec {
                    iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void,
                    iov_len: MAX_DATAGRAM,
                };
                let h = &mut msgs[i].msg_hdr;
                h.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_iov = &mut iovs[i];
                h.msg_iovlen = 1;
            }
            let n = libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            );
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = n as usize;
            for (i, m) in msgs.iter().take(n).enumerate() {
                self.lens[i] = (m.msg_len as usize, m.msg_hdr.msg_namelen);
            }
            Ok(n)
        }
    }

    /// The `i`th datagram of the last read and where it came from (`None` for an address
    /// family other than IPv4 or IPv6, or a truncated one).
    fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        let (len, namelen) = self.lens[i];
        let source = read_sockaddr(&self.addrs[i], namelen)?;
        Some((source, self.bufs[i].get(..len)?))
    }
}

/// The socket address the kernel wrote into `addr`.
fn read_sockaddr(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match addr.ss_family as libc::c_int {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and it is long enough.
            let a = unsafe { &*(addr as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(addr as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                std::net::Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
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
    /// Whether runs of datagrams to one peer go out as one segmentation-offload send (off
    /// for good once the kernel refuses one).
    gso: AtomicBool,
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

/// Splits at most [`SEND_BATCH`] datagrams into sends, as (first datagram, count): with
/// `gso`, consecutive datagrams to one peer of the first one's size, the last of them
/// possibly shorter (what UDP segmentation offload takes), within [`GSO_MAX_BYTES`].
fn runs(chunk: &[(SocketAddr, Vec<u8>)], gso: bool) -> ([(usize, usize); SEND_BATCH], usize) {
    let mut runs = [(0, 0); SEND_BATCH];
    let mut nruns = 0;
    let mut i = 0;
    while i < chunk.len() && nruns < SEND_BATCH {
        let (to, size) = (chunk[i].0, chunk[i].1.len());
        let mut n = 1;
        let mut bytes = size;
        while gso && let Some((next_to, next)) = chunk.get(i + n) {
            if *next_to != to || next.is_empty() || next.len() > size {
                break;
            }
            if bytes + next.len() > GSO_MAX_BYTES {
                break;
            }
            n += 1;
            bytes += next.len();
            if next.len() < size {
                break;
            }
        }
        runs[nruns] = (i, n);
        nruns += 1;
        i += n;
    }
    (runs, nruns)
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
            gso: AtomicBool::new(true),
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
    /// inbox is full). Whatever has arrived is read in one `recvmmsg` call and handed over
    /// together: the packets of one camera frame then reach the media loop in one turn,
    /// which drains each subscriber once and sends them as one run.
    pub async fn run_receiver(self: Arc<Self>) {
        let mut batch = RecvBatch::new();
        loop {
            if let Err(e) = self.socket.readable().await {
                tracing::warn!(error = %e, "video socket unusable");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            let n = match self
                .socket
                .try_io(tokio::io::Interest::READABLE, || batch.recv(&self.socket))
            {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    // ICMP port-unreachable from a peer that went away shows up here on
                    // some systems; it is not fatal for the socket.
                    tracing::debug!(error = %e, "video socket read failed");
                    continue;
                }
            };
            let at = Instant::now();
            for i in 0..n {
                let Some((source, data)) = batch.get(i) else {
                    continue;
                };
                let Some(inbox) = self.route(source, data) else {
                    self.unrouted.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let d = Datagram {
                    at,
                    source,
                    data: data.to_vec(),
                };
                if inbox.try_send(d).is_err() {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(crate::metrics::VIDEO_DROPPED_DATAGRAMS).increment(1);
                }
            }
        }
    }

    /// Sends a batch with one `sendmmsg` call per [`SEND_BATCH`] datagrams (a frame fanned
    /// out to a room is one batch), without waiting: what a full socket buffer refuses is
    /// dropped, as the network would, and never stalls the media loop. Empties `batch`.
    ///
    /// Consecutive datagrams to one peer of one size (the last may be shorter) go as one
    /// message with UDP segmentation offload: the kernel routes and builds them once and
    /// cuts them apart at the device (or the NIC does), so a subscriber given several
    /// packets in one turn of the media loop costs one trip down the stack, not one each.
    pub fn send_batch(&self, batch: &mut Vec<(SocketAddr, Vec<u8>)>) {
        let mut from = 0;
        while from < batch.len() {
            let end = (from + SEND_BATCH).min(batch.len());
            let gso = self.gso.load(Ordering::Relaxed);
            match self.send_chunk(&batch[from..end], gso) {
                Ok(()) => from = end,
                Err(at) => {
                    // The kernel or the route cannot segment: send singly from here on.
                    tracing::info!("video: UDP segmentation offload refused; sending singly");
                    self.gso.store(false, Ordering::Relaxed);
                    from += at;
                }
            }
        }
        batch.clear();
    }

    /// One `sendmmsg` pass over at most [`SEND_BATCH`] datagrams; `Err(i)` when the kernel
    /// refused a segmentation-offload message starting at datagram `i` (nothing from `i`
    /// on was sent).
    fn send_chunk(&self, chunk: &[(SocketAddr, Vec<u8>)], gso: bool) -> Result<(), usize> {
        use std::os::fd::AsRawFd;
        debug_assert!(chunk.len() <= SEND_BATCH);
        let fd = self.socket.as_raw_fd();
        let (runs, nruns) = runs(chunk, gso);
        // SAFETY: zeroed C structs are valid; every pointer handed to sendmmsg points into
        // `addrs`, `iovs`, `ctrl` or `chunk`, which outlive the call and are not moved.
        unsafe {
            let mut addrs: [libc::sockaddr_storage; SEND_BATCH] = std::mem::zeroed();
            let mut iovs: [libc::iovec; SEND_BATCH] = std::mem::zeroed();
            let mut msgs: [libc::mmsghdr; SEND_BATCH] = std::mem::zeroed();
            // One control message (a u16 segment size) per message, 8-byte aligned.
            let mut ctrl: [[u64; 4]; SEND_BATCH] = [[0; 4]; SEND_BATCH];
            let space = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
            debug_assert!(space <= std::mem::size_of::<[u64; 4]>());
            for (i, (_, data)) in chunk.iter().enumerate() {
                iovs[i] = libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                };
            }
            for (m, &(first, n)) in runs[..nruns].iter().enumerate() {
                let len = write_sockaddr(chunk[first].0, &mut addrs[m]);
                let h = &mut msgs[m].msg_hdr;
                h.msg_name = &mut addrs[m] as *mut _ as *mut libc::c_void;
                h.msg_namelen = len;
                h.msg_iov = iovs.as_mut_ptr().add(first);
                h.msg_iovlen = n as _;
                if n > 1 {
                    h.msg_control = ctrl[m].as_mut_ptr() as *mut libc::c_void;
                    h.msg_controllen = space as _;
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                    let size = chunk[first].1.len() as u16;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, size);
                }
            }
            let mut sent = 0usize;
            while sent < nruns {
                let n = libc::sendmmsg(
                    fd,
                    msgs.as_mut_ptr().add(sent),
                    (nruns - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                );
                if n > 0 {
                    sent += n as usize;
                    continue;
                }
                let (first, count) = runs[sent];
                let err = std::io::Error::last_os_error().raw_os_error();
                if count > 1 && matches!(err, Some(libc::EIO) | Some(libc::EINVAL)) {
                    return Err(first);
                }
                // Full buffer (EAGAIN) or an unreachable peer: drop this message and go
                // on with the rest.
                metrics::counter!(crate::metrics::VIDEO_DROPPED_DATAGRAMS).increment(count as u64);
                sent += 1;
            }
        }
        Ok(())
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

    #[test]
    fn socket_addresses_round_trip() {
        for a in ["127.0.0.1:5000", "[::1]:6000", "[fe80::1%3]:7"] {
            let a: SocketAddr = a.parse().unwrap();
            // SAFETY: an all-zero sockaddr_storage is valid.
            let mut raw: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let len = write_sockaddr(a, &mut raw);
            assert_eq!(read_sockaddr(&raw, len), Some(a));
            assert_eq!(read_sockaddr(&raw, len - 1), None, "a truncated address");
        }
    }

    /// A burst read in one go reaches the room whole, in order, from the right source,
    /// and what nobody routed is counted and dropped.
    #[tokio::test]
    async fn the_receiver_hands_a_burst_to_its_room_in_order() {
        let net = VideoNet::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let reader = tokio::spawn(net.clone().run_receiver());
        let (tx, mut rx) = mpsc::channel(256);
        net.add_ufrag("srv1", 7, tx);
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(&[0x80, 1], net.local).unwrap();
        peer.send_to(&binding("srv1:x"), net.local).unwrap();
        let first = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv())
            .await
            .expect("the check arrives")
            .unwrap();
        assert_eq!(first.source, peer.local_addr().unwrap());
        for i in 0..100u8 {
            peer.send_to(&[0x80, i, 7, 7], net.local).unwrap();
        }
        for i in 0..100u8 {
            let d = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv())
                .await
                .expect("every datagram arrives")
                .unwrap();
            assert_eq!(d.data, vec![0x80, i, 7, 7]);
            assert_eq!(d.source, peer.local_addr().unwrap());
        }
        assert_eq!(net.unrouted.load(Ordering::Relaxed), 1);
        reader.abort();
    }

    #[test]
    fn runs_group_one_peer_and_one_size() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let chunk: Vec<(SocketAddr, Vec<u8>)> = [
            (a, 1000),
            (a, 1000),
            (a, 400), // shorter: ends the run
            (a, 1000),
            (a, 1200), // longer: a new run
            (b, 1200), // another peer
            (b, 1200),
            (a, 1200),
        ]
        .iter()
        .map(|&(to, n)| (to, vec![0; n]))
        .collect();
        let (r, n) = runs(&chunk, true);
        assert_eq!(&r[..n], &[(0, 3), (3, 1), (4, 1), (5, 2), (7, 1)]);
        let (r, n) = runs(&chunk, false);
        assert_eq!(n, chunk.len());
        assert!(r[..n].iter().enumerate().all(|(i, &x)| x == (i, 1)));
        // The byte cap splits a long run: 60 000 / 1200 = 50 in the first.
        let long: Vec<(SocketAddr, Vec<u8>)> = (0..64).map(|_| (a, vec![0; 1200])).collect();
        let (r, n) = runs(&long, true);
        assert_eq!(&r[..n], &[(0, 50), (50, 14)]);
    }

    /// Runs to one peer go out segmented (equal sizes, a shorter last one, a longer one
    /// starting a new run, runs past the byte cap): each datagram still arrives alone,
    /// whole and in order, and nothing else arrives.
    #[tokio::test]
    async fn runs_to_one_peer_arrive_as_single_datagrams() {
        let net = VideoNet::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let r1 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r2 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for r in [&r1, &r2] {
            r.set_read_timeout(Some(std::time::Duration::from_millis(500)))
                .unwrap();
        }
        let (a1, a2) = (r1.local_addr().unwrap(), r2.local_addr().unwrap());
        let mut want1 = Vec::new();
        let mut want2 = Vec::new();
        let mut batch: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let mut tag = 0u8;
        let mut push = |to: SocketAddr, len: usize, batch: &mut Vec<_>| {
            tag = tag.wrapping_add(1);
            let d = vec![tag; len];
            if to == a1 {
                want1.push(d.clone());
            } else {
                want2.push(d.clone());
            }
            batch.push((to, d));
        };
        for len in [1000, 1000, 1000, 400, 1000, 1200, 1200, 1100] {
            push(a1, len, &mut batch);
        }
        push(a2, 1000, &mut batch);
        // 80 of 1200 bytes to one peer: past both the batch and the byte cap.
        for _ in 0..80 {
            push(a2, 1200, &mut batch);
        }
        push(a1, 7, &mut batch);
        net.send_batch(&mut batch);
        assert!(batch.is_empty());
        let mut buf = [0u8; 4096];
        for (r, want) in [(&r1, &want1), (&r2, &want2)] {
            for (k, d) in want.iter().enumerate() {
                let (n, from) = r.recv_from(&mut buf).expect("a datagram");
                assert_eq!(from, net.local);
                assert_eq!(&buf[..n], &d[..], "datagram {k}");
            }
            assert!(r.recv_from(&mut buf).is_err(), "nothing more");
        }
        assert!(
            net.gso.load(Ordering::Relaxed),
            "loopback takes segmentation offload"
        );
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
