// WebSocket client for the StudyOn live connection (`GET /ws`, protocol v1).
//
// - JSON text frames, each with a `type`. The first server frame is `hello`.
// - An app-level `ping` is sent every PING_INTERVAL_MS; a connection that has
//   received nothing for STALE_AFTER_MS is treated as dead and replaced.
// - Close codes: 4001 (session revoked) => stop, state `offline`, emit
//   `revoked`; 1008 (policy) => reconnect once, stop if it repeats; anything
//   else (1001 going away, 4008 too slow, 1006 abnormal, ...) => reconnect
//   with exponential backoff + jitter (500 ms doubling, capped at 10 s,
//   reset after a successful hello). After 1001/1012 (a node draining or
//   restarting closes all its sockets at once) the first retry is spread over
//   0-5 s instead, so its clients do not all reconnect in the same instant.
// - Every frame is dispatched to listeners registered for its `type`
//   (`on('notification', fn)`, `on('resync', fn)`, ...) and to `on('*', fn)`.
// - Binary frames (co-edited documents, `src/docSync.ts`) go both ways beside
//   the JSON ones: `sendBinary(bytes)` and `onBinary(fn)`. The socket starts
//   without any document open, so a document provider re-opens its document
//   after every `hello` (`on('hello', fn)`, which also marks a reconnect).

import type { User } from './api';

export type ConnState = 'connecting' | 'connected' | 'reconnecting' | 'offline';

export interface HelloFrame {
  type: 'hello';
  v: number;
  conn_id: string;
  user: User;
  heartbeat_ms: number;
}
export interface PongFrame {
  type: 'pong';
  id: string;
}
export interface ErrorFrame {
  type: 'error';
  id: string | null;
  error: string;
  message: string;
}
export interface AnyFrame {
  type: string;
  [key: string]: unknown;
}
export type ServerFrame = HelloFrame | PongFrame | ErrorFrame | AnyFrame;

export const PROTOCOL_VERSION = 1;
export const PING_INTERVAL_MS = 25_000;
export const STALE_AFTER_MS = 65_000;
export const BACKOFF_BASE_MS = 500;
export const BACKOFF_MAX_MS = 10_000;

export const CLOSE_POLICY = 1008;
export const CLOSE_REVOKED = 4001;
/** Closes a server sends every socket of a node at once: it is draining or restarting. */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_SERVICE_RESTART = 1012;
/**
 * The first reconnect after such a close waits a random 0..this long, so that a node's
 * tens of thousands of clients do not land on the remaining nodes in the same half second.
 */
export const RECONNECT_SPREAD_MS = 5_000;
export const CLOSE_TOO_SLOW = 4008;

export interface LiveOptions {
  /** WebSocket URL; defaults to `/ws` on the page's own origin. */
  url?: string;
  /**
   * Asked after a connection attempt that failed before `hello` (e.g. the
   * upgrade was refused with 401, which the browser only reports as 1006).
   * Resolve `false` when the session is definitely gone; the client then
   * stops as if it had been revoked. Resolve `true` (or reject) otherwise.
   */
  verifySession?: () => Promise<boolean>;
}

type Listener = (frame: ServerFrame) => void;
type BinaryListener = (data: Uint8Array) => void;
type StateListener = (state: ConnState) => void;
type RevokedListener = () => void;

function defaultUrl(): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws`;
}

/**
 * Delay before reconnect attempt number `attempt` (0-based) after a close with `code`:
 * spread over RECONNECT_SPREAD_MS for the first attempt after a node-wide close, else
 * the backoff.
 */
export function reconnectDelay(code: number, attempt: number, random: () => number = Math.random): number {
  if (attempt === 0 && (code === CLOSE_GOING_AWAY || code === CLOSE_SERVICE_RESTART)) {
    return Math.round(random() * RECONNECT_SPREAD_MS);
  }
  return backoffDelay(attempt, random);
}

/** Delay before reconnect attempt number `attempt` (0-based): exponential, capped, jittered. */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 20));
  // "Equal jitter": half fixed, half random, so delays still grow but spread out.
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export class LiveClient {
  private readonly url: string;
  private readonly verifySession?: () => Promise<boolean>;

  private ws: WebSocket | null = null;
  private _state: ConnState = 'offline';
  private running = false;
  private attempt = 0;
  private policyCloses = 0;
  private gotHello = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private pingSeq = 0;

  private _hello: HelloFrame | null = null;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly binaryListeners = new Set<BinaryListener>();
  private readonly stateListeners = new Set<StateListener>();
  private readonly revokedListeners = new Set<RevokedListener>();

  constructor(options: LiveOptions = {}) {
    this.url = options.url ?? defaultUrl();
    this.verifySession = options.verifySession;
  }

  get state(): ConnState {
    return this._state;
  }

  /** The latest `hello` frame of the current connection, if connected. */
  get hello(): HelloFrame | null {
    return this._hello;
  }

  // ---- events -------------------------------------------------------------

  /** Listen for frames of `type` (`'*'` for all). Returns an unsubscribe function. */
  on(type: string, fn: Listener): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Listen for binary frames (each is handed over as one `Uint8Array`). Returns an unsubscribe function. */
  onBinary(fn: BinaryListener): () => void {
    this.binaryListeners.add(fn);
    return () => this.binaryListeners.delete(fn);
  }

  onState(fn: StateListener): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** Called once the server revoked the session (close 4001) or it was found gone. */
  onRevoked(fn: RevokedListener): () => void {
    this.revokedListeners.add(fn);
    return () => this.revokedListeners.delete(fn);
  }

  private emit(frame: ServerFrame): void {
    for (const key of [frame.type, '*']) {
      const set = this.listeners.get(key);
      if (!set) continue;
      for (const fn of [...set]) {
        try {
          fn(frame);
        } catch (e) {
          console.error('live listener failed', e);
        }
      }
    }
  }

  private emitBinary(data: Uint8Array): void {
    for (const fn of [...this.binaryListeners]) {
      try {
        fn(data);
      } catch (e) {
        console.error('live binary listener failed', e);
      }
    }
  }

  private setState(state: ConnState): void {
    if (state === this._state) return;
    this._state = state;
    for (const fn of [...this.stateListeners]) fn(state);
  }

  // ---- lifecycle ----------------------------------------------------------

  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.policyCloses = 0;
    window.addEventListener('online', this.handleOnline);
    window.addEventListener('offline', this.handleOffline);
    if (navigator.onLine === false) {
      this.setState('offline');
      return;
    }
    this.setState('connecting');
    this.open();
  }

  /** Close the connection for good (e.g. on logout). */
  stop(): void {
    this.running = false;
    window.removeEventListener('online', this.handleOnline);
    window.removeEventListener('offline', this.handleOffline);
    this.clearReconnect();
    this.dropSocket(1000, 'client stop');
    this.setState('offline');
  }

  /** Send a frame; returns false when not connected. */
  send(frame: { type: string; [key: string]: unknown }): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Send a binary frame; returns false when not connected (nothing is queued:
   * a document provider resyncs after the next `hello`).
   */
  sendBinary(data: Uint8Array): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(data);
    return true;
  }

  ping(): boolean {
    this.pingSeq += 1;
    return this.send({ type: 'ping', id: `p${this.pingSeq}` });
  }

  private open(): void {
    this.clearReconnect();
    this.gotHello = false;
    this._hello = null;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      console.error('live: cannot open socket', e);
      this.scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      this.handleMessage(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPinging();
      this.handleClose(ev.code);
    };
    // An error is always followed by a close event; the close decides.
    ws.onerror = () => {};
  }

  private handleMessage(data: unknown): void {
    if (data instanceof ArrayBuffer) {
      this.emitBinary(new Uint8Array(data));
      return;
    }
    if (typeof data !== 'string') return;
    let frame: ServerFrame;
    try {
      const parsed: unknown = JSON.parse(data);
      if (!parsed || typeof parsed !== 'object' || typeof (parsed as AnyFrame).type !== 'string') return;
      frame = parsed as ServerFrame;
    } catch {
      return;
    }
    if (frame.type === 'hello') {
      this._hello = frame as HelloFrame;
      this.gotHello = true;
      this.attempt = 0;
      this.policyCloses = 0;
      this.startPinging();
      this.setState('connected');
    }
    this.emit(frame);
  }

  private handleClose(code: number): void {
    const hadHello = this.gotHello;
    this._hello = null;
    if (!this.running) return;

    if (code === CLOSE_REVOKED) {
      this.revoke();
      return;
    }
    if (code === CLOSE_POLICY) {
      this.policyCloses += 1;
      if (this.policyCloses >= 2) {
        // Rejected twice in a row by policy: trying again won't help.
        this.running = false;
        this.setState('offline');
        return;
      }
    }
    if (navigator.onLine === false) {
      this.setState('offline');
      return;
    }
    if (!hadHello && this.verifySession) {
      // The upgrade may have been refused because the session is gone.
      this.setState('reconnecting');
      const attemptAtCheck = this.attempt;
      this.verifySession().then(
        (ok) => {
          if (!this.running || this.ws || this.attempt !== attemptAtCheck) return;
          if (ok) this.scheduleReconnect();
          else this.revoke();
        },
        () => {
          if (this.running && !this.ws && this.attempt === attemptAtCheck) this.scheduleReconnect();
        },
      );
      return;
    }
    this.scheduleReconnect(code);
  }

  private revoke(): void {
    this.running = false;
    this.clearReconnect();
    this.dropSocket(1000, 'revoked');
    this.setState('offline');
    for (const fn of [...this.revokedListeners]) fn();
  }

  private scheduleReconnect(code = 0): void {
    if (!this.running) return;
    this.clearReconnect();
    this.setState('reconnecting');
    const delay = reconnectDelay(code, this.attempt);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.running && !this.ws) this.open();
    }, delay);
  }

  private clearReconnect(): void {
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
  }

  private dropSocket(code: number, reason: string): void {
    this.stopPinging();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = null;
      try {
        ws.close(code, reason);
      } catch {
        // already closed
      }
    }
  }

  private startPinging(): void {
    this.stopPinging();
    this.lastFrameAt = Date.now();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > STALE_AFTER_MS) {
        // Nothing heard (not even pongs) for too long: assume the link is dead.
        this.dropSocket(1000, 'stale');
        this.scheduleReconnect();
        return;
      }
      this.ping();
    }, PING_INTERVAL_MS);
  }

  private stopPinging(): void {
    if (this.pingTimer !== null) {
      clearInterval(this.pingTimer);
      this.pingTimer = null;
    }
  }

  private handleOnline = (): void => {
    if (!this.running || this.ws) return;
    this.attempt = 0;
    this.clearReconnect();
    this.setState('reconnecting');
    this.open();
  };

  private handleOffline = (): void => {
    if (!this.running) return;
    this.clearReconnect();
    this.dropSocket(1000, 'offline');
    this.setState('offline');
  };
}
