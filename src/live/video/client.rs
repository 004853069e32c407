//! A minimal WebRTC participant on str0m, for the integration tests and the load harness:
//! it publishes synthetic audio (Opus) and video (VP8) frames with a payload the test
//! chooses, answers the server's renegotiation, and records every frame it receives. It
//! talks only to the address in the server's answer (loopback in tests).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, KeyframeRequestKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

use super::sfu::route::Source;

/// Datagrams read per wake-up before str0m is polled (its output is sent) again.
const RECV_BATCH: usize = 64;

/// One frame received, on the m-line it came in on.
#[derive(Debug, Clone)]
pub struct Received {
    pub mid: Mid,
    pub data: Arc<[u8]>,
    pub keyframe: bool,
    pub at: Instant,
}

pub struct MediaClient {
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    /// What this client publishes, by its own mid.
    pub sending: HashMap<Source, Mid>,
    /// The camera's simulcast layers, as offered (empty: one stream).
    pub camera_rids: Vec<String>,
    pub received: Vec<Received>,
    /// Key frame requests the server sent for our video.
    pub keyframe_requests: Vec<(Mid, KeyframeRequestKind, Instant)>,
    pub connected: bool,
    next: Instant,
    clock: HashMap<(Source, Option<String>), u64>,
    buf: Vec<u8>,
    /// Datagrams sent and received (for the load harness's figures).
    pub datagrams_out: u64,
    pub datagrams_in: u64,
    /// Load harness mode: once connected, RTP is counted here instead of decrypted, so a
    /// harness core can stand in for many subscribers (RTCP and STUN still go to str0m).
    pub count_rtp_only: bool,
    pub rtp_in: u64,
    /// Tests of a lossy link: every this many incoming RTP datagrams, one is dropped
    /// before str0m sees it (0: none).
    pub drop_rtp_every: u64,
}

impl MediaClient {
    /// A client on a fresh loopback UDP port.
    pub async fn new() -> std::io::Result<MediaClient> {
        super::install_crypto();
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder().build(now);
        let cand = Candidate::host(local, "udp").map_err(std::io::Error::other)?;
        rtc.add_local_candidate(cand);
        Ok(MediaClient {
            rtc,
            socket,
            local,
            pending: None,
            sending: HashMap::new(),
            camera_rids: Vec::new(),
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            connected: false,
            next: now,
            clock: HashMap::new(),
            buf: vec![0; 2048],
            datagrams_out: 0,
            datagrams_in: 0,
            count_rtp_only: false,
            rtp_in: 0,
            drop_rtp_every: 0,
        })
    }

    /// An offer publishing `sources` (send-only), and its `sources` map for `video.offer`.
    pub fn offer(&mut self, sources: &[Source]) -> (String, BTreeMap<String, Source>) {
        self.offer_simulcast(sources, &[])
    }

    /// Like [`MediaClient::offer`], with the camera sent as simulcast layers `rids`.
    pub fn offer_simulcast(
        &mut self,
        sources: &[Source],
        rids: &[&str],
    ) -> (String, BTreeMap<String, Source>) {
        if sources.contains(&Source::Camera) {
            self.camera_rids = rids.iter().map(|r| r.to_string()).collect();
        }
        let mut api = self.rtc.sdp_api();
        let mut named = BTreeMap::new();
        for s in sources {
            let simulcast = (*s == Source::Camera && !rids.is_empty()).then(|| {
                let mut sim = Simulcast::new();
                for r in rids {
                    sim.add_send_layer(SimulcastLayer::new(r));
                }
                sim
            });
            let mid = api.add_media(
                s.kind(),
                Direction::SendOnly,
                Some("me".into()),
                Some(s.as_str().into()),
                simulcast,
            );
            self.sending.insert(*s, mid);
            named.insert(mid.to_string(), *s);
        }
        if sources.is_empty() {
            // Receive-only: an offer needs one m-line for ICE and DTLS to run on.
            api.add_channel("studyon".into());
        }
        let (offer, pending) = api.apply().expect("an offer with media");
        self.pending = Some(pending);
        (offer.to_sdp_string(), named)
    }

    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let pending = self.pending.take().ok_or("no offer pending")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())
    }

    /// Answers the server's renegotiation.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, String> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| e.to_string())?;
        Ok(answer.to_sdp_string())
    }

    /// Writes one key frame of `payload(source)` on every published source (on each layer
    /// of a simulcast camera). The server offers a track to the others at its first frame,
    /// so a publisher with nothing to send yet sends this to be seen. True if every write
    /// was taken.
    pub fn announce(&mut self, payload: impl Fn(Source) -> Vec<u8>) -> bool {
        let mut sources: Vec<Source> = self.sending.keys().copied().collect();
        sources.sort_by_key(|s| *s as u8);
        let rids = self.camera_rids.clone();
        let mut ok = true;
        for s in sources {
            if s == Source::Camera && !rids.is_empty() {
                for r in &rids {
                    ok &= self.send_layer(s, Some(r), &payload(s), true);
                }
            } else {
                ok &= self.send(s, &payload(s), true);
            }
        }
        ok
    }

    /// Writes one frame of `source` (20 ms of audio, or a video frame; `keyframe` sets the
    /// VP8 key frame bit in the first byte). False if it could not be written yet.
    pub fn send(&mut self, source: Source, payload: &[u8], keyframe: bool) -> bool {
        self.send_layer(source, None, payload, keyframe)
    }

    /// Writes one frame on a simulcast layer (`rid`), or on the plain stream.
    pub fn send_layer(
        &mut self,
        source: Source,
        rid: Option<&str>,
        payload: &[u8],
        keyframe: bool,
    ) -> bool {
        let Some(mid) = self.sending.get(&source).copied() else {
            return false;
        };
        let codec = match source {
            Source::Mic => Codec::Opus,
            _ => Codec::Vp8,
        };
        let (step, freq) = match source {
            Source::Mic => (960, Frequency::FORTY_EIGHT_KHZ),
            _ => (3000, Frequency::NINETY_KHZ),
        };
        // Each layer is its own stream with its own clock.
        let clock_key = (source, rid.map(str::to_owned));
        let t = self.clock.entry(clock_key).or_insert(0);
        *t += step;
        let time = MediaTime::new(*t, freq);
        let mut data = payload.to_vec();
        if codec == Codec::Vp8 && !data.is_empty() {
            // VP8's first byte: bit 0 clear marks a key frame.
            data[0] = (data[0] & !1) | u8::from(!keyframe);
        }
        let Some(writer) = self.rtc.writer(mid) else {
            return false;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return false;
        };
        let writer = if source == Source::Mic {
            // Speech level (str0m's sign: −30 dBov): enough for active speaker detection.
            writer.audio_level(-30, true)
        } else {
            writer
        };
        let writer = match rid {
            Some(r) => writer.rid(Rid::from(r)),
            None => writer,
        };
        writer.write(pt, Instant::now(), time, data).is_ok()
    }

    /// Runs the connection for `dur`: sends what str0m wants sent, feeds it what arrives,
    /// records received frames.
    pub async fn pump(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        loop {
            self.drain().await;
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let wait = self.next.min(deadline).saturating_duration_since(now);
            if self.next <= now {
                // str0m wants the time now (it packetizes one written frame per timeout
                // input). A timer, even of zero length, fires at tokio's next millisecond
                // tick: that capped a publisher at 1 000 frames/s. What has arrived is
                // read first, without waiting.
                if !self.read_ready() {
                    let _ = self.rtc.handle_input(Input::Timeout(now));
                }
                // Other tasks on this thread (the other clients of a test) still get turns.
                tokio::task::yield_now().await;
                continue;
            }
            match tokio::time::timeout(wait, self.socket.recv_from(&mut self.buf)).await {
                Ok(Ok((n, source))) => {
                    self.on_datagram(n, source);
                    self.read_ready();
                }
                Ok(Err(_)) => {}
                Err(_) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    }

    /// Takes what has already arrived (up to [`RECV_BATCH`]) before str0m is polled again:
    /// a poll and a timer per datagram would make a busy client (the load harness's, many
    /// on one core) the ceiling of the load it drives. False if nothing had arrived.
    fn read_ready(&mut self) -> bool {
        let mut any = false;
        for _ in 0..RECV_BATCH {
            match self.socket.try_recv_from(&mut self.buf) {
                Ok((n, source)) => {
                    self.on_datagram(n, source);
                    any = true;
                }
                Err(_) => break,
            }
        }
        any
    }

    /// Counts a datagram now in `buf`, or gives it to str0m.
    fn on_datagram(&mut self, n: usize, source: SocketAddr) {
        self.datagrams_in += 1;
        if self.connected && is_rtp(&self.buf[..n]) {
            self.rtp_in += 1;
            let dropped =
                self.drop_rtp_every > 0 && self.rtp_in.is_multiple_of(self.drop_rtp_every);
            if self.count_rtp_only || dropped {
                return;
            }
        }
        let Ok(contents) = self.buf[..n].try_into() else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            let _ = self.rtc.handle_input(input);
        }
    }

    async fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    self.datagrams_out += 1;
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => self.connected = true,
                    Event::MediaData(d) => self.received.push(Received {
                        mid: d.mid,
                        keyframe: d.is_keyframe(),
                        data: d.data,
                        at: Instant::now(),
                    }),
                    Event::KeyframeRequest(r) => {
                        self.keyframe_requests.push((r.mid, r.kind, Instant::now()))
                    }
                    _ => {}
                },
                Err(_) => {
                    self.next = Instant::now() + Duration::from_millis(50);
                    return;
                }
            }
        }
    }
}

/// RTP (not RTCP) by RFC 7983's first byte and RFC 5761's payload type range.
fn is_rtp(b: &[u8]) -> bool {
    b.len() >= 12 && (128..=191).contains(&b[0]) && !(192..=223).contains(&b[1])
}
