// Group video of one study, as seen by one tab (protocol: src/ws/PROTOCOL.md,
// "Group video"). State and WebRTC/socket plumbing; `components/VideoPanel.tsx`
// renders it.
//
// - `video.join` gives the ICE servers; then ONE RTCPeerConnection with three
//   send-only transceivers (mic, camera with simulcast rids h/m/l, screen with no
//   track yet) is offered with `video.offer`, naming each transceiver's source by
//   its mid. The client never offers again: toggles replace or disable tracks and
//   report with `video.media`.
// - The server offers whenever other participants' tracks come or go (a track comes
//   with its first frame, not with its publisher's offer); its offer
//   lists every remote track by mid (`tracks`), which is how received tracks are
//   put on participants' tiles. Every signaling step (our offer, answering the
//   server's) runs on one promise chain, so they never interleave. Our offer
//   refused with `negotiating` (the server's own offer crossed it) is rolled back,
//   the server's offer answered, and ours sent again.
// - Requests carry ids `video:<study>:<n>`; their replies and errors are matched
//   by id, every wait is bounded.
// - A socket that drops (or a new `hello`) ends the session here: the server
//   forgets a socket's media when it closes, so the panel says "disconnected".
//   When the next connection says `hello`, the tab asks who is in the call
//   (`video.status`) and joins again by itself, with the microphone and camera as
//   they were (a camera the user had turned off stays off; a screen share needs a
//   new pick, so it is not resumed). It does not join if the call's room is still
//   running but empty and changed since the tab last heard of it: the call ended
//   meanwhile, so it says so (`left`, reason `empty`) rather than start a new one.
//   A room that is not running says nothing either way (the server may have
//   restarted, and everyone is coming back): the tab joins, and if nobody else is in
//   the call for REJOIN_ALONE_MS after that, it leaves the same way.
// - When only the media path breaks (the server heard no connectivity checks for
//   15 s, or the DTLS closed, and says `video.left` with `connection_lost` while the
//   socket is up: a changed network, a NAT that forgot the mapping), the tab joins
//   again by itself with a new peer connection and the same microphone and camera (a
//   screen share needs a new pick), at most MEDIA_REJOINS times in
//   MEDIA_REJOIN_WINDOW_MS; after that it says why it left.
// - The microphone and camera can be picked from the devices the browser lists
//   (`chooseDevice`): the new track replaces the old one on the same transceiver, so
//   nothing is renegotiated. A pick is kept for later joins (preferred, not required,
//   so an unplugged device does not stop a join).
import type { AnyFrame, ConnState, LiveClient } from './live';

export type VideoSource = 'mic' | 'camera' | 'screen';
export type VideoLayer = 'high' | 'medium' | 'low';
export const VIDEO_SOURCES: readonly VideoSource[] = ['mic', 'camera', 'screen'];

/** The reactions the server takes (`video.react`), and how each is drawn. */
export type VideoReaction = 'thumbs_up' | 'clap' | 'laugh' | 'surprised' | 'heart' | 'party';
export const REACTION_EMOJI: Readonly<Record<VideoReaction, string>> = {
  thumbs_up: '👍',
  clap: '👏',
  laugh: '😂',
  surprised: '😮',
  heart: '❤️',
  party: '🎉',
};
export const VIDEO_REACTIONS = Object.keys(REACTION_EMOJI) as VideoReaction[];
/** How long a reaction stays on its tile: long enough to notice, short enough not to pile up. */
export const REACTION_SHOW_MS = 4_000;

export interface VideoParticipant {
  user_id: number;
  display_name: string;
  leader: boolean;
  mic: boolean;
  camera: boolean;
  screen: boolean;
  hand: boolean;
  /** When the hand went up (server ms), to list hands in the order raised; null while down. */
  hand_at: number | null;
  /** Muted by the leader, or held by the microphone lock. */
  muted: boolean;
  /** The camera and screen the leader's locks keep them from turning on. */
  locked: VideoSource[];
  /** Media is flowing. */
  connected: boolean;
  /** Their link to the server, as the server measures it (null until measured). */
  quality: VideoQuality | null;
}

export type VideoQuality = 'good' | 'fair' | 'poor';
const QUALITIES: readonly string[] = ['good', 'fair', 'poor'];

/** A microphone or camera the user may pick. */
export interface DeviceChoice {
  id: string;
  label: string;
}

export interface RemoteMedia {
  mic: MediaStream | null;
  camera: MediaStream | null;
  screen: MediaStream | null;
}

export type VideoPhase = 'idle' | 'joining' | 'joined' | 'left' | 'disconnected';

/** Why this tab could not use a camera or microphone (it then joins receive-only). */
export type DeviceProblem = 'denied' | 'unavailable' | 'insecure';

export interface VideoErrorInfo {
  code: string;
  message: string;
}

/** One inbound RTP stream, for tests and diagnostics (see `installTestHook`). */
export interface InboundStat {
  mid: string;
  user_id: number;
  source: VideoSource;
  kind: string;
  packetsReceived: number;
  bytesReceived: number;
  framesDecoded: number;
  totalSamplesReceived: number;
}

interface TrackInfo {
  user_id: number;
  source: VideoSource;
}

interface Transceivers {
  mic: RTCRtpTransceiver;
  camera: RTCRtpTransceiver;
  screen: RTCRtpTransceiver;
}

interface Pending {
  expect: string;
  resolve: (frame: AnyFrame) => void;
  reject: (err: VideoRequestError) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class VideoRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

/** Bound for every request's reply. */
const REQUEST_TIMEOUT_MS = 15_000;
/** How long a refused (`negotiating`) offer waits for the server's offer that crossed it. */
const CROSSED_OFFER_WAIT_MS = 5_000;
/** Attempts for one request refused with `rate_limited` / `busy`. */
const MAX_RETRIES = 3;
/** Layer preferences are recomputed at most this often (the speaker changes quickly). */
const LAYER_DEBOUNCE_MS = 400;
/**
 * After an automatic rejoin, how long to wait for someone else before leaving a call that
 * ended meanwhile: after a node-wide close everyone comes back within the 0–5 s reconnect
 * spread (RECONNECT_SPREAD_MS in live.ts) plus a join, so the first back is not alone for
 * long, while a call the leader ended stays empty.
 */
const REJOIN_ALONE_MS = 12_000;
/** How long a rejoin waits for the `video.status` reply before joining anyway. */
const STATUS_WAIT_MS = 3_000;
/**
 * Automatic joins after the media path broke, at most, per window: a network that cannot
 * carry media at all (UDP blocked, no TURN) is then said so, instead of a join loop.
 */
const MEDIA_REJOINS = 3;
const MEDIA_REJOIN_WINDOW_MS = 60_000;

const CAMERA_CONSTRAINTS: MediaTrackConstraints = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 24, max: 30 },
};

/** Simulcast: full, half and quarter resolution, named as the server expects. */
const SIMULCAST: RTCRtpEncodingParameters[] = [
  { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 400_000 },
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 120_000 },
];

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function isSource(v: unknown): v is VideoSource {
  return v === 'mic' || v === 'camera' || v === 'screen';
}

function parseParticipants(list: unknown): VideoParticipant[] {
  if (!Array.isArray(list)) return [];
  const out: VideoParticipant[] = [];
  const seen = new Set<number>();
  for (const raw of list) {
    if (!raw || typeof raw !== 'object') continue;
    const p = raw as Record<string, unknown>;
    const id = num(p.user_id);
    if (id === null || seen.has(id)) continue;
    seen.add(id);
    out.push({
      user_id: id,
      display_name: String(p.display_name ?? ''),
      leader: p.leader === true,
      mic: p.mic === true,
      camera: p.camera === true,
      screen: p.screen === true,
      hand: p.hand === true,
      hand_at: p.hand === true ? num(p.hand_at) : null,
      muted: p.muted === true,
      locked: parseSources(p.locked),
      connected: p.connected === true,
      quality: typeof p.quality === 'string' && QUALITIES.includes(p.quality) ? (p.quality as VideoQuality) : null,
    });
  }
  return out;
}

/** A list of sources from the server, unknown ones left out. */
function parseSources(list: unknown): VideoSource[] {
  if (!Array.isArray(list)) return [];
  return VIDEO_SOURCES.filter((s) => list.includes(s));
}

function parseTracks(list: unknown): Map<string, TrackInfo> {
  const out = new Map<string, TrackInfo>();
  if (!Array.isArray(list)) return out;
  for (const raw of list) {
    if (!raw || typeof raw !== 'object') continue;
    const t = raw as Record<string, unknown>;
    const uid = num(t.user_id);
    if (typeof t.mid !== 'string' || uid === null || !isSource(t.source)) continue;
    out.set(t.mid, { user_id: uid, source: t.source });
  }
  return out;
}

function parseIceServers(list: unknown): RTCIceServer[] {
  if (!Array.isArray(list)) return [];
  const out: RTCIceServer[] = [];
  for (const raw of list) {
    if (!raw || typeof raw !== 'object') continue;
    const s = raw as Record<string, unknown>;
    const urls = Array.isArray(s.urls) ? s.urls.filter((u): u is string => typeof u === 'string') : typeof s.urls === 'string' ? [s.urls] : [];
    if (urls.length === 0) continue;
    const server: RTCIceServer = { urls };
    if (typeof s.username === 'string') server.username = s.username;
    if (typeof s.credential === 'string') server.credential = s.credential;
    out.push(server);
  }
  return out;
}

function errorName(e: unknown): string {
  return e && typeof e === 'object' && 'name' in e ? String((e as { name: unknown }).name) : '';
}

function asVideoError(e: unknown): VideoErrorInfo {
  if (e instanceof VideoRequestError) return { code: e.code, message: e.message };
  const name = errorName(e);
  const message = e instanceof Error ? e.message : String(e);
  return { code: 'webrtc', message: name ? `${name}: ${message}` : message };
}

function stopTrack(track: MediaStreamTrack | null): void {
  if (track) {
    track.onended = null;
    track.stop();
  }
}

const JOIN_WITH_KEY = 'studyon.video.joinWith';

/** What the user last chose to send when joining a call (both on until they choose). */
export function loadJoinWith(): { mic: boolean; camera: boolean } {
  try {
    const raw = JSON.parse(localStorage.getItem(JOIN_WITH_KEY) ?? 'null') as unknown;
    if (raw && typeof raw === 'object') {
      const r = raw as Record<string, unknown>;
      return { mic: r.mic !== false, camera: r.camera !== false };
    }
  } catch {
    // Unavailable storage (privacy mode) or a bad value: the default.
  }
  return { mic: true, camera: true };
}

export function saveJoinWith(choice: { mic: boolean; camera: boolean }): void {
  try {
    localStorage.setItem(JOIN_WITH_KEY, JSON.stringify(choice));
  } catch {
    // Not remembered; the choice still applies to this join.
  }
}

export class VideoRoom {
  phase: VideoPhase = 'idle';
  /** `video.left`'s reason, while `phase` is `left`. */
  leftReason: string | null = null;
  lastError: VideoErrorInfo | null = null;
  deviceProblem: DeviceProblem | null = null;
  you: number | null = null;
  maxParticipants = 0;
  participants: VideoParticipant[] = [];
  speaker: number | null = null;
  /** A tile the user picked to see large (and in the high layer). */
  spotlight: number | null = null;
  mutedByLeader = false;
  /** The leader lifted a mute: say so until the microphone is used again. */
  unmuteAllowed = false;
  /** The leader stopped my camera or screen: say so until I turn one on again. */
  stoppedByLeader: 'camera' | 'screen' | null = null;
  /** The sources the leader locked for everyone but the leader. */
  locks: VideoSource[] = [];
  /** What this tab sends. */
  mic = false;
  camera = false;
  screen = false;
  hand = false;
  /** `RTCPeerConnection.connectionState` of the current session. */
  mediaState: RTCPeerConnectionState | 'none' = 'none';
  localCamera: MediaStream | null = null;
  localScreen: MediaStream | null = null;
  /** The microphones and cameras the browser lists (labels once access was granted). */
  devices: { audio: DeviceChoice[]; video: DeviceChoice[] } = { audio: [], video: [] };
  /** The device each kind was picked from (`null`: the browser's default). */
  picked: { audio: string | null; video: string | null } = { audio: null, video: null };
  /** A toggle is switching a device. */
  switching = false;
  /**
   * Who is in the study's call, seen from the study page without joining: from a
   * `video.status` reply (asked at start and after every `hello`) and `call_changed`
   * study events. `version` orders them (the server stamps both); a new connection starts
   * over, since the call may have ended with a server that went away.
   */
  call: { userIds: number[]; version: number } = { userIds: [], version: -1 };
  /** Bumped on every change; the panel re-renders on `onChange`. */
  version = 0;

  private pc: RTCPeerConnection | null = null;
  private tx: Transceivers | null = null;
  private micTrack: MediaStreamTrack | null = null;
  private cameraTrack: MediaStreamTrack | null = null;
  private screenTrack: MediaStreamTrack | null = null;
  /** Bumped when a session ends: async work of an older session stops at its next step. */
  private session = 0;
  private chain: Promise<void> = Promise.resolve();
  private serverOffer: { sdp: string; tracks: Map<string, TrackInfo> } | null = null;
  private offerWaiters: Array<() => void> = [];
  private tracks = new Map<string, TrackInfo>();
  private streams = new Map<string, { trackId: string; stream: MediaStream }>();
  private remote = new Map<number, RemoteMedia>();
  private layers = new Map<number, VideoLayer>();
  private layerTimer: ReturnType<typeof setTimeout> | null = null;
  private requests = new Map<string, Pending>();
  private seq = 0;
  private offs: Array<() => void> = [];
  private stopped = false;
  /** The call dropped with the socket: rejoin with these toggles on the next `hello`. */
  private rejoin: { mic: boolean; camera: boolean } | null = null;
  /**
   * A rejoin waiting for the `video.status` reply after `hello`, with the call's version
   * as the tab last knew it before the drop.
   */
  private pendingRejoin: { mic: boolean; camera: boolean; before: number; timer: ReturnType<typeof setTimeout> } | null = null;
  private aloneTimer: ReturnType<typeof setTimeout> | null = null;
  /** When this tab last joined again by itself after losing its media (newest last). */
  private mediaRejoins: number[] = [];
  /** Each participant's latest reaction, shown on their tile until its timer clears it. */
  private shownReactions = new Map<number, { reaction: VideoReaction; timer: ReturnType<typeof setTimeout> }>();

  constructor(
    private readonly live: LiveClient,
    readonly studyId: number,
    private readonly onChange: () => void,
  ) {}

  // ---- lifecycle ----------------------------------------------------------

  start(): void {
    const mine = (f: AnyFrame) => num(f.study_id) === this.studyId;
    this.offs = [
      this.live.on('video.joined', (f) => this.settle(f as AnyFrame)),
      this.live.on('video.answer', (f) => this.settle(f as AnyFrame)),
      this.live.on('ack', (f) => this.settle(f as AnyFrame)),
      this.live.on('error', (f) => this.settle(f as AnyFrame)),
      this.live.on('video.offer', (f) => {
        const frame = f as AnyFrame;
        if (mine(frame)) this.onServerOffer(frame);
      }),
      this.live.on('video.participants', (f) => {
        const frame = f as AnyFrame;
        if (mine(frame) && this.active()) this.setParticipants(frame.participants, frame.locks);
      }),
      this.live.on('video.speaker', (f) => {
        const frame = f as AnyFrame;
        if (!mine(frame) || !this.active()) return;
        this.speaker = num(frame.user_id);
        this.scheduleLayers();
        this.changed();
      }),
      this.live.on('video.reaction', (f) => {
        const frame = f as AnyFrame;
        const user = num(frame.user_id);
        const reaction = frame.reaction as VideoReaction;
        if (!mine(frame) || this.phase !== 'joined' || user === null || !(reaction in REACTION_EMOJI)) return;
        this.showReaction(user, reaction);
      }),
      this.live.on('video.muted', (f) => {
        const frame = f as AnyFrame;
        if (mine(frame) && this.active()) this.onMuted(frame.muted === true);
      }),
      this.live.on('video.stopped', (f) => {
        const frame = f as AnyFrame;
        if (!mine(frame) || this.phase !== 'joined') return;
        if (frame.source === 'camera' || frame.source === 'screen') void this.onStopped(frame.source);
      }),
      this.live.on('video.status', (f) => {
        const frame = f as AnyFrame;
        if (!mine(frame)) return;
        this.setCall(frame.user_ids, frame.version);
        this.settleRejoin({ userIds: Array.isArray(frame.user_ids) ? frame.user_ids : [], version: num(frame.version) ?? 0 });
      }),
      this.live.on('study.event', (f) => {
        const frame = f as AnyFrame;
        const e = frame.event as AnyFrame | undefined;
        if (mine(frame) && e?.kind === 'call_changed') this.setCall(e.user_ids, e.version);
      }),
      this.live.on('video.left', (f) => {
        const frame = f as AnyFrame;
        if (!mine(frame) || !this.active()) return;
        const reason = typeof frame.reason === 'string' ? frame.reason : 'server';
        const keep = { mic: this.mic, camera: this.camera };
        this.teardown();
        if (reason === 'connection_lost' && this.mayRejoinMedia()) {
          // The socket is up, so only the media path broke: a new peer connection (and
          // its new checks) usually gets through. Not a rejoin in the socket's sense:
          // the user was in the call a moment ago, alone or not.
          this.phase = 'idle';
          void this.join({ ...keep, resume: true });
          return;
        }
        this.phase = 'left';
        this.leftReason = reason;
        this.changed();
      }),
      // The server drops a socket's media with the socket: a new connection starts over,
      // and a call the socket took down is joined again.
      this.live.on('hello', () => {
        const before = this.call.version;
        this.call = { userIds: [], version: -1 };
        this.disconnected();
        const keep = this.rejoin;
        this.rejoin = null;
        this.cancelPendingRejoin();
        if (keep && this.phase === 'disconnected') {
          // Join once the status says whether the call is still on (bounded).
          const timer = setTimeout(() => this.settleRejoin(null), STATUS_WAIT_MS);
          this.pendingRejoin = { ...keep, before, timer };
        }
        this.askStatus();
      }),
      this.live.onState((s: ConnState) => {
        if (s !== 'connected') this.disconnected();
        else this.changed();
      }),
    ];
    // A headset plugged in or out mid-call shows up in the pickers.
    const md = typeof navigator !== 'undefined' ? navigator.mediaDevices : undefined;
    if (md && typeof md.addEventListener === 'function') {
      const onDevices = () => {
        if (this.active()) void this.refreshDevices();
      };
      md.addEventListener('devicechange', onDevices);
      this.offs.push(() => md.removeEventListener('devicechange', onDevices));
    }
    if (this.live.state === 'connected') this.askStatus();
  }

  private cancelPendingRejoin(): void {
    if (this.pendingRejoin) clearTimeout(this.pendingRejoin.timer);
    this.pendingRejoin = null;
  }

  /**
   * Decides a rejoin waiting after `hello` from the call's status (`null`: no reply in
   * time): a running room that is empty and changed since the tab last knew it means
   * the call ended while the tab was away.
   */
  private settleRejoin(status: { userIds: unknown[]; version: number } | null): void {
    const p = this.pendingRejoin;
    if (!p) return;
    this.cancelPendingRejoin();
    if (this.phase !== 'disconnected' || this.stopped) return;
    if (status && status.userIds.length === 0 && status.version > 0 && status.version > p.before) {
      this.phase = 'left';
      this.leftReason = 'empty';
      this.changed();
      return;
    }
    void this.join({ mic: p.mic, camera: p.camera, rejoin: true });
  }

  /** Asks who is in the call; the reply is handled by the `video.status` listener. */
  private askStatus(): void {
    this.live.send({ type: 'video.status', id: this.nextId(), study_id: this.studyId });
  }

  private setCall(userIds: unknown, version: unknown): void {
    const v = num(version);
    if (v === null || v <= this.call.version || !Array.isArray(userIds)) return;
    this.call = { userIds: userIds.map(num).filter((u): u is number => u !== null), version: v };
    this.changed();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.cancelPendingRejoin();
    for (const off of this.offs) off();
    this.offs = [];
    if (this.active()) this.live.send({ type: 'video.leave', id: this.nextId(), study_id: this.studyId });
    this.teardown();
  }

  private active(): boolean {
    return this.phase === 'joining' || this.phase === 'joined';
  }

  private changed(): void {
    if (this.stopped) return;
    this.version += 1;
    this.onChange();
  }

  /** Whether another automatic join after a media loss is allowed now (and counts it). */
  private mayRejoinMedia(): boolean {
    const now = Date.now();
    this.mediaRejoins = this.mediaRejoins.filter((t) => now - t < MEDIA_REJOIN_WINDOW_MS);
    if (this.mediaRejoins.length >= MEDIA_REJOINS) return false;
    this.mediaRejoins.push(now);
    return true;
  }

  private disconnected(): void {
    if (!this.active()) return;
    this.rejoin = { mic: this.mic, camera: this.camera };
    this.teardown();
    this.phase = 'disconnected';
    this.changed();
  }

  /** Ends the current session's media and signaling (not the socket). */
  private teardown(): void {
    this.session += 1;
    this.chain = Promise.resolve();
    for (const [id, p] of this.requests) {
      clearTimeout(p.timer);
      p.reject(new VideoRequestError('aborted', 'the video session ended'));
      this.requests.delete(id);
    }
    this.offerWaiters = [];
    this.serverOffer = null;
    if (this.layerTimer !== null) clearTimeout(this.layerTimer);
    this.layerTimer = null;
    if (this.aloneTimer !== null) clearTimeout(this.aloneTimer);
    this.aloneTimer = null;
    const pc = this.pc;
    this.pc = null;
    this.tx = null;
    if (pc) {
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.close();
    }
    stopTrack(this.micTrack);
    stopTrack(this.cameraTrack);
    stopTrack(this.screenTrack);
    this.micTrack = this.cameraTrack = this.screenTrack = null;
    this.localCamera = this.localScreen = null;
    this.mic = this.camera = this.screen = this.hand = false;
    this.mutedByLeader = false;
    this.stoppedByLeader = null;
    this.locks = [];
    for (const { timer } of this.shownReactions.values()) clearTimeout(timer);
    this.shownReactions.clear();
    this.unmuteAllowed = false;
    this.switching = false;
    this.tracks = new Map();
    this.streams = new Map();
    this.remote = new Map();
    this.layers = new Map();
    this.participants = [];
    this.speaker = null;
    this.spotlight = null;
    this.mediaState = 'none';
  }

  // ---- requests -----------------------------------------------------------

  private nextId(): string {
    this.seq += 1;
    return `video:${this.studyId}:${this.seq}`;
  }

  /** Matches a reply or error to its request by id. */
  private settle(f: AnyFrame): void {
    const id = typeof f.id === 'string' ? f.id : null;
    if (!id) return;
    const p = this.requests.get(id);
    if (!p) return;
    if (f.type === 'error') {
      this.requests.delete(id);
      clearTimeout(p.timer);
      p.reject(
        new VideoRequestError(
          typeof f.error === 'string' ? f.error : 'unknown',
          typeof f.message === 'string' ? f.message : '',
          num(f.retry_after_ms),
        ),
      );
      return;
    }
    if (f.type !== p.expect) return;
    this.requests.delete(id);
    clearTimeout(p.timer);
    p.resolve(f);
  }

  private requestOnce(type: string, fields: Record<string, unknown>, expect: string): Promise<AnyFrame> {
    return new Promise((resolve, reject) => {
      const id = this.nextId();
      if (!this.live.send({ type, id, study_id: this.studyId, ...fields })) {
        reject(new VideoRequestError('not_connected', 'not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.requests.delete(id);
        reject(new VideoRequestError('timeout', `no reply to ${type}`));
      }, REQUEST_TIMEOUT_MS);
      this.requests.set(id, { expect, resolve, reject, timer });
    });
  }

  /** A request and its reply of type `expect`; `rate_limited` / `busy` are retried after the wait asked for. */
  private async request(type: string, fields: Record<string, unknown>, expect = 'ack'): Promise<AnyFrame> {
    const session = this.session;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.requestOnce(type, fields, expect);
      } catch (e) {
        const retry = e instanceof VideoRequestError && (e.code === 'rate_limited' || e.code === 'busy') && attempt < MAX_RETRIES;
        if (!retry || session !== this.session) throw e;
        const wait = Math.min(5_000, Math.max(200, e.retryAfterMs ?? 1_000));
        await new Promise((r) => setTimeout(r, wait));
        if (session !== this.session) throw e;
      }
    }
  }

  private showError(e: unknown): void {
    const err = asVideoError(e);
    if (err.code === 'aborted') return;
    this.lastError = err;
    this.changed();
  }

  clearError(): void {
    if (!this.lastError) return;
    this.lastError = null;
    this.changed();
  }

  /** Runs `op` after every signaling step queued before it; a failure does not stop the chain. */
  private enqueue(op: () => Promise<void>): Promise<void> {
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => {});
    return next;
  }

  // ---- join / leave ---------------------------------------------------------

  /**
   * Joins the call sending what `keep` says (by default both): the user's choice before
   * joining, or what was on when the connection dropped (`rejoin`: the socket dropped;
   * `resume`: only the media did, see `video.left`).
   */
  async join(keep?: { mic: boolean; camera: boolean; rejoin?: boolean; resume?: boolean }): Promise<void> {
    if (this.active() || this.stopped) return;
    if (!keep?.rejoin) {
      this.rejoin = null;
      this.cancelPendingRejoin();
    }
    this.teardown();
    const session = this.session;
    this.phase = 'joining';
    this.leftReason = null;
    this.lastError = null;
    this.deviceProblem = null;
    this.changed();
    let inRoom = false;
    try {
      // Either way back, an empty call is not news to the study (no `call_started`).
      const back = keep?.rejoin || keep?.resume;
      const joined = await this.request('video.join', back ? { rejoin: true } : {}, 'video.joined');
      if (session !== this.session) return;
      inRoom = true;
      this.you = num(joined.you);
      this.maxParticipants = num(joined.max_participants) ?? 0;
      this.setParticipants(joined.participants, joined.locks);
      if (keep?.rejoin) {
        // The call may have ended while we were away (the join started a new one), or
        // everyone was dropped together and is coming back: leave only if still alone.
        const timer = setTimeout(() => {
          if (session !== this.session || !this.active()) return;
          if (!this.participants.every((p) => p.user_id === this.you)) return;
          this.live.send({ type: 'video.leave', id: this.nextId(), study_id: this.studyId });
          this.teardown();
          this.phase = 'left';
          this.leftReason = 'empty';
          this.changed();
        }, REJOIN_ALONE_MS);
        this.aloneTimer = timer;
      }
      const iceServers = parseIceServers(joined.ice_servers);

      // A camera the user does not want is not even opened (its light stays off).
      const media = await this.localMedia(keep?.camera !== false);
      if (session !== this.session) {
        stopTrack(media.audio);
        stopTrack(media.video);
        return;
      }
      let { audio, video } = media;
      // A camera turned off (before the drop, or before joining) is not turned on behind
      // the user's back.
      if (keep && !keep.camera) {
        stopTrack(video);
        video = null;
      }
      if (keep && !keep.mic && audio) audio.enabled = false;
      this.micTrack = audio;
      this.cameraTrack = video;
      void this.refreshDevices();
      // Joining again while the leader's mute holds: the microphone starts off.
      if (audio && this.mutedByLeader) audio.enabled = false;
      this.mic = !!audio && !this.mutedByLeader && keep?.mic !== false;
      this.camera = !!video;
      this.localCamera = video ? new MediaStream([video]) : null;

      const pc = new RTCPeerConnection({ iceServers });
      this.pc = pc;
      pc.ontrack = () => this.refreshRemote();
      pc.onconnectionstatechange = () => {
        if (this.pc !== pc) return;
        this.mediaState = pc.connectionState;
        this.changed();
      };
      this.mediaState = pc.connectionState;
      const mic = pc.addTransceiver(audio ?? 'audio', { direction: 'sendonly' });
      let camera: RTCRtpTransceiver;
      try {
        camera = pc.addTransceiver(video ?? 'video', { direction: 'sendonly', sendEncodings: SIMULCAST.map((e) => ({ ...e })) });
      } catch {
        // No simulcast here: one encoding.
        camera = pc.addTransceiver(video ?? 'video', { direction: 'sendonly' });
      }
      const screen = pc.addTransceiver('video', { direction: 'sendonly' });
      this.tx = { mic, camera, screen };
      this.changed();
      await this.enqueue(() => this.offer(session, pc));
    } catch (e) {
      if (session !== this.session) return;
      this.fail(e, inRoom);
    }
  }

  /** The session cannot go on: leave (nothing half-joined stays behind) and say why. */
  private fail(e: unknown, inRoom = true): void {
    if (inRoom) this.live.send({ type: 'video.leave', id: this.nextId(), study_id: this.studyId });
    this.teardown();
    this.phase = 'idle';
    this.showError(e);
    this.changed();
  }

  leave(): void {
    if (!this.active()) return;
    this.live.send({ type: 'video.leave', id: this.nextId(), study_id: this.studyId });
    this.teardown();
    this.phase = 'idle';
    this.changed();
  }

  /** Camera and microphone; whatever cannot be had is left out (a receive-only join). */
  private async localMedia(wantVideo = true): Promise<{ audio: MediaStreamTrack | null; video: MediaStreamTrack | null }> {
    const md = typeof navigator !== 'undefined' ? navigator.mediaDevices : undefined;
    if (!md || typeof md.getUserMedia !== 'function') {
      this.deviceProblem = 'insecure';
      return { audio: null, video: null };
    }
    try {
      const s = await md.getUserMedia({ ...this.constraints('audio', false), ...(wantVideo ? this.constraints('video', false) : {}) });
      return { audio: s.getAudioTracks()[0] ?? null, video: s.getVideoTracks()[0] ?? null };
    } catch (e) {
      if (errorName(e) === 'NotAllowedError' || errorName(e) === 'SecurityError') {
        this.deviceProblem = 'denied';
        return { audio: null, video: null };
      }
    }
    // One of the two may be missing: take each on its own.
    const one = async (c: MediaStreamConstraints) => {
      try {
        const s = await md.getUserMedia(c);
        return (c.audio ? s.getAudioTracks() : s.getVideoTracks())[0] ?? null;
      } catch {
        return null;
      }
    };
    const audio = await one(this.constraints('audio', false));
    const video = wantVideo ? await one(this.constraints('video', false)) : null;
    if (!audio && !video) this.deviceProblem = 'unavailable';
    return { audio, video };
  }

  // ---- negotiation ------------------------------------------------------------

  /** Our one offer. A `negotiating` refusal: answer the server's crossing offer, then offer again. */
  private async offer(session: number, pc: RTCPeerConnection): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      // The server may offer first (the tracks already in the room): answer that before
      // offering, rather than have ours refused with `negotiating`.
      if (this.serverOffer) await this.answerServerOffer(session, pc);
      if (session !== this.session) return;
      const offer = await pc.createOffer();
      if (session !== this.session) return;
      await pc.setLocalDescription(offer);
      if (session !== this.session || !this.tx) return;
      const sources: Record<string, VideoSource> = {};
      for (const source of VIDEO_SOURCES) {
        const mid = this.tx[source].mid;
        if (mid !== null) sources[mid] = source;
      }
      let answer: AnyFrame;
      try {
        answer = await this.request('video.offer', { sdp: pc.localDescription?.sdp ?? offer.sdp, sources }, 'video.answer');
      } catch (e) {
        if (!(e instanceof VideoRequestError) || e.code !== 'negotiating' || attempt >= 3 || session !== this.session) throw e;
        await pc.setLocalDescription({ type: 'rollback' });
        await this.waitForServerOffer(session);
        await this.answerServerOffer(session, pc);
        continue;
      }
      if (session !== this.session) return;
      if (typeof answer.sdp !== 'string') throw new VideoRequestError('bad_sdp', 'the answer has no sdp');
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      if (session !== this.session) return;
      break;
    }
    this.phase = 'joined';
    this.refreshRemote();
    this.changed();
    this.sendMedia();
    this.scheduleLayers(0);
    // A server offer that came while ours was on its way.
    if (this.serverOffer) await this.answerServerOffer(session, pc);
  }

  private waitForServerOffer(session: number): Promise<void> {
    if (this.serverOffer) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, CROSSED_OFFER_WAIT_MS);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      if (session === this.session) this.offerWaiters.push(done);
      else done();
    });
  }

  private onServerOffer(f: AnyFrame): void {
    if (!this.active() || typeof f.sdp !== 'string') return;
    // The server has one offer outstanding at a time: a newer one replaces it.
    this.serverOffer = { sdp: f.sdp, tracks: parseTracks(f.tracks) };
    const waiters = this.offerWaiters;
    this.offerWaiters = [];
    for (const w of waiters) w();
    const session = this.session;
    void this.enqueue(async () => {
      const pc = this.pc;
      if (!pc || session !== this.session) return;
      try {
        await this.answerServerOffer(session, pc);
      } catch (e) {
        if (session !== this.session) return;
        // An offer this browser cannot apply, or an answer the server refused, leaves the
        // connection out of step with the room for good: start over. A late or refused
        // ack for an answer that was applied is only shown.
        const fatal = !(e instanceof VideoRequestError) || e.code === 'bad_sdp';
        if (fatal) this.fail(e);
        else this.showError(e);
      }
    });
  }

  /** Answers the server's outstanding offer, if there is one and we are not mid-offer ourselves. */
  private async answerServerOffer(session: number, pc: RTCPeerConnection): Promise<void> {
    const offer = this.serverOffer;
    if (!offer || session !== this.session || pc.signalingState !== 'stable') return;
    this.serverOffer = null;
    this.tracks = offer.tracks;
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    if (session !== this.session) return;
    const answer = await pc.createAnswer();
    if (session !== this.session) return;
    await pc.setLocalDescription(answer);
    if (session !== this.session) return;
    this.refreshRemote();
    await this.request('video.answer', { sdp: pc.localDescription?.sdp ?? answer.sdp });
  }

  /** Puts every received track on its participant, by the mids of the server's last offer. */
  private refreshRemote(): void {
    const pc = this.pc;
    if (!pc) return;
    const remote = new Map<number, RemoteMedia>();
    const streams = new Map<string, { trackId: string; stream: MediaStream }>();
    for (const t of pc.getTransceivers()) {
      const mid = t.mid;
      if (mid === null) continue;
      const info = this.tracks.get(mid);
      if (!info || info.user_id === this.you) continue;
      const dir = t.currentDirection;
      if (dir === 'inactive' || dir === 'sendonly' || dir === 'stopped') continue;
      const track = t.receiver.track;
      let cached = this.streams.get(mid);
      if (!cached || cached.trackId !== track.id) cached = { trackId: track.id, stream: new MediaStream([track]) };
      streams.set(mid, cached);
      const media = remote.get(info.user_id) ?? { mic: null, camera: null, screen: null };
      media[info.source] = cached.stream;
      remote.set(info.user_id, media);
    }
    this.streams = streams;
    this.remote = remote;
    this.changed();
  }

  remoteMedia(userId: number): RemoteMedia {
    return this.remote.get(userId) ?? { mic: null, camera: null, screen: null };
  }

  // ---- participants, speaker, layers ------------------------------------------

  private setParticipants(list: unknown, locks: unknown): void {
    this.participants = parseParticipants(list);
    this.locks = parseSources(locks);
    const present = new Set(this.participants.map((p) => p.user_id));
    for (const p of this.participants) {
      if (!p.camera) this.layers.delete(p.user_id);
    }
    for (const uid of [...this.layers.keys()]) if (!present.has(uid)) this.layers.delete(uid);
    if (this.spotlight !== null && !present.has(this.spotlight)) this.spotlight = null;
    const me = this.participants.find((p) => p.user_id === this.you);
    if (me) {
      this.hand = me.hand;
      if (me.muted && !this.mutedByLeader) this.onMuted(true);
    }
    this.scheduleLayers();
    this.changed();
  }

  setSpotlight(userId: number | null): void {
    this.spotlight = this.spotlight === userId ? null : userId;
    this.scheduleLayers(0);
    this.changed();
  }

  /** The tile shown large: the spotlighted one, else the active speaker (not me). */
  focus(): number | null {
    if (this.spotlight !== null) return this.spotlight;
    return this.speaker !== null && this.speaker !== this.you ? this.speaker : null;
  }

  private scheduleLayers(delay = LAYER_DEBOUNCE_MS): void {
    if (this.layerTimer !== null) {
      if (delay > 0) return;
      clearTimeout(this.layerTimer);
    }
    this.layerTimer = setTimeout(() => {
      this.layerTimer = null;
      this.sendLayers();
    }, delay);
  }

  /** `high` for the focused tile, `low` for the small ones; sent only when it changes. */
  private sendLayers(): void {
    if (this.phase !== 'joined') return;
    const focus = this.focus();
    for (const p of this.participants) {
      if (p.user_id === this.you || !p.camera) continue;
      const want: VideoLayer = p.user_id === focus ? 'high' : 'low';
      if (this.layers.get(p.user_id) === want) continue;
      this.layers.set(p.user_id, want);
      this.request('video.layer', { user_id: p.user_id, layer: want }).catch((e) => {
        this.layers.delete(p.user_id);
        this.showError(e);
      });
    }
  }

  // ---- my media -----------------------------------------------------------------

  private sendMedia(): void {
    if (this.phase !== 'joined') return;
    const session = this.session;
    this.request('video.media', { mic: this.mic, camera: this.camera, screen: this.screen }).catch((e) => {
      if (session !== this.session) return;
      if (e instanceof VideoRequestError && e.code === 'muted_by_leader') this.onMuted(true);
      this.showError(e);
    });
  }

  /** The leader stopped my camera or screen: stop sending it, as if I had turned it off. */
  private async onStopped(source: 'camera' | 'screen'): Promise<void> {
    this.stoppedByLeader = source;
    if (source === 'camera' && this.camera) await this.toggleCamera();
    else if (source === 'screen' && this.screen) await this.switchDevice(async (_s, tx) => this.stopScreen(tx));
    this.changed();
  }

  private onMuted(muted: boolean): void {
    const was = this.mutedByLeader;
    this.mutedByLeader = muted;
    this.unmuteAllowed = !muted && was;
    if (muted) {
      if (this.micTrack) this.micTrack.enabled = false;
      if (this.mic) {
        this.mic = false;
        this.sendMedia();
      }
    }
    this.changed();
  }

  private async getTrack(kind: 'audio' | 'video'): Promise<MediaStreamTrack | null> {
    const md = navigator.mediaDevices;
    if (!md || typeof md.getUserMedia !== 'function') {
      this.deviceProblem = 'insecure';
      return null;
    }
    try {
      const s = await md.getUserMedia(this.constraints(kind));
      this.deviceProblem = null;
      return (kind === 'audio' ? s.getAudioTracks() : s.getVideoTracks())[0] ?? null;
    } catch (e) {
      this.deviceProblem = errorName(e) === 'NotAllowedError' ? 'denied' : 'unavailable';
      return null;
    }
  }

  /**
   * What to ask `getUserMedia` for: the picked device (`exact`: that one or nothing; else
   * preferred, so a device unplugged since does not stop a join), else any.
   */
  private constraints(kind: 'audio' | 'video', exact = true): MediaStreamConstraints {
    const id = this.picked[kind];
    const deviceId = exact ? { exact: id ?? '' } : { ideal: id ?? '' };
    if (kind === 'audio') return { audio: id ? { deviceId } : true };
    return { video: id ? { ...CAMERA_CONSTRAINTS, deviceId } : CAMERA_CONSTRAINTS };
  }

  /** Lists the microphones and cameras (after a device was granted, with their names). */
  async refreshDevices(): Promise<void> {
    const md = typeof navigator !== 'undefined' ? navigator.mediaDevices : undefined;
    if (!md || typeof md.enumerateDevices !== 'function') return;
    try {
      const all = await md.enumerateDevices();
      const of = (kind: MediaDeviceKind) =>
        all.filter((d) => d.kind === kind && d.deviceId !== '').map((d, i) => ({ id: d.deviceId, label: d.label || `${kind} ${i + 1}` }));
      this.devices = { audio: of('audioinput'), video: of('videoinput') };
      // What the live tracks came from, so the picker shows it.
      const from = (t: MediaStreamTrack | null) => t?.getSettings().deviceId ?? null;
      this.picked = { audio: from(this.micTrack) ?? this.picked.audio, video: from(this.cameraTrack) ?? this.picked.video };
      this.changed();
    } catch {
      // No list: the pickers stay hidden.
    }
  }

  /**
   * Sends from another microphone or camera. A camera that is off only remembers the
   * choice; a microphone keeps its on/off state.
   */
  chooseDevice(kind: 'audio' | 'video', deviceId: string): Promise<void> {
    return this.switchDevice(async (session, tx) => {
      const before = this.picked[kind];
      this.picked[kind] = deviceId;
      const current = kind === 'audio' ? this.micTrack : this.cameraTrack;
      if (!current) return;
      const track = await this.getTrack(kind);
      if (session !== this.session) return stopTrack(track);
      if (!track) {
        this.picked[kind] = before;
        return;
      }
      await (kind === 'audio' ? tx.mic : tx.camera).sender.replaceTrack(track);
      if (session !== this.session) return stopTrack(track);
      stopTrack(current);
      if (kind === 'audio') {
        track.enabled = this.mic;
        this.micTrack = track;
      } else {
        this.cameraTrack = track;
        this.localCamera = new MediaStream([track]);
      }
    });
  }

  /** Runs one device switch at a time. */
  private async switchDevice(fn: (session: number, tx: Transceivers) => Promise<void>): Promise<void> {
    const tx = this.tx;
    if (this.phase !== 'joined' || !tx || this.switching) return;
    const session = this.session;
    this.switching = true;
    this.changed();
    try {
      await fn(session, tx);
    } catch (e) {
      if (session === this.session) this.showError(e);
    } finally {
      if (session === this.session) {
        this.switching = false;
        this.changed();
      }
    }
  }

  toggleMic(): Promise<void> {
    return this.switchDevice(async (session, tx) => {
      if (this.mutedByLeader) return;
      const on = !this.mic;
      if (on && !this.micTrack) {
        const track = await this.getTrack('audio');
        if (session !== this.session) return stopTrack(track);
        if (!track) return this.changed();
        await tx.mic.sender.replaceTrack(track);
        if (session !== this.session) return stopTrack(track);
        this.micTrack = track;
      }
      if (this.micTrack) this.micTrack.enabled = on;
      this.mic = on;
      this.unmuteAllowed = false;
      this.sendMedia();
    });
  }

  /** The leader's lock keeps me from turning `source` on (the microphone's shows as muted). */
  heldBack(source: 'camera' | 'screen'): boolean {
    const me = this.participants.find((p) => p.user_id === this.you);
    return me?.locked.includes(source) ?? false;
  }

  toggleCamera(): Promise<void> {
    if (!this.camera && this.heldBack('camera')) return Promise.resolve();
    if (!this.camera && this.stoppedByLeader === 'camera') this.stoppedByLeader = null;
    return this.switchDevice(async (session, tx) => {
      if (this.camera) {
        // Off: nothing is sent and the device is released.
        await tx.camera.sender.replaceTrack(null);
        stopTrack(this.cameraTrack);
        this.cameraTrack = null;
        this.localCamera = null;
        this.camera = false;
      } else {
        const track = await this.getTrack('video');
        if (session !== this.session) return stopTrack(track);
        if (!track) return this.changed();
        await tx.camera.sender.replaceTrack(track);
        if (session !== this.session) return stopTrack(track);
        this.cameraTrack = track;
        this.localCamera = new MediaStream([track]);
        this.camera = true;
      }
      this.sendMedia();
    });
  }

  /** The device the live microphone track comes from (tests). */
  micDeviceId(): string | null {
    return this.micTrack?.getSettings().deviceId ?? null;
  }

  static canShareScreen(): boolean {
    return typeof navigator !== 'undefined' && !!navigator.mediaDevices && typeof navigator.mediaDevices.getDisplayMedia === 'function';
  }

  toggleScreen(): Promise<void> {
    if (!this.screen && this.heldBack('screen')) return Promise.resolve();
    if (!this.screen && this.stoppedByLeader === 'screen') this.stoppedByLeader = null;
    return this.switchDevice(async (session, tx) => {
      if (this.screen) {
        await this.stopScreen(tx);
        return;
      }
      let track: MediaStreamTrack | null = null;
      try {
        const s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
        track = s.getVideoTracks()[0] ?? null;
      } catch (e) {
        // Cancelled in the picker: nothing to say.
        if (errorName(e) === 'NotAllowedError' || errorName(e) === 'AbortError') return;
        throw e;
      }
      if (!track) return;
      if (session !== this.session) return stopTrack(track);
      if ('contentHint' in track) track.contentHint = 'detail';
      await tx.screen.sender.replaceTrack(track);
      if (session !== this.session) return stopTrack(track);
      this.screenTrack = track;
      this.localScreen = new MediaStream([track]);
      this.screen = true;
      // Stopped from the browser's own "Stop sharing" bar.
      track.onended = () => {
        if (session !== this.session || this.screenTrack !== track) return;
        void this.switchDevice(async (_s, t) => this.stopScreen(t));
      };
      this.sendMedia();
    });
  }

  private async stopScreen(tx: Transceivers): Promise<void> {
    await tx.screen.sender.replaceTrack(null);
    stopTrack(this.screenTrack);
    this.screenTrack = null;
    this.localScreen = null;
    this.screen = false;
    this.sendMedia();
  }

  /** Shows the room a reaction (mine comes back like everyone's). */
  react(reaction: VideoReaction): void {
    this.inRoom('video.react', { reaction });
  }

  /** A participant's reaction on show, if any. */
  reactionOf(userId: number): VideoReaction | null {
    return this.shownReactions.get(userId)?.reaction ?? null;
  }

  private showReaction(userId: number, reaction: VideoReaction): void {
    const before = this.shownReactions.get(userId);
    if (before) clearTimeout(before.timer);
    const timer = setTimeout(() => {
      if (this.shownReactions.get(userId)?.timer !== timer) return;
      this.shownReactions.delete(userId);
      this.changed();
    }, REACTION_SHOW_MS);
    this.shownReactions.set(userId, { reaction, timer });
    this.changed();
  }

  toggleHand(): void {
    if (this.phase !== 'joined') return;
    const raised = !this.hand;
    this.hand = raised;
    this.changed();
    const session = this.session;
    this.request('video.hand', { raised }).catch((e) => {
      if (session !== this.session) return;
      this.hand = !raised;
      this.showError(e);
    });
  }

  // ---- leader ---------------------------------------------------------------------

  /** A request in the room whose reply is an `ack`; a refusal shows as an error. */
  private inRoom(type: string, fields: Record<string, unknown> = {}): void {
    if (this.phase !== 'joined') return;
    const session = this.session;
    this.request(type, fields).catch((e) => {
      if (session === this.session) this.showError(e);
    });
  }

  mute(userId: number): void {
    this.inRoom('video.mute', { user_id: userId });
  }

  allowUnmute(userId: number): void {
    this.inRoom('video.allow_unmute', { user_id: userId });
  }

  remove(userId: number): void {
    this.inRoom('video.remove', { user_id: userId });
  }

  /** Stops a participant's camera or screen share (they may turn it on again). */
  stopSource(userId: number, source: 'camera' | 'screen'): void {
    this.inRoom('video.stop', { user_id: userId, source });
  }

  muteAll(): void {
    this.inRoom('video.mute_all');
  }

  /** Locks a source for everyone but the leader, or lifts the lock. */
  setLock(source: VideoSource, locked: boolean): void {
    this.inRoom('video.lock', { source, locked });
  }

  /** Lets one participant turn a locked source on. */
  allow(userId: number, source: VideoSource): void {
    this.inRoom('video.allow', { user_id: userId, source });
  }

  lowerHand(userId: number): void {
    this.inRoom('video.lower_hand', { user_id: userId });
  }

  lowerHands(): void {
    this.inRoom('video.lower_hands');
  }

  /** Raised hands, first raised first (everyone sees the same order: the server's clock). */
  raisedHands(): VideoParticipant[] {
    return this.participants
      .filter((p) => p.hand)
      .sort((a, b) => (a.hand_at ?? Number.MAX_SAFE_INTEGER) - (b.hand_at ?? Number.MAX_SAFE_INTEGER) || a.user_id - b.user_id);
  }

  end(): void {
    this.inRoom('video.end');
  }

  // ---- diagnostics ------------------------------------------------------------------

  /** The connection of the current session (tests read its stats). */
  peerConnection(): RTCPeerConnection | null {
    return this.pc;
  }

  /** Inbound RTP per received track, tagged with its publisher and source. */
  async inboundStats(): Promise<InboundStat[]> {
    const pc = this.pc;
    if (!pc) return [];
    const out: InboundStat[] = [];
    for (const t of pc.getTransceivers()) {
      const mid = t.mid;
      const info = mid === null ? undefined : this.tracks.get(mid);
      if (mid === null || !info) continue;
      let report: RTCStatsReport;
      try {
        report = await t.receiver.getStats();
      } catch {
        continue; // closed meanwhile
      }
      report.forEach((s: Record<string, unknown>) => {
        if (s.type !== 'inbound-rtp') return;
        out.push({
          mid,
          user_id: info.user_id,
          source: info.source,
          kind: String(s.kind ?? t.receiver.track.kind),
          packetsReceived: num(s.packetsReceived) ?? 0,
          bytesReceived: num(s.bytesReceived) ?? 0,
          framesDecoded: num(s.framesDecoded) ?? 0,
          totalSamplesReceived: num(s.totalSamplesReceived) ?? 0,
        });
      });
    }
    return out;
  }
}

/**
 * For the browser tests only: when the page opted in (`window.__studyonTestHooks = true`,
 * set by the test before the app loads), `window.__studyonVideo` reads the current
 * session's peer connection and inbound stats. Nothing is exposed otherwise.
 */
export function installTestHook(room: VideoRoom): () => void {
  const w = window as unknown as { __studyonTestHooks?: boolean; __studyonVideo?: unknown };
  if (w.__studyonTestHooks !== true) return () => {};
  const hook = {
    get pc() {
      return room.peerConnection();
    },
    /** The device the microphone sends from. */
    micDevice: () => room.micDeviceId(),
    inbound: () => room.inboundStats(),
  };
  w.__studyonVideo = hook;
  return () => {
    if (w.__studyonVideo === hook) delete w.__studyonVideo;
  };
}
