//! The SFU's forwarding core, a plain function of (state, input, now): which published
//! tracks each participant receives and on which of its m-lines, what is dropped (a muted
//! microphone, a simulcast layer a subscriber does not get), when a publisher is asked for a
//! key frame, and who the active speaker is. The media loop wraps it around str0m.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use str0m::media::{MediaKind, Mid, Rid};

use crate::ids::UserId;

/// What a published track carries, as the publisher declared it in its offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Mic,
    Camera,
    Screen,
}

impl Source {
    pub fn kind(self) -> MediaKind {
        match self {
            Source::Mic => MediaKind::Audio,
            Source::Camera | Source::Screen => MediaKind::Video,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mic => "mic",
            Source::Camera => "camera",
            Source::Screen => "screen",
        }
    }
}

/// Whether `sources` names each source at most once: one m-line per source, so at most
/// three, and a re-offer cannot grow what everyone else receives.
pub fn one_of_each(sources: impl IntoIterator<Item = Source>) -> bool {
    let mut seen = [false; 3];
    sources
        .into_iter()
        .all(|s| !std::mem::replace(&mut seen[s as usize], true))
}

/// A simulcast layer, as a subscriber asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Low,
    Medium,
    High,
}

impl Layer {
    /// The layer a rid stands for: `h`/`m`/`l` (ours), `f`/`h`/`q` (a common other naming).
    pub fn of_rid(rid: &str) -> Layer {
        match rid {
            "l" | "q" | "low" => Layer::Low,
            "m" | "medium" => Layer::Medium,
            _ => Layer::High,
        }
    }

    fn lower(self) -> Layer {
        match self {
            Layer::High => Layer::Medium,
            _ => Layer::Low,
        }
    }

    fn higher(self) -> Layer {
        match self {
            Layer::Low => Layer::Medium,
            _ => Layer::High,
        }
    }
}

/// Least time between two key frame requests for one published track: a burst of losses
/// or joins must not make the publisher send key frames back to back.
pub const KEYFRAME_THROTTLE: Duration = Duration::from_millis(300);
/// A simulcast layer not seen for this long is treated as gone (the publisher dropped it
/// for bandwidth), and subscribers move to the best one still arriving.
pub const LAYER_STALE: Duration = Duration::from_secs(2);
/// How long after a track's first simulcast frame a subscriber waits for the layer it
/// wants before taking another: the layers' first frames arrive a few ms apart, and
/// starting on the wrong one means an extra switch (and key frame) at once.
pub const LAYER_GRACE: Duration = Duration::from_millis(500);
/// Loss a subscriber reports (RTCP receiver reports on a video m-line) at or above which it
/// is given one simulcast layer less than it asked for: at 10 % a decoder freezes more
/// than it plays, and a lower layer needs a third of the bandwidth or less.
pub const LOSS_DOWN: f32 = 0.10;
/// Loss at or under which, held for [`LAYER_UP_HOLD`], it gets one layer back.
pub const LOSS_UP: f32 = 0.02;
/// Least time between two steps down: each stats interval (5 s) reports every m-line, and
/// one bad interval should cost one layer, not one per track.
pub const LAYER_DOWN_GAP: Duration = Duration::from_secs(4);
/// How long a subscriber must report little loss before a step back up: a layer that was
/// too much a moment ago is tried again only after the link had time to settle.
pub const LAYER_UP_HOLD: Duration = Duration::from_secs(15);

/// Audio level at or above which a participant counts as speaking, in dBov as str0m gives
/// RFC 6464 levels (0 loud … −127 silent); about normal speech on a headset.
pub const SPEAKING_LEVEL: i8 = -50;
/// How long someone must lead the smoothed levels before the active speaker switches, so a
/// cough does not flip the highlight.
pub const SPEAKER_HOLD: Duration = Duration::from_millis(800);
/// After this long with no one speaking the active speaker is cleared.
pub const SPEAKER_QUIET: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// Needs an m-line in the subscriber's next offer.
    ToOpen,
    /// Offered on this mid, not answered yet.
    Opening(Mid),
    Open(Mid),
    /// The publisher is gone: stop the m-line in the next offer.
    ToStop(Mid),
    Stopping(Mid),
}

/// One published track as one subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutTrack {
    pub origin: UserId,
    pub origin_mid: Mid,
    pub source: Source,
    pub state: OutState,
    /// The rid being forwarded (simulcast), and the one to switch to at its next key frame.
    pub rid: Option<Rid>,
    pub want_rid: Option<Rid>,
    pub renumber: Renumber,
}

/// One RTP packet a publisher sent, as the forwarder reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketIn {
    /// The simulcast layer it came on.
    pub rid: Option<Rid>,
    /// Extended sequence number on that layer's stream.
    pub seq: u64,
    pub ts: u32,
    /// The first packet of a key frame (read for simulcast layers only).
    pub keyframe: bool,
    /// VP8's picture id and TL0PICIDX (the base temporal layer's frame count), when the
    /// payload carries them (the media loop reads them for simulcast layers only).
    pub picture_id: Option<u16>,
    pub tl0: Option<u8>,
    /// The picture id is the 7-bit form (else 15 bits): renumbered ids wrap to fit it.
    pub short_picture_id: bool,
    /// The RTP clock rate (90 000 for video).
    pub clock: u32,
}

/// One packet as one subscriber gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketOut {
    pub seq: u64,
    pub ts: u32,
    pub picture_id: Option<u16>,
    pub tl0: Option<u8>,
}

/// VP8 picture ids are 15 bits, or 7 in their short form.
const PICTURE_ID_MASK: u16 = 0x7fff;
const SHORT_PICTURE_ID_MASK: u16 = 0x7f;

/// How one source stream's numbers map onto a subscriber's m-line. A subscriber's decoder
/// sees one stream whatever layer it comes from, so after a simulcast switch the sequence
/// numbers, timestamps and VP8 picture ids and TL0PICIDXs carry on from the last ones it got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renumber {
    /// The layer the offsets are for; `None` before the first packet.
    from: Option<Option<Rid>>,
    /// Packets were held back on purpose (a muted microphone): the next one follows on
    /// from the last sent, so the subscriber sees no loss to wait for or report.
    rebase: bool,
    /// The first sequence number taken from that layer: an older one (a late resend of a
    /// frame before the switch) would reuse a number already sent.
    base: u64,
    seq_off: i64,
    ts_off: u32,
    pid_off: u16,
    tl0_off: u8,
    /// The highest sequence number sent, its timestamp and arrival, its VP8 fields.
    last_seq: u64,
    last_ts: u32,
    last_at: Option<Instant>,
    last_pid: u16,
    last_tl0: u8,
}

impl Renumber {
    /// The numbers `p` goes out with, or `None` for a packet from before the last switch.
    pub fn map(&mut self, p: &PacketIn, now: Instant) -> Option<PacketOut> {
        if self.from != Some(p.rid) || std::mem::take(&mut self.rebase) {
            match self.last_at {
                // A new receiver assumes a rollover count of 0: start below 2^16.
                None => {
                    self.seq_off = (p.seq % 65_536) as i64 - p.seq as i64;
                    self.ts_off = 0;
                    self.pid_off = 0;
                    self.tl0_off = 0;
                }
                Some(at) => {
                    self.seq_off = self.last_seq as i64 + 1 - p.seq as i64;
                    // Timestamps move on by the time that passed, at least one tick.
                    let ticks = (now.saturating_duration_since(at).as_secs_f64()
                        * f64::from(p.clock)) as u32;
                    self.ts_off = self.last_ts.wrapping_add(ticks.max(1)).wrapping_sub(p.ts);
                    // A switch happens at a key frame: the next picture, and the next
                    // base-layer frame.
                    if let Some(pid) = p.picture_id {
                        self.pid_off = self.last_pid.wrapping_add(1).wrapping_sub(pid);
                    }
                    if let Some(tl0) = p.tl0 {
                        self.tl0_off = self.last_tl0.wrapping_add(1).wrapping_sub(tl0);
                    }
                }
            }
            self.from = Some(p.rid);
            self.base = p.seq;
        }
        if p.seq < self.base {
            return None;
        }
        let mask = if p.short_picture_id {
            SHORT_PICTURE_ID_MASK
        } else {
            PICTURE_ID_MASK
        };
        let out = PacketOut {
            seq: (p.seq as i64 + self.seq_off) as u64,
            ts: p.ts.wrapping_add(self.ts_off),
            picture_id: p
                .picture_id
                .map(|pid| pid.wrapping_add(self.pid_off) & mask),
            tl0: p.tl0.map(|t| t.wrapping_add(self.tl0_off)),
        };
        if self.last_at.is_none() || out.seq > self.last_seq {
            self.last_seq = out.seq;
            self.last_ts = out.ts;
            self.last_at = Some(now);
            if let Some(pid) = out.picture_id {
                self.last_pid = pid;
            }
            if let Some(tl0) = out.tl0 {
                self.last_tl0 = tl0;
            }
        }
        Some(out)
    }

    /// The packets from here until the next one sent are not forwarded.
    pub fn skip(&mut self) {
        self.rebase = true;
    }
}

impl OutTrack {
    pub fn mid(&self) -> Option<Mid> {
        match self.state {
            OutState::ToOpen => None,
            OutState::Opening(m)
            | OutState::Open(m)
            | OutState::ToStop(m)
            | OutState::Stopping(m) => Some(m),
        }
    }
}

#[derive(Debug, Clone)]
struct TrackIn {
    source: Source,
    /// Simulcast rids seen, with when each was last seen (at most a few).
    rids: Vec<(Rid, Instant)>,
    /// When the first simulcast frame arrived.
    first_rid_at: Option<Instant>,
    last_keyframe_request: Option<Instant>,
}

/// What to do with one packet a publisher sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forward {
    /// (subscriber, its m-line, the packet's numbers there) to write the packet to.
    pub to: Vec<(UserId, Mid, PacketOut)>,
    /// Ask the publisher for a key frame of this rid (a subscriber waits to switch to it).
    pub keyframe: Option<Option<Rid>>,
}

/// The room's routing table.
#[derive(Debug, Default)]
pub struct Routing {
    tracks: BTreeMap<(UserId, Mid), TrackIn>,
    subs: BTreeMap<UserId, Vec<OutTrack>>,
    /// Participants whose microphone the leader muted: their audio is not forwarded.
    muted: HashSet<UserId>,
    /// Cameras and screens the leader stopped: not forwarded until their participant turns
    /// them on again (a client that ignores the stop still reaches no one).
    stopped: HashSet<(UserId, Source)>,
    /// (subscriber, publisher) → highest layer wanted; `High` when unset.
    layers: HashMap<(UserId, UserId), Layer>,
    /// Subscribers whose reported loss caps their layers below what they ask: the cap and
    /// when it last moved.
    caps: HashMap<UserId, (Layer, Instant)>,
    speaker: Speaker,
}

impl Routing {
    pub fn add_peer(&mut self, user: UserId) {
        let mut out = Vec::new();
        for ((origin, mid), t) in &self.tracks {
            if *origin != user {
                out.push(OutTrack::new(*origin, *mid, t.source));
            }
        }
        self.subs.insert(user, out);
    }

    /// Forgets a participant: its tracks are stopped in everyone's next offer.
    pub fn remove_peer(&mut self, user: UserId) {
        self.subs.remove(&user);
        self.tracks.retain(|(origin, _), _| *origin != user);
        self.layers.retain(|(s, p), _| *s != user && *p != user);
        self.caps.remove(&user);
        self.stopped.retain(|(u, _)| *u != user);
        for out in self.subs.values_mut() {
            out.retain_mut(|t| {
                if t.origin != user {
                    return true;
                }
                match t.state {
                    // Never offered: nothing to stop.
                    OutState::ToOpen => false,
                    OutState::Opening(m) | OutState::Open(m) | OutState::ToStop(m) => {
                        t.state = OutState::ToStop(m);
                        true
                    }
                    OutState::Stopping(_) => true,
                }
            });
        }
        self.speaker.forget(user);
    }

    pub fn has_peer(&self, user: UserId) -> bool {
        self.subs.contains_key(&user)
    }

    /// A publisher's new track: every other participant gets an m-line for it.
    pub fn add_track(&mut self, origin: UserId, mid: Mid, source: Source) {
        if self.tracks.contains_key(&(origin, mid)) {
            return;
        }
        self.tracks.insert(
            (origin, mid),
            TrackIn {
                source,
                rids: Vec::new(),
                first_rid_at: None,
                last_keyframe_request: None,
            },
        );
        for (sub, out) in self.subs.iter_mut() {
            if *sub != origin {
                out.push(OutTrack::new(origin, mid, source));
            }
        }
    }

    pub fn source_of(&self, origin: UserId, mid: Mid) -> Option<Source> {
        self.tracks.get(&(origin, mid)).map(|t| t.source)
    }

    pub fn set_muted(&mut self, user: UserId, muted: bool) {
        if muted {
            self.muted.insert(user);
        } else {
            self.muted.remove(&user);
        }
    }

    pub fn set_stopped(&mut self, user: UserId, source: Source, stopped: bool) {
        if stopped {
            self.stopped.insert((user, source));
        } else {
            self.stopped.remove(&(user, source));
        }
    }

    /// The m-lines on which `origin` publishes `source` (one, unless it re-offered).
    pub fn mids_of(&self, origin: UserId, source: Source) -> Vec<Mid> {
        self.tracks
            .iter()
            .filter(|((o, _), t)| *o == origin && t.source == source)
            .map(|((_, m), _)| *m)
            .collect()
    }

    /// Only for two participants of the room: the table stays within participants².
    pub fn set_layer(&mut self, sub: UserId, publisher: UserId, layer: Layer) {
        if sub != publisher && self.subs.contains_key(&sub) && self.subs.contains_key(&publisher) {
            self.layers.insert((sub, publisher), layer);
        }
    }

    /// The subscriber's tracks (for the offer's `tracks` list and the media loop).
    pub fn out(&self, sub: UserId) -> &[OutTrack] {
        self.subs.get(&sub).map_or(&[], |v| v.as_slice())
    }

    /// Whether the subscriber needs a new offer.
    pub fn needs_offer(&self, sub: UserId) -> bool {
        self.out(sub)
            .iter()
            .any(|t| matches!(t.state, OutState::ToOpen | OutState::ToStop(_)))
    }

    /// Starts an offer: `open` gets each track to add (its index and source) and returns
    /// the mid it was given; `stop` gets each mid to stop.
    pub fn begin_offer(
        &mut self,
        sub: UserId,
        mut open: impl FnMut(UserId, Source) -> Mid,
        mut stop: impl FnMut(Mid),
    ) {
        let Some(out) = self.subs.get_mut(&sub) else {
            return;
        };
        for t in out.iter_mut() {
            match t.state {
                OutState::ToOpen => t.state = OutState::Opening(open(t.origin, t.source)),
                OutState::ToStop(m) => {
                    stop(m);
                    t.state = OutState::Stopping(m);
                }
                _ => {}
            }
        }
    }

    /// The subscriber answered: offered tracks are open, stopped ones gone. Returns the
    /// newly opened tracks (each needs a key frame from its publisher).
    pub fn offer_answered(&mut self, sub: UserId) -> Vec<(UserId, Mid)> {
        let Some(out) = self.subs.get_mut(&sub) else {
            return Vec::new();
        };
        let mut opened = Vec::new();
        out.retain_mut(|t| match t.state {
            OutState::Opening(m) => {
                t.state = OutState::Open(m);
                opened.push((t.origin, t.origin_mid));
                true
            }
            OutState::Stopping(_) => false,
            _ => true,
        });
        opened
    }

    /// The offer was dropped (the subscriber's own offer won): redo it later.
    pub fn offer_dropped(&mut self, sub: UserId) {
        if let Some(out) = self.subs.get_mut(&sub) {
            for t in out.iter_mut() {
                match t.state {
                    OutState::Opening(_) => t.state = OutState::ToOpen,
                    OutState::Stopping(m) => t.state = OutState::ToStop(m),
                    _ => {}
                }
            }
        }
    }

    /// Which subscribers get a packet `origin` sent on `mid`, and with which numbers, at
    /// `now`.
    pub fn forward(&mut self, origin: UserId, mid: Mid, p: &PacketIn, now: Instant) -> Forward {
        let (rid, keyframe) = (p.rid, p.keyframe);
        let mut fwd = Forward::default();
        let Some(track) = self.tracks.get_mut(&(origin, mid)) else {
            return fwd;
        };
        let held = (track.source == Source::Mic && self.muted.contains(&origin))
            || self.stopped.contains(&(origin, track.source));
        if held {
            for t in self.subs.values_mut().flat_map(|o| o.iter_mut()) {
                if t.origin == origin && t.origin_mid == mid {
                    t.renumber.skip();
                }
            }
            return fwd;
        }
        if let Some(r) = rid {
            track.first_rid_at.get_or_insert(now);
            match track.rids.iter().position(|(x, _)| *x == r) {
                Some(i) => track.rids[i].1 = now,
                // A publisher sends at most a handful of layers; more is not simulcast.
                None if track.rids.len() < 4 => track.rids.push((r, now)),
                None => {}
            }
        }
        let live: Vec<Rid> = track
            .rids
            .iter()
            .filter(|(_, seen)| now.saturating_duration_since(*seen) < LAYER_STALE)
            .map(|(r, _)| *r)
            .collect();
        let strict = track
            .first_rid_at
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_GRACE);
        let mut want_keyframe = false;
        for (sub, out) in self.subs.iter_mut() {
            if *sub == origin {
                continue;
            }
            let Some(t) = out
                .iter_mut()
                .find(|t| t.origin == origin && t.origin_mid == mid)
            else {
                continue;
            };
            let OutState::Open(out_mid) = t.state else {
                continue;
            };
            if rid.is_none() {
                if let Some(n) = t.renumber.map(p, now) {
                    fwd.to.push((*sub, out_mid, n));
                }
                continue;
            }
            let asked = self
                .layers
                .get(&(*sub, origin))
                .copied()
                .unwrap_or(Layer::High);
            let wanted = self.caps.get(sub).map_or(asked, |(cap, _)| asked.min(*cap));
            let best = choose_rid(&live, wanted, strict);
            if best != t.want_rid {
                t.want_rid = best;
            }
            // Switch layers only at a key frame of the new one, so the decoder never gets
            // a delta frame it has no reference for.
            if t.want_rid != t.rid {
                if t.want_rid == rid && keyframe {
                    t.rid = rid;
                } else if t.want_rid.is_some() {
                    want_keyframe = true;
                }
            }
            if t.rid == rid
                && let Some(n) = t.renumber.map(p, now)
            {
                fwd.to.push((*sub, out_mid, n));
            }
        }
        if want_keyframe && self.keyframe_due(origin, mid, now) {
            let wants: Option<Rid> = self
                .subs
                .values()
                .flat_map(|o| o.iter())
                .find(|t| t.origin == origin && t.origin_mid == mid && t.want_rid != t.rid)
                .and_then(|t| t.want_rid);
            fwd.keyframe = Some(wants);
        }
        fwd
    }

    /// A loss fraction `sub` reported for one of its video m-lines. Returns its new layer
    /// cap when it moves (`High`: no cap any more).
    pub fn egress_loss(&mut self, sub: UserId, loss: f32, now: Instant) -> Option<Layer> {
        if !self.subs.contains_key(&sub) {
            return None;
        }
        let (cap, since) = self.caps.get(&sub).copied().unwrap_or((Layer::High, now));
        let held = now.saturating_duration_since(since);
        let next = if loss >= LOSS_DOWN && cap != Layer::Low {
            // The first step down is at once; later ones wait for the next interval.
            if self.caps.contains_key(&sub) && held < LAYER_DOWN_GAP {
                return None;
            }
            cap.lower()
        } else if loss <= LOSS_UP && cap != Layer::High && held >= LAYER_UP_HOLD {
            cap.higher()
        } else {
            if loss > LOSS_UP && cap != Layer::High {
                // Not clean yet: the hold starts again.
                self.caps.insert(sub, (cap, now));
            }
            return None;
        };
        if next == Layer::High {
            self.caps.remove(&sub);
        } else {
            self.caps.insert(sub, (next, now));
        }
        Some(next)
    }

    /// Whether a key frame may be requested for the track now (and notes that it was).
    pub fn keyframe_due(&mut self, origin: UserId, mid: Mid, now: Instant) -> bool {
        let Some(t) = self.tracks.get_mut(&(origin, mid)) else {
            return false;
        };
        if t.last_keyframe_request
            .is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_THROTTLE)
        {
            return false;
        }
        t.last_keyframe_request = Some(now);
        true
    }

    /// The track behind a subscriber's m-line (to route its key frame requests back).
    pub fn origin_of(&self, sub: UserId, out_mid: Mid) -> Option<(UserId, Mid, Option<Rid>)> {
        self.out(sub)
            .iter()
            .find(|t| t.mid() == Some(out_mid))
            .map(|t| (t.origin, t.origin_mid, t.rid.or(t.want_rid)))
    }

    /// An audio level from a publisher's microphone; returns the new active speaker when
    /// it changes (`Some(None)`: no one speaks any more).
    pub fn audio_level(&mut self, user: UserId, level: i8, now: Instant) -> Option<Option<UserId>> {
        if self.muted.contains(&user) {
            return None;
        }
        self.speaker.observe(user, level, now)
    }

    pub fn tick_speaker(&mut self, now: Instant) -> Option<Option<UserId>> {
        self.speaker.tick(now)
    }
}

impl OutTrack {
    fn new(origin: UserId, origin_mid: Mid, source: Source) -> OutTrack {
        OutTrack {
            origin,
            origin_mid,
            source,
            state: OutState::ToOpen,
            rid: None,
            want_rid: None,
            renumber: Renumber::default(),
        }
    }
}

/// The best live rid at or under `wanted`, else (unless `strict`) the lowest live one.
pub fn choose_rid(live: &[Rid], wanted: Layer, strict: bool) -> Option<Rid> {
    let best_under = live
        .iter()
        .filter(|r| Layer::of_rid(r) <= wanted)
        .max_by_key(|r| Layer::of_rid(r));
    if strict {
        return best_under.copied();
    }
    best_under
        .or_else(|| live.iter().min_by_key(|r| Layer::of_rid(r)))
        .copied()
}

/// Active speaker detection: an exponentially smoothed loudness per participant; the
/// loudest one who is speaking becomes the speaker after leading for [`SPEAKER_HOLD`].
#[derive(Debug, Default)]
pub struct Speaker {
    /// user → (smoothed loudness 0..=127, last time it was at speaking level)
    levels: HashMap<UserId, (f32, Instant)>,
    current: Option<UserId>,
    candidate: Option<(UserId, Instant)>,
}

impl Speaker {
    fn observe(&mut self, user: UserId, level: i8, now: Instant) -> Option<Option<UserId>> {
        let loud = f32::from(127 + level.clamp(-127, 0));
        let speaking = level >= SPEAKING_LEVEL;
        let e = self.levels.entry(user).or_insert((0.0, now));
        // About a 300 ms window at 50 packets a second.
        e.0 = e.0 * 0.94 + loud * 0.06;
        if speaking {
            e.1 = now;
        }
        self.tick(now)
    }

    fn tick(&mut self, now: Instant) -> Option<Option<UserId>> {
        let leader = self
            .levels
            .iter()
            .filter(|(_, (_, spoke))| now.saturating_duration_since(*spoke) < SPEAKER_HOLD)
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
            .map(|(u, _)| *u);
        match leader {
            None => {
                self.candidate = None;
                let quiet = self.current.is_some_and(|c| {
                    self.levels.get(&c).is_none_or(|(_, spoke)| {
                        now.saturating_duration_since(*spoke) >= SPEAKER_QUIET
                    })
                });
                if quiet {
                    self.current = None;
                    return Some(None);
                }
                None
            }
            Some(u) if Some(u) == self.current => {
                self.candidate = None;
                None
            }
            Some(u) => match self.candidate {
                Some((c, since)) if c == u => {
                    if self.current.is_none()
                        || now.saturating_duration_since(since) >= SPEAKER_HOLD
                    {
                        self.current = Some(u);
                        self.candidate = None;
                        return Some(Some(u));
                    }
                    None
                }
                _ => {
                    self.candidate = Some((u, now));
                    if self.current.is_none() {
                        self.current = Some(u);
                        self.candidate = None;
                        return Some(Some(u));
                    }
                    None
                }
            },
        }
    }

    fn forget(&mut self, user: UserId) {
        self.levels.remove(&user);
        if self.candidate.is_some_and(|(c, _)| c == user) {
            self.candidate = None;
        }
        if self.current == Some(user) {
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);

    fn mid(s: &str) -> Mid {
        Mid::from(s)
    }

    /// Forwards one video packet; sequence numbers rise across calls.
    fn fwd(
        r: &mut Routing,
        origin: UserId,
        mid: Mid,
        rid: Option<Rid>,
        keyframe: bool,
        now: Instant,
    ) -> Forward {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(1);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let p = PacketIn {
            rid,
            seq,
            ts: seq as u32 * 3000,
            keyframe,
            picture_id: None,
            tl0: None,
            short_picture_id: false,
            clock: 90_000,
        };
        r.forward(origin, mid, &p, now)
    }

    /// Opens every pending m-line of `sub` and answers, numbering mids `o0`, `o1`, …
    fn negotiate(r: &mut Routing, sub: UserId) -> Vec<(UserId, Mid)> {
        let mut n = r.out(sub).iter().filter(|t| t.mid().is_some()).count();
        r.begin_offer(
            sub,
            |_, _| {
                let m = mid(&format!("o{n}"));
                n += 1;
                m
            },
            |_| {},
        );
        r.offer_answered(sub)
    }

    #[test]
    fn each_source_at_most_once() {
        use Source::*;
        assert!(one_of_each([Mic, Camera, Screen]));
        assert!(one_of_each([]));
        assert!(!one_of_each([Mic, Camera, Mic]));
        assert!(!one_of_each([Screen, Screen]));
    }

    #[test]
    fn every_subscriber_gets_every_other_publisher() {
        let now = Instant::now();
        let mut r = Routing::default();
        for u in [A, B, C] {
            r.add_peer(u);
        }
        r.add_track(A, mid("0"), Source::Mic);
        r.add_track(B, mid("0"), Source::Camera);
        assert!(r.needs_offer(B) && r.needs_offer(C) && r.needs_offer(A));
        // Not negotiated yet: nothing forwarded.
        assert!(fwd(&mut r, A, mid("0"), None, false, now).to.is_empty());
        for u in [A, B, C] {
            negotiate(&mut r, u);
        }
        let to = fwd(&mut r, A, mid("0"), None, false, now).to;
        let subs: Vec<UserId> = to.iter().map(|(u, ..)| *u).collect();
        assert_eq!(subs, vec![B, C], "never back to the publisher");
        let to = fwd(&mut r, B, mid("0"), None, true, now).to;
        assert_eq!(to.iter().map(|(u, ..)| *u).collect::<Vec<_>>(), vec![A, C]);
    }

    #[test]
    fn a_late_joiner_gets_existing_tracks_and_asks_key_frames() {
        let mut r = Routing::default();
        r.add_peer(A);
        r.add_track(A, mid("1"), Source::Camera);
        r.add_peer(B);
        assert!(r.needs_offer(B));
        let opened = negotiate(&mut r, B);
        assert_eq!(opened, vec![(A, mid("1"))]);
        assert!(!r.needs_offer(B));
    }

    #[test]
    fn muted_microphone_is_not_forwarded_but_camera_is() {
        let now = Instant::now();
        let mut r = Routing::default();
        r.add_peer(A);
        r.add_peer(B);
        r.add_track(A, mid("0"), Source::Mic);
        r.add_track(A, mid("1"), Source::Camera);
        negotiate(&mut r, B);
        let before = fwd(&mut r, A, mid("0"), None, false, now).to[0].2.seq;
        r.set_muted(A, true);
        assert!(fwd(&mut r, A, mid("0"), None, false, now).to.is_empty());
        assert_eq!(fwd(&mut r, A, mid("1"), None, false, now).to.len(), 1);
        r.set_muted(A, false);
        let to = fwd(&mut r, A, mid("0"), None, false, now).to;
        assert_eq!(to.len(), 1);
        assert_eq!(to[0].2.seq, before + 1, "no gap where the mute was");
    }

    #[test]
    fn a_stopped_camera_is_not_forwarded_until_turned_on_again() {
        let now = Instant::now();
        let mut r = Routing::default();
        r.add_peer(A);
        r.add_peer(B);
        r.add_track(A, mid("0"), Source::Mic);
        r.add_track(A, mid("1"), Source::Camera);
        negotiate(&mut r, B);
        assert_eq!(r.mids_of(A, Source::Camera), vec![mid("1")]);
        let before = fwd(&mut r, A, mid("1"), None, true, now).to[0].2.seq;
        r.set_stopped(A, Source::Camera, true);
        assert!(fwd(&mut r, A, mid("1"), None, true, now).to.is_empty());
        assert_eq!(
            fwd(&mut r, A, mid("0"), None, false, now).to.len(),
            1,
            "the mic goes on"
        );
        r.set_stopped(A, Source::Camera, false);
        let to = fwd(&mut r, A, mid("1"), None, true, now).to;
        assert_eq!(to[0].2.seq, before + 1, "no gap where the stop was");
        // Leaving forgets the stop.
        r.set_stopped(A, Source::Camera, true);
        r.remove_peer(A);
        assert!(r.stopped.is_empty());
    }

    #[test]
    fn leaving_stops_the_m_lines_in_the_next_offer() {
        let mut r = Routing::default();
        r.add_peer(A);
        r.add_peer(B);
        r.add_track(A, mid("0"), Source::Mic);
        negotiate(&mut r, B);
        r.remove_peer(A);
        assert!(r.needs_offer(B));
        let mut stopped = vec![];
        r.begin_offer(B, |_, _| unreachable!(), |m| stopped.push(m));
        assert_eq!(stopped, vec![mid("o0")]);
        r.offer_answered(B);
        assert!(r.out(B).is_empty());
    }

    #[test]
    fn a_dropped_offer_is_redone() {
        let mut r = Routing::default();
        r.add_peer(A);
        r.add_peer(B);
        r.add_track(A, mid("0"), Source::Mic);
        r.begin_offer(B, |_, _| mid("x"), |_| {});
        assert!(!r.needs_offer(B));
        r.offer_dropped(B);
        assert!(r.needs_offer(B));
    }

    #[test]
    fn simulcast_switches_layers_only_at_a_key_frame() {
        let t0 = Instant::now();
        let mut r = Routing::default();
        r.add_peer(A);
        r.add_peer(B);
        r.add_track(A, mid("1"), Source::Camera);
        negotiate(&mut r, B);
        let (h, l) = (Rid::from("h"), Rid::from("l"));
        // Both layers arrive; B wants high by default. Delta frames are held back and a
        // key frame is asked for.
        let f = fwd(&mut r, A, mid("1"), Some(l), false, t0);
        assert!(f.to.is_empty());
        assert_eq!(f.keyframe, Some(Some(l)), "only low is known yet");
        // Requests are throttled; once high shows up it is the one asked for.
        let t = t0 + KEYFRAME_THROTTLE;
        let f = fwd(&mut r, A, mid("1"), Some(h), false, t);
        assert!(f.to.is_empty());
        assert_eq!(f.keyframe, Some(Some(h)));
        let f = fwd(&mut r, A, mid("1"), Some(h), true, t);
        assert_eq!(f.to.len(), 1);
        assert!(fwd(&mut r, A, mid("1"), Some(l), true, t).to.is_empty());
        // B asks for low: keeps getting high until a low key frame arrives.
        r.set_layer(B, A, Layer::Low);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(fwd(&mut r, A, mid("1"), Some(h), false, t1).to.len(), 1);
        assert!(fwd(&mut r, A, mid("1"), Some(l), false, t1).to.is_empty());
        assert_eq!(fwd(&mut r, A, mid("1"), Some(l), true, t1).to.len(), 1);
        assert!(fwd(&mut r, A, mid("1"), Some(h), false, t1).to.is_empty());
    }

    fn packet(rid: &str, seq: u64, ts: u32, picture_id: u16) -> PacketIn {
        PacketIn {
            rid: Some(Rid::from(rid)),
            seq,
            ts,
            keyframe: false,
            picture_id: Some(picture_id),
            tl0: Some(picture_id as u8),
            short_picture_id: false,
            clock: 90_000,
        }
    }

    #[test]
    fn numbers_start_below_a_rollover_and_carry_on_across_a_layer_switch() {
        let t0 = Instant::now();
        let mut n = Renumber::default();
        // A stream already past one rollover: the subscriber still starts at count 0.
        let out = n.map(&packet("l", 70_000, 1_000, 500), t0).unwrap();
        assert_eq!(
            (out.seq, out.ts, out.picture_id),
            (70_000 - 65_536, 1_000, Some(500))
        );
        let out = n.map(&packet("l", 70_001, 4_000, 501), t0).unwrap();
        assert_eq!((out.seq, out.ts, out.picture_id), (4_465, 4_000, Some(501)));
        // A resend of an earlier packet keeps its own number and does not move the end.
        assert_eq!(
            n.map(&packet("l", 70_000, 1_000, 500), t0).unwrap().seq,
            4_464
        );
        // 100 ms later the subscriber moves to the high layer: its own numbers are far
        // away, but what goes out follows on.
        let t1 = t0 + Duration::from_millis(100);
        let out = n.map(&packet("h", 9, 777_000, 32_767), t1).unwrap();
        assert_eq!(out.seq, 4_466);
        assert_eq!(out.ts, 4_000 + 9_000);
        assert_eq!((out.picture_id, out.tl0), (Some(502), Some(502u16 as u8)));
        let out = n.map(&packet("h", 10, 780_000, 0), t1).unwrap();
        assert_eq!(
            (out.seq, out.ts, out.picture_id),
            (4_467, 16_000, Some(503))
        );
        // A late packet of the new layer from before the switch would reuse a number.
        assert_eq!(n.map(&packet("h", 8, 774_000, 32_766), t1), None);
        // Packets held back on purpose leave no gap.
        n.skip();
        let out = n.map(&packet("h", 30, 840_000, 20), t1).unwrap();
        assert_eq!((out.seq, out.picture_id), (4_468, Some(504)));
    }

    #[test]
    fn short_picture_ids_wrap_at_seven_bits_after_a_switch() {
        let t0 = Instant::now();
        let mut n = Renumber::default();
        let short = |rid: &str, seq: u64, pid: u16| PacketIn {
            short_picture_id: true,
            ..packet(rid, seq, 0, pid)
        };
        assert_eq!(
            n.map(&short("l", 1, 127), t0).unwrap().picture_id,
            Some(127)
        );
        // The next picture after 127 is 0 in 7 bits, whatever the new layer counts.
        assert_eq!(n.map(&short("h", 50, 3), t0).unwrap().picture_id, Some(0));
        assert_eq!(n.map(&short("h", 51, 4), t0).unwrap().picture_id, Some(1));
    }

    #[test]
    fn a_switch_in_the_same_instant_still_moves_time_on() {
        let t0 = Instant::now();
        let mut n = Renumber::default();
        let a = n.map(&packet("l", 1, 50, 1), t0).unwrap();
        let b = n.map(&packet("h", 1, 10, 1), t0).unwrap();
        assert_eq!(b.seq, a.seq + 1);
        assert_eq!(b.ts, a.ts + 1);
    }

    #[test]
    fn loss_steps_a_subscriber_down_a_layer_at_a_time_and_back_up_slowly() {
        let t0 = Instant::now();
        let mut r = Routing::default();
        r.add_peer(A);
        r.add_peer(B);
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        // Little loss: nothing to do; an unknown subscriber is ignored.
        assert_eq!(r.egress_loss(B, 0.01, t0), None);
        assert_eq!(r.egress_loss(C, 0.5, t0), None);
        // Heavy loss: one step at once, the next only after the gap.
        assert_eq!(r.egress_loss(B, 0.2, t0), Some(Layer::Medium));
        assert_eq!(
            r.egress_loss(B, 0.2, s(1)),
            None,
            "another m-line, same interval"
        );
        assert_eq!(r.egress_loss(B, 0.2, s(5)), Some(Layer::Low));
        assert_eq!(r.egress_loss(B, 0.4, s(10)), None, "no layer under low");
        // Clean again: up one step after the hold, measured from the last change.
        assert_eq!(r.egress_loss(B, 0.0, s(15)), None);
        // Some loss restarts the hold.
        assert_eq!(r.egress_loss(B, 0.05, s(18)), None);
        assert_eq!(r.egress_loss(B, 0.0, s(25)), None);
        assert_eq!(r.egress_loss(B, 0.0, s(33)), Some(Layer::Medium));
        assert_eq!(r.egress_loss(B, 0.0, s(48)), Some(Layer::High));
        assert!(r.caps.is_empty(), "no cap is kept at high");
    }

    #[test]
    fn a_capped_subscriber_gets_the_layer_under_its_cap() {
        let t0 = Instant::now();
        let mut r = Routing::default();
        r.add_peer(A);
        r.add_peer(B);
        r.add_track(A, mid("1"), Source::Camera);
        negotiate(&mut r, B);
        let (h, l) = (Some(Rid::from("h")), Some(Rid::from("l")));
        let t = t0 + LAYER_GRACE;
        fwd(&mut r, A, mid("1"), l, false, t0);
        assert_eq!(
            fwd(&mut r, A, mid("1"), h, true, t).to.len(),
            1,
            "B asked for high"
        );
        r.egress_loss(B, 0.3, t);
        // Capped at medium with only high and low live: low, from its next key frame.
        assert!(fwd(&mut r, A, mid("1"), l, false, t).to.is_empty());
        assert_eq!(fwd(&mut r, A, mid("1"), h, false, t).to.len(), 1);
        assert_eq!(fwd(&mut r, A, mid("1"), l, true, t).to.len(), 1);
        assert!(fwd(&mut r, A, mid("1"), h, true, t).to.is_empty());
    }

    #[test]
    fn a_vanished_layer_falls_back_to_the_live_one() {
        let live = [Rid::from("l")];
        assert_eq!(choose_rid(&live, Layer::High, false), Some(Rid::from("l")));
        let live = [Rid::from("l"), Rid::from("m"), Rid::from("h")];
        assert_eq!(
            choose_rid(&live, Layer::Medium, false),
            Some(Rid::from("m"))
        );
        let live = [Rid::from("m"), Rid::from("h")];
        assert_eq!(choose_rid(&live, Layer::Low, false), Some(Rid::from("m")));
        // While the layers are still arriving, a subscriber waits for the one it wants.
        assert_eq!(choose_rid(&live, Layer::Low, true), None);
        assert_eq!(choose_rid(&[], Layer::Low, false), None);
    }

    #[test]
    fn key_frame_requests_are_throttled() {
        let t0 = Instant::now();
        let mut r = Routing::default();
        r.add_peer(A);
        r.add_track(A, mid("1"), Source::Camera);
        assert!(r.keyframe_due(A, mid("1"), t0));
        assert!(!r.keyframe_due(A, mid("1"), t0 + Duration::from_millis(100)));
        assert!(r.keyframe_due(A, mid("1"), t0 + KEYFRAME_THROTTLE));
    }

    #[test]
    fn the_loudest_speaker_wins_after_the_hold() {
        let t0 = Instant::now();
        let mut s = Speaker::default();
        // A speaks first: becomes the speaker at once (no one was).
        assert_eq!(s.observe(A, -30, t0), Some(Some(A)));
        // B is louder for a moment: no switch before the hold.
        let mut t = t0;
        let mut switched = None;
        for i in 0..100 {
            t = t0 + Duration::from_millis(20 * i);
            let a = s.observe(A, -90, t);
            if let Some(x) = a.or(s.observe(B, -10, t)) {
                switched = Some((x, t));
                break;
            }
        }
        let (who, at) = switched.expect("B became the speaker");
        assert_eq!(who, Some(B));
        assert!(at.duration_since(t0) >= SPEAKER_HOLD);
        // Silence clears it.
        let quiet = t + SPEAKER_QUIET + Duration::from_millis(1);
        assert_eq!(s.tick(quiet), Some(None));
    }

    #[test]
    fn a_muted_participant_is_never_the_speaker() {
        let mut r = Routing::default();
        r.add_peer(A);
        r.set_muted(A, true);
        assert_eq!(r.audio_level(A, 0, Instant::now()), None);
    }
}
