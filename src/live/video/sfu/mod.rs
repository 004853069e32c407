//! The media loop: one tokio task per live room on the node's media runtime, owning every
//! participant's str0m `Rtc`. Datagrams arrive from the UDP demultiplexer (never through an
//! actor mailbox), commands from the room's actor; after every input the touched `Rtc` is
//! drained with `poll_output` until it asks for a timeout, as str0m requires. Which packet
//! goes where, and with which numbers, is decided by the pure [`route::Routing`].
//!
//! The `Rtc`s run in str0m's RTP mode: a publisher's RTP packets are forwarded as they
//! are, renumbered per subscriber, with one shared payload. Frame mode cost a depacketizer
//! per publisher and a copy and a packetizer per subscriber and frame.

pub mod quality;
pub mod route;
pub mod rtp;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{
    ExtensionValues, RtpPacket, RtpWrite, Ssrc, Vp8Descriptor, Vp8Patch, Vp8PatchError,
};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot};

use self::quality::{LinkWatch, Quality};
use self::route::{Layer, OutState, PacketIn, Routing, Source};
use super::error::VideoError;
use super::frames::{TrackInfo, VideoAnswer, VideoOffer, VideoSpeaker};
use super::net::{self, Datagram, ROOM_INBOX, VideoNet};
use crate::ids::{ConnId, StudyId, UserId};
use crate::metrics as m;
use crate::ws::frame::ReqId;
use crate::ws::router::Sockets;

/// Commands queued for a room's media loop; the room actor is the only sender and waits
/// for the replies it needs, so this is never long.
pub const COMMANDS: usize = 256;
/// A participant whose media has not connected this long after its offer is dropped
/// (`connection_lost`): a peer that never sends checks would hold its place forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often str0m reports RTT and loss per participant (the metrics' resolution).
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// How often the active speaker is re-checked when no audio arrives (to clear it).
const SPEAKER_TICK: Duration = Duration::from_millis(250);
/// Datagrams handled per wake-up before commands and timers get a turn.
const BATCH: usize = 64;
/// Remote addresses remembered per participant (to unroute them when it leaves).
const MAX_ADDRS: usize = 8;
/// Incoming streams remembered per participant (their m-line and layer by SSRC): three
/// sources, three simulcast layers at most; a peer that cycles more SSRCs is looked up.
const MAX_STREAMS: usize = 12;
/// How long a subscriber's video packets are kept to answer its NACKs: a resend is worth
/// sending only within a few round trips, and the jitter buffer has given up on it after
/// about a second (str0m's default keeps 3 s, up to 2000 packets, per stream and
/// subscriber: in a full room that is most of the media loop's memory and cache misses).
const RTX_AGE: Duration = Duration::from_secs(1);
/// Packets kept per subscriber stream at most: a second of a 5 Mbit/s camera or screen.
const RTX_PACKETS: usize = 512;
/// str0m's default: resends stop while they pass 15 % of what a stream sends (a subscriber
/// on a lossy link would otherwise spend its bandwidth on them).
const RTX_RATIO_CAP: Option<f32> = Some(0.15);

pub enum MediaCmd {
    /// A participant's offer (its first one creates its `Rtc`). The answer goes straight to
    /// the socket as `video.answer`, ahead of any server offer that follows.
    Offer {
        user: UserId,
        conn: ConnId,
        req: Option<ReqId>,
        offer: SdpOffer,
        sources: Vec<(Mid, Source)>,
        reply: oneshot::Sender<Result<(), VideoError>>,
    },
    Answer {
        user: UserId,
        answer: SdpAnswer,
        reply: oneshot::Sender<Result<(), VideoError>>,
    },
    Remove {
        user: UserId,
    },
    Mute {
        user: UserId,
        muted: bool,
    },
    /// The leader stopped a participant's camera or screen, or they turned it on again.
    Stop {
        user: UserId,
        source: Source,
        stopped: bool,
    },
    Layer {
        sub: UserId,
        publisher: UserId,
        layer: Layer,
    },
}

/// What the media loop tells the room's actor.
#[derive(Debug)]
pub enum MediaEvent {
    Connected(UserId),
    Lost(UserId),
    /// The participant's link changed quality (judged once per stats interval).
    Quality(UserId, Quality),
}

struct Peer {
    user: UserId,
    conn: ConnId,
    rtc: Rtc,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    published: HashMap<Mid, Source>,
    /// Published m-lines that have sent no media yet: they get no m-line at the others
    /// until their first packet (see `on_event`).
    silent: HashMap<Mid, Source>,
    /// Its incoming streams: SSRC → (m-line, layer), as str0m mapped them.
    streams: Vec<(Ssrc, Mid, Option<Rid>)>,
    /// Payload types to write with: (publisher, its payload type) → this participant's
    /// (`None`: it has no matching codec). Cleared at every negotiation.
    pts: Vec<(UserId, Pt, Option<Pt>)>,
    pending: Option<SdpPendingOffer>,
    /// The first answer went out: the server may send offers now.
    ready: bool,
    connected: bool,
    created: Instant,
    next: Instant,
    link: LinkWatch,
}

// Packets are the common case and move through the queue once; boxing them would cost an
// allocation per forwarded packet to save a few hundred bytes in a short queue.
#[allow(clippy::large_enum_variant)]
enum Work {
    Packet(UserId, Mid, Option<Rid>, RtpPacket),
    Keyframe(UserId, Mid, Option<Rid>, KeyframeRequestKind),
}

struct MediaLoop {
    study: StudyId,
    net: Arc<VideoNet>,
    sockets: Sockets,
    events: mpsc::Sender<MediaEvent>,
    inbox_tx: mpsc::Sender<Datagram>,
    peers: Vec<Peer>,
    routing: Routing,
    work: VecDeque<Work>,
    lost: Vec<UserId>,
    /// Datagrams to send at the end of this turn of the loop (one `sendmmsg` per batch).
    out: Vec<(SocketAddr, Vec<u8>)>,
    /// Subscribers written to this turn: given the time and drained once each after the
    /// turn's frames (or at a later turn's timer while datagrams wait; see `settle`), not
    /// once per frame (str0m's polling walks every m-line of a session).
    touched: Vec<usize>,
    /// Something changed that may need an offer (tracks, a participant ready, an answer).
    negotiate: bool,
    /// Packets and bytes forwarded since the metrics were last told (per packet they
    /// would cost a registry lookup each).
    forwarded: (u64, u64),
}

/// Starts a room's media loop on `rt`; it ends when the returned sender is dropped.
pub fn spawn(
    rt: &tokio::runtime::Handle,
    study: StudyId,
    net: Arc<VideoNet>,
    sockets: Sockets,
    events: mpsc::Sender<MediaEvent>,
) -> mpsc::Sender<MediaCmd> {
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMANDS);
    let (inbox_tx, inbox_rx) = mpsc::channel(ROOM_INBOX);
    let lp = MediaLoop {
        study,
        net,
        sockets,
        events,
        inbox_tx,
        peers: Vec::new(),
        routing: Routing::default(),
        work: VecDeque::new(),
        lost: Vec::new(),
        out: Vec::with_capacity(net::SEND_BATCH),
        touched: Vec::new(),
        negotiate: false,
        forwarded: (0, 0),
    };
    rt.spawn(lp.run(cmd_rx, inbox_rx));
    ::metrics::gauge!(m::VIDEO_ROOMS).increment(1.0);
    cmd_tx
}

fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(3600)
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("OS randomness");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl MediaLoop {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<MediaCmd>,
        mut inbox: mpsc::Receiver<Datagram>,
    ) {
        let mut speaker_tick = tokio::time::interval(SPEAKER_TICK);
        speaker_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = Instant::now();
            let next = self
                .peers
                .iter()
                .map(|p| p.next)
                .min()
                .unwrap_or_else(|| far_future(now));
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(c) => {
                        self.on_cmd(c);
                        // Take every queued command before settling: the room sends a
                        // batch (ending it removes everyone) and no offer may go to a
                        // participant whose removal is already queued.
                        while let Ok(c) = cmds.try_recv() {
                            self.on_cmd(c);
                        }
                    }
                    None => break,
                },
                d = inbox.recv() => {
                    if let Some(d) = d {
                        self.on_datagram(d);
                        for _ in 1..BATCH {
                            match inbox.try_recv() {
                                Ok(d) => self.on_datagram(d),
                                Err(_) => break,
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(next.into()) => self.on_timeout(Instant::now()),
                _ = speaker_tick.tick() => {
                    if let Some(s) = self.routing.tick_speaker(Instant::now()) {
                        self.announce_speaker(s);
                    }
                    self.report();
                }
            }
            self.settle(inbox.is_empty());
            self.net.send_batch(&mut self.out);
        }
        self.report();
        for p in self.peers.drain(..) {
            self.net.remove_peer(&p.ufrag, &p.addrs);
            ::metrics::gauge!(m::VIDEO_PARTICIPANTS).decrement(1.0);
        }
        ::metrics::gauge!(m::VIDEO_ROOMS).decrement(1.0);
    }

    fn index(&self, user: UserId) -> Option<usize> {
        self.peers.iter().position(|p| p.user == user)
    }

    fn room_key(&self) -> u64 {
        self.study.0 as u64
    }

    fn on_cmd(&mut self, cmd: MediaCmd) {
        match cmd {
            MediaCmd::Offer {
                user,
                conn,
                req,
                offer,
                sources,
                reply,
            } => {
                let _ = reply.send(self.offer(user, conn, req, offer, sources));
            }
            MediaCmd::Answer {
                user,
                answer,
                reply,
            } => {
                let _ = reply.send(self.answer(user, answer));
            }
            MediaCmd::Remove { user } => self.remove(user),
            MediaCmd::Mute { user, muted } => self.routing.set_muted(user, muted),
            MediaCmd::Stop {
                user,
                source,
                stopped,
            } => {
                self.routing.set_stopped(user, source, stopped);
                // Back on: the others can decode nothing until its next key frame.
                let now = Instant::now();
                for mid in self.routing.mids_of(user, source) {
                    if !stopped && self.routing.keyframe_due(user, mid, now) {
                        self.work.push_back(Work::Keyframe(
                            user,
                            mid,
                            None,
                            KeyframeRequestKind::Pli,
                        ));
                    }
                }
            }
            MediaCmd::Layer {
                sub,
                publisher,
                layer,
            } => self.routing.set_layer(sub, publisher, layer),
        }
    }

    fn new_peer(&mut self, user: UserId, conn: ConnId) -> usize {
        let now = Instant::now();
        let creds = IceCreds {
            ufrag: random_token(16),
            pass: random_token(32),
        };
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            // Only codecs whose key frames `rtp::starts_keyframe` finds: a simulcast layer
            // switch waits for one.
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .enable_vp9(true)
            .set_ice_lite(true)
            .set_local_ice_credentials(creds.clone())
            .set_stats_interval(Some(STATS_INTERVAL))
            .build(now);
        match Candidate::host(self.net.advertised, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => tracing::warn!(error = %e, "video: unusable advertised address"),
        }
        self.net
            .add_ufrag(&creds.ufrag, self.room_key(), self.inbox_tx.clone());
        self.routing.add_peer(user);
        self.negotiate = true;
        self.peers.push(Peer {
            user,
            conn,
            rtc,
            ufrag: creds.ufrag,
            addrs: Vec::new(),
            streams: Vec::new(),
            pts: Vec::new(),
            published: HashMap::new(),
            silent: HashMap::new(),
            pending: None,
            ready: false,
            connected: false,
            created: now,
            next: now,
            link: LinkWatch::default(),
        });
        ::metrics::gauge!(m::VIDEO_PARTICIPANTS).increment(1.0);
        self.peers.len() - 1
    }

    fn offer(
        &mut self,
        user: UserId,
        conn: ConnId,
        req: Option<ReqId>,
        offer: SdpOffer,
        sources: Vec<(Mid, Source)>,
    ) -> Result<(), VideoError> {
        let (i, fresh) = match self.index(user) {
            Some(i) if self.peers[i].conn == conn => (i, false),
            Some(_) => {
                // Another tab of the same user took over: start clean.
                self.remove(user);
                (self.new_peer(user, conn), true)
            }
            None => (self.new_peer(user, conn), true),
        };
        let p = &mut self.peers[i];
        if p.pending.is_some() {
            return Err(VideoError::Negotiating);
        }
        // Across offers too, so re-offering cannot grow what everyone else receives.
        let mut merged = p.published.clone();
        merged.extend(sources.iter().copied());
        if !route::one_of_each(merged.values().copied()) {
            if fresh {
                self.remove(user);
            }
            return Err(VideoError::TooManyTracks);
        }
        let p = &mut self.peers[i];
        let result = p.rtc.sdp_api().accept_offer(offer);
        match result {
            Ok(answer) => {
                p.published = merged;
                p.ready = true;
                self.negotiate = true;
                self.forget_pts();
                let frame = VideoAnswer {
                    id: req,
                    study_id: self.study,
                    sdp: answer.to_sdp_string(),
                };
                self.sockets.send(conn, &frame);
                self.drain(i);
                Ok(())
            }
            Err(e) => {
                if fresh {
                    self.remove(user);
                }
                Err(VideoError::BadSdp(e.to_string()))
            }
        }
    }

    fn answer(&mut self, user: UserId, answer: SdpAnswer) -> Result<(), VideoError> {
        let Some(i) = self.index(user) else {
            return Err(VideoError::NotInRoom);
        };
        let Some(pending) = self.peers[i].pending.take() else {
            return Err(VideoError::NoPendingOffer);
        };
        let result = self.peers[i].rtc.sdp_api().accept_answer(pending, answer);
        // Either way the participant may take the next offer now.
        self.negotiate = true;
        match result {
            Ok(()) => {
                self.forget_pts();
                // The answer declared the streams of the lines it opened (`Opening` until
                // `offer_answered` below): their resend history is sized now, once per
                // stream and off the packet path (see `RTX_AGE`).
                let opened: Vec<Mid> = self
                    .routing
                    .out(user)
                    .iter()
                    .filter(|t| t.source.kind() == MediaKind::Video)
                    .filter_map(|t| match t.state {
                        OutState::Opening(m) => Some(m),
                        _ => None,
                    })
                    .collect();
                let mut api = self.peers[i].rtc.direct_api();
                for m in opened {
                    if let Some(tx) = api.stream_tx_by_mid(m, None) {
                        tx.set_rtx_cache(RTX_PACKETS, RTX_AGE, RTX_RATIO_CAP);
                    }
                }
                let now = Instant::now();
                for (origin, mid) in self.routing.offer_answered(user) {
                    let video = self
                        .routing
                        .source_of(origin, mid)
                        .is_some_and(|s| s.kind() == MediaKind::Video);
                    // A new subscriber can decode nothing until the next key frame: ask now.
                    if video && self.routing.keyframe_due(origin, mid, now) {
                        self.work.push_back(Work::Keyframe(
                            origin,
                            mid,
                            None,
                            KeyframeRequestKind::Pli,
                        ));
                    }
                }
                self.drain(i);
                Ok(())
            }
            Err(e) => {
                self.routing.offer_dropped(user);
                Err(VideoError::BadSdp(e.to_string()))
            }
        }
    }

    /// Payload types may change with any negotiation, on either side of a track.
    fn forget_pts(&mut self) {
        for p in &mut self.peers {
            p.pts.clear();
        }
    }

    fn remove(&mut self, user: UserId) {
        let Some(i) = self.index(user) else {
            return;
        };
        let mut p = self.peers.remove(i);
        p.rtc.disconnect();
        self.net.remove_peer(&p.ufrag, &p.addrs);
        self.routing.remove_peer(user);
        self.negotiate = true;
        ::metrics::gauge!(m::VIDEO_PARTICIPANTS).decrement(1.0);
    }

    fn on_datagram(&mut self, d: Datagram) {
        let Ok(contents) = d.data.as_slice().try_into() else {
            return;
        };
        let input = Input::Receive(
            d.at,
            Receive {
                proto: Protocol::Udp,
                source: d.source,
                destination: self.net.advertised,
                contents,
            },
        );
        let Some(i) = self.peers.iter().position(|p| p.rtc.accepts(&input)) else {
            return;
        };
        let p = &mut self.peers[i];
        if !p.addrs.contains(&d.source) && p.addrs.len() < MAX_ADDRS {
            p.addrs.push(d.source);
        }
        if let Err(e) = p.rtc.handle_input(input) {
            tracing::debug!(user = %p.user, error = %e, "video: input refused");
            p.rtc.disconnect();
        }
        self.drain(i);
    }

    fn on_timeout(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let p = &mut self.peers[i];
            if !p.connected && now.saturating_duration_since(p.created) > CONNECT_TIMEOUT {
                p.rtc.disconnect();
            }
            if p.next <= now {
                self.tick(i, now);
            }
        }
    }

    /// Gives one participant's `Rtc` the time, then drains it.
    fn tick(&mut self, i: usize, now: Instant) {
        let p = &mut self.peers[i];
        if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(user = %p.user, error = %e, "video: timeout input failed");
            p.rtc.disconnect();
        }
        self.drain(i);
    }

    /// Polls one participant's `Rtc` until it asks for a timeout.
    fn drain(&mut self, i: usize) {
        loop {
            let p = &mut self.peers[i];
            if !p.rtc.is_alive() {
                p.next = far_future(Instant::now());
                if !self.lost.contains(&p.user) {
                    self.lost.push(p.user);
                }
                return;
            }
            match p.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    p.next = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    self.out.push((t.destination, t.contents.into()));
                    if self.out.len() >= net::SEND_BATCH {
                        self.net.send_batch(&mut self.out);
                    }
                }
                Ok(Output::Event(e)) => self.on_event(i, e),
                Err(e) => {
                    tracing::debug!(user = %p.user, error = %e, "video: poll failed");
                    p.rtc.disconnect();
                }
            }
        }
    }

    fn on_event(&mut self, i: usize, e: Event) {
        let user = self.peers[i].user;
        match e {
            Event::Connected => {
                self.peers[i].connected = true;
                let _ = self.events.try_send(MediaEvent::Connected(user));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.peers[i].rtc.disconnect();
            }
            Event::MediaAdded(m) => {
                // Only what the participant sends is published; a source it did not name
                // in its offer is not forwarded.
                if m.direction.is_receiving()
                    && let Some(source) = self.peers[i].published.get(&m.mid).copied()
                    && source.kind() == m.kind
                {
                    self.peers[i].silent.insert(m.mid, source);
                }
            }
            Event::RtpPacket(pkt) => {
                let Some((mid, rid)) = self.stream_of(i, pkt.header.ssrc) else {
                    return;
                };
                // A track is offered to the others at its first packet, not at the
                // publisher's offer. Browsers offer a screen (and often a camera) line that
                // may never carry media, and str0m walks every m-line of a session on each
                // poll: a 25-person room would give every subscriber 72 lines, most idle.
                // The packets before the others answer are lost; they are asked for a key
                // frame when they do.
                if !self.peers[i].silent.is_empty()
                    && let Some(source) = self.peers[i].silent.remove(&mid)
                {
                    self.routing.add_track(user, mid, source);
                    self.negotiate = true;
                }
                self.work.push_back(Work::Packet(user, mid, rid, pkt));
            }
            Event::KeyframeRequest(req) => {
                if let Some((origin, mid, rid)) = self.routing.origin_of(user, req.mid)
                    && self.routing.keyframe_due(origin, mid, Instant::now())
                {
                    self.work
                        .push_back(Work::Keyframe(origin, mid, rid, req.kind));
                }
            }
            Event::MediaEgressStats(s) => {
                if let Some(loss) = s.loss {
                    self.peers[i].link.egress(loss);
                }
                // What the subscriber lost of a video track we send it: past a point it
                // is given lower simulcast layers (see `route::LOSS_DOWN`).
                if let Some(loss) = s.loss
                    && let Some((origin, origin_mid, _)) = self.routing.origin_of(user, s.mid)
                    && self
                        .routing
                        .source_of(origin, origin_mid)
                        .is_some_and(|src| src.kind() == MediaKind::Video)
                    && let Some(cap) = self.routing.egress_loss(user, loss, Instant::now())
                {
                    tracing::debug!(%user, loss, ?cap, "video: layer cap moved");
                }
            }
            Event::PeerStats(s) => {
                if let Some(rtt) = s.rtt {
                    ::metrics::histogram!(m::VIDEO_RTT_SECONDS).record(rtt.as_secs_f64());
                }
                if let Some(loss) = s.ingress_loss_fraction {
                    ::metrics::histogram!(m::VIDEO_LOSS_RATIO).record(f64::from(loss));
                }
                if let Some(q) = self.peers[i].link.judge(s.rtt, s.ingress_loss_fraction)
                    && self.events.try_send(MediaEvent::Quality(user, q)).is_err()
                {
                    // The room's queue is full: say it again at the next interval.
                    self.peers[i].link.untold();
                }
            }
            _ => {}
        }
    }

    /// Forwards queued frames and key frame requests, sends offers where tracks changed,
    /// and reports participants whose connection died.
    fn settle(&mut self, idle: bool) {
        loop {
            while let Some(w) = self.work.pop_front() {
                match w {
                    Work::Packet(origin, mid, rid, pkt) => self.forward(origin, mid, rid, pkt),
                    Work::Keyframe(origin, mid, rid, kind) => {
                        if let Some(i) = self.index(origin) {
                            self.request_keyframe(i, mid, rid, kind);
                            self.drain(i);
                        }
                    }
                }
            }
            if self.touched.is_empty() {
                break;
            }
            // str0m packetizes a written frame only on its next timeout input, and asks
            // for that timeout at once, so a subscriber is given the time before its one
            // drain. When more datagrams wait, that is left to the timer of the next turn:
            // frames from other publishers are written first, and one timeout input and
            // drain per subscriber packetize them all (one frame per m-line each).
            // Draining may surface more work (a subscriber's key frame request).
            let now = Instant::now();
            if !idle {
                for i in std::mem::take(&mut self.touched) {
                    self.peers[i].next = self.peers[i].next.min(now);
                }
                break;
            }
            for i in std::mem::take(&mut self.touched) {
                self.tick(i, now);
            }
        }
        if !std::mem::take(&mut self.negotiate) {
            self.reap();
            return;
        }
        for i in 0..self.peers.len() {
            let p = &self.peers[i];
            if p.ready
                && p.pending.is_none()
                && p.rtc.is_alive()
                && self.routing.needs_offer(p.user)
            {
                self.renegotiate(i);
            }
        }
        self.reap();
    }

    /// Reports participants whose connection died and forgets them.
    fn reap(&mut self) {
        for user in std::mem::take(&mut self.lost) {
            self.remove(user);
            let _ = self.events.try_send(MediaEvent::Lost(user));
        }
    }

    /// The m-line and layer of a participant's incoming stream.
    fn stream_of(&mut self, i: usize, ssrc: Ssrc) -> Option<(Mid, Option<Rid>)> {
        let p = &mut self.peers[i];
        if let Some((_, mid, rid)) = p.streams.iter().find(|(s, ..)| *s == ssrc) {
            return Some((*mid, *rid));
        }
        let (mid, rid) = {
            let mut api = p.rtc.direct_api();
            let rx = api.stream_rx(&ssrc)?;
            (rx.mid(), rx.rid())
        };
        if p.streams.len() < MAX_STREAMS {
            p.streams.push((ssrc, mid, rid));
        }
        Some((mid, rid))
    }

    /// Asks a publisher for a key frame on `rid` of a track, or on every layer of it.
    fn request_keyframe(
        &mut self,
        i: usize,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let p = &mut self.peers[i];
        let mut api = p.rtc.direct_api();
        if let Some(rx) = api.stream_rx_by_mid(mid, rid) {
            rx.request_keyframe(kind);
            return;
        }
        if rid.is_none() {
            for (ssrc, ..) in p.streams.iter().filter(|(_, m, _)| *m == mid) {
                if let Some(rx) = api.stream_rx(ssrc) {
                    rx.request_keyframe(kind);
                }
            }
        }
    }

    /// The payload type `sub` writes a packet of `origin`'s payload type `pt` with.
    fn out_pt(&mut self, sub: usize, origin: UserId, pt: Pt, params: &PayloadParams) -> Option<Pt> {
        let p = &mut self.peers[sub];
        if let Some((.., out)) = p.pts.iter().find(|(o, x, _)| *o == origin && *x == pt) {
            return *out;
        }
        let out = p.rtc.codec_config().match_params(*params).map(|m| m.pt());
        p.pts.push((origin, pt, out));
        out
    }

    fn forward(&mut self, origin: UserId, mid: Mid, rid: Option<Rid>, pkt: RtpPacket) {
        let now = Instant::now();
        let Some(oi) = self.index(origin) else {
            return;
        };
        let pt = pkt.header.payload_type;
        let Some(params) = self.peers[oi]
            .rtc
            .codec_config()
            .find(|p| p.pt() == pt)
            .copied()
        else {
            return;
        };
        let codec = params.spec().codec;
        let source = self.routing.source_of(origin, mid);
        if source == Some(Source::Mic)
            && let Some(level) = pkt.header.ext_vals.audio_level
            && let Some(s) = self.routing.audio_level(origin, level, now)
        {
            self.announce_speaker(s);
        }
        let video = source.is_some_and(|s| s.kind() == MediaKind::Video);
        // Only a simulcast layer switch needs the key frame and the VP8 fields: a single
        // stream keeps its own numbers shifted once, so its payload is never read. The VP8
        // descriptor is parsed once for both.
        let simulcast = video && rid.is_some();
        let vp8 = if simulcast && codec == Codec::Vp8 {
            Vp8Descriptor::parse(&pkt.payload).ok()
        } else {
            None
        };
        let packet = PacketIn {
            rid,
            seq: *pkt.seq_no,
            ts: pkt.header.timestamp,
            keyframe: simulcast
                && match vp8 {
                    Some(d) => d.starts_keyframe(&pkt.payload),
                    None => rtp::starts_keyframe(codec, &pkt.payload),
                },
            picture_id: vp8.and_then(|d| d.picture_id()),
            tl0: vp8.and_then(|d| d.tl0_pic_idx()),
            short_picture_id: vp8.is_some() && rtp::vp8_short_picture_id(&pkt.payload),
            clock: params.spec().clock_rate.get(),
        };
        let plan = self.routing.forward(origin, mid, &packet, now);
        if let Some(rid) = plan.keyframe {
            self.work
                .push_back(Work::Keyframe(origin, mid, rid, KeyframeRequestKind::Pli));
        }
        // What a subscriber's player uses; the rest (mid, rid, transport-wide sequence
        // numbers, send times) belongs to each hop and str0m writes its own.
        let ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let mut sent = 0u64;
        for (sub, out_mid, n) in plan.to {
            let Some(i) = self.index(sub) else { continue };
            let Some(out_pt) = self.out_pt(i, origin, pt, &params) else {
                continue;
            };
            let mut api = self.peers[i].rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                continue;
            };
            let mut w = RtpWrite::new(
                out_pt,
                n.seq.into(),
                n.ts,
                pkt.timestamp,
                pkt.payload.clone(),
            )
            .marker(pkt.header.marker)
            .ext_vals(ext.clone())
            // Video is resent on a subscriber's NACK; late audio is better lost.
            .nackable(video);
            // After a layer switch the VP8 fields carry on from the last layer's.
            if let Some(d) = vp8
                && (n.picture_id, n.tl0) != (packet.picture_id, packet.tl0)
                && let Ok(patch) = vp8_patch(d, n.picture_id, n.tl0)
            {
                w = w.vp8_patch(patch);
            }
            // str0m queues it until this subscriber is given the time and drained: in this
            // turn, or while datagrams wait at the next timer (see `settle`).
            tx.write_rtp(w);
            sent += 1;
            if !self.touched.contains(&i) {
                self.touched.push(i);
            }
        }
        self.forwarded.0 += sent;
        self.forwarded.1 += sent * pkt.payload.len() as u64;
    }

    fn renegotiate(&mut self, i: usize) {
        let user = self.peers[i].user;
        let applied = {
            let api = RefCell::new(self.peers[i].rtc.sdp_api());
            self.routing.begin_offer(
                user,
                |origin, source| {
                    api.borrow_mut().add_media(
                        source.kind(),
                        Direction::SendOnly,
                        Some(format!("u{origin}")),
                        Some(format!("{}-{origin}", source.as_str())),
                        None,
                    )
                },
                |mid| api.borrow_mut().stop_media(mid),
            );
            let api = api.into_inner();
            if api.has_changes() { api.apply() } else { None }
        };
        let Some((offer, pending)) = applied else {
            // Nothing str0m needs to say (e.g. only already-stopped lines): settle it.
            self.routing.offer_answered(user);
            return;
        };
        let p = &mut self.peers[i];
        p.pending = Some(pending);
        let tracks = self
            .routing
            .out(user)
            .iter()
            .filter_map(|t| match t.state {
                OutState::Opening(m) | OutState::Open(m) => Some(TrackInfo {
                    mid: m.to_string(),
                    user_id: t.origin,
                    source: t.source,
                }),
                _ => None,
            })
            .collect();
        let frame = VideoOffer {
            study_id: self.study,
            sdp: offer.to_sdp_string(),
            tracks,
        };
        self.sockets.send(p.conn, &frame);
        self.drain(i);
    }

    fn report(&mut self) {
        let (packets, bytes) = std::mem::take(&mut self.forwarded);
        if packets > 0 {
            ::metrics::counter!(m::VIDEO_FORWARDED_PACKETS).increment(packets);
            ::metrics::counter!(m::VIDEO_FORWARDED_BYTES).increment(bytes);
        }
    }

    fn announce_speaker(&self, user: Option<UserId>) {
        let frame = VideoSpeaker {
            study_id: self.study,
            user_id: user,
        };
        let conns: Vec<ConnId> = self.peers.iter().map(|p| p.conn).collect();
        self.sockets.send_many(conns.iter(), &frame);
    }
}

/// The VP8 descriptor fields `d` carries, rewritten to `picture_id` and `tl0`.
fn vp8_patch(
    d: Vp8Descriptor,
    picture_id: Option<u16>,
    tl0: Option<u8>,
) -> Result<Vp8Patch, Vp8PatchError> {
    let mut b = d.patch();
    if let Some(pid) = picture_id {
        b = b.picture_id(pid);
    }
    if let Some(t) = tl0 {
        b = b.tl0_pic_idx(t);
    }
    b.build()
}
