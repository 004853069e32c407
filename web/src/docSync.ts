// Binds a Y.Doc and its awareness (cursors, names) to one co-edited post body
// over the app's one live socket (`LiveClient`), in the hocuspocus framing the
// server speaks on `/ws` (src/ws/PROTOCOL.md, "Co-edited post bodies"): every
// binary frame is lib0 varString(`post/{id}`) followed by one y-protocols
// message.
//
// - Opening (now if connected, and again after every `hello`: a new socket has
//   no document open): auth token (the server answers with the scope
//   `read-write` | `readonly`; the cookie decides, the token is empty), our
//   sync step 1, our awareness. The server sends its own step 1 when the
//   document opens; it is answered with step 2 (what the server lacks: edits
//   made while disconnected) once the scope says we may write.
// - Step 2 and updates from the server are applied with this provider as the
//   origin; local updates (any other origin) are sent as sync updates, merged
//   and sent at most every UPDATE_INTERVAL_MS, and our awareness at most every
//   AWARENESS_INTERVAL_MS, so a fast typist stays well under the server's
//   per-user rate (50 messages/s; a binary frame over it closes the socket with
//   4029, and the resync after the reconnect loses nothing).
// - Auth: `2 2 scope` sets `readonly` (a leader's lock or unlock sends a new
//   one); `2 1 reason` is a denial (`removed`, `deleted`, `not_found`,
//   `too_many_documents`, `unavailable`, ...): the provider stops, except for
//   `unavailable`, which is tried again a few times.
// - `8 s`: the server stored (1) or refused (0) one of our updates: `unsaved`
//   counts those not answered yet. `5 json`: `{type:'error', code, message}`; a
//   refused edit (`post_locked`, `document_too_large`, `malformed_update`)
//   means the local document now holds text the server will never have, so
//   listeners of `onRefused` start over from a fresh document.
// - `destroy()` sends what the throttle still holds, our awareness as removed
//   (null), and close (7).
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import type { LiveClient } from './live';

export const MSG_SYNC = 0;
export const MSG_AWARENESS = 1;
export const MSG_AUTH = 2;
export const MSG_QUERY_AWARENESS = 3;
export const MSG_STATELESS = 5;
export const MSG_CLOSE = 7;
export const MSG_SYNC_STATUS = 8;

const AUTH_TOKEN = 0;
const AUTH_DENIED = 1;
const AUTH_AUTHENTICATED = 2;

/** Local document updates are merged and sent at most this often. */
export const UPDATE_INTERVAL_MS = 50;
/** Our awareness (cursor moves) is sent at most this often. */
export const AWARENESS_INTERVAL_MS = 100;
/** A denial with `unavailable` is tried again after this long, at most UNAVAILABLE_RETRIES times. */
const UNAVAILABLE_RETRY_MS = 3_000;
const UNAVAILABLE_RETRIES = 5;

/** Edits the server refused: the local document diverged from the stored one. */
export const DIVERGING_ERRORS: ReadonlySet<string> = new Set(['post_locked', 'document_too_large', 'malformed_update']);

export type DocScope = 'unknown' | 'read-write' | 'readonly';

export interface DocSyncState {
  /** The live socket is up and the document was opened on it. */
  open: boolean;
  /** The server's answer to our step 1 arrived since the document was (re)opened. */
  synced: boolean;
  /** It arrived at least once: the document holds the post's text (edits made while reconnecting are kept and sent on resync). */
  loaded: boolean;
  /** What the server last said we may do (kept across reconnects until it says again). */
  scope: DocScope;
  /** Updates sent that the server has not yet said it stored. */
  unsaved: number;
  /** Why the server refused us the document (`removed`, `deleted`, `not_found`, ...); the provider stopped. */
  denied: string | null;
}

export interface DocError {
  code: string;
  message: string;
}

/** See `DocSync.writable`. */
export function isWritable(s: DocSyncState): boolean {
  return s.loaded && s.scope === 'read-write' && s.denied === null;
}

/** The document name of a post on `/ws`. */
export function postDocName(postId: number): string {
  return `post/${postId}`;
}

export class DocSync {
  readonly name: string;
  readonly doc: Y.Doc;
  readonly awareness: awarenessProtocol.Awareness;

  private readonly live: LiveClient;
  private _state: DocSyncState = { open: false, synced: false, loaded: false, scope: 'unknown', unsaved: 0, denied: null };
  /** The server answered our auth token on this connection (until then its step 1 waits). */
  private authed = false;
  private readonly listeners = new Set<(s: DocSyncState) => void>();
  private readonly errorListeners = new Set<(e: DocError) => void>();
  private readonly offs: Array<() => void> = [];
  private destroyed = false;
  /** The server's step 1, kept until the scope says whether we answer it. */
  private pendingStep1: Uint8Array | null = null;
  /** Server step 1s since the last open: a second one means the server re-attached us. */
  private step1Count = 0;
  private queued: Uint8Array[] = [];
  private updateTimer: ReturnType<typeof setTimeout> | null = null;
  private lastUpdateSent = 0;
  private awarenessDirty = false;
  private awarenessTimer: ReturnType<typeof setTimeout> | null = null;
  private lastAwarenessSent = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private retries = 0;

  /**
   * `localState`: our awareness state from the start (e.g. `{user: {name, color, colorLight}}`),
   * so the first announcement already carries it.
   */
  constructor(live: LiveClient, postId: number, { doc = new Y.Doc(), localState }: { doc?: Y.Doc; localState?: Record<string, unknown> } = {}) {
    this.live = live;
    this.name = postDocName(postId);
    this.doc = doc;
    this.awareness = new awarenessProtocol.Awareness(doc);
    if (localState) this.awareness.setLocalState(localState);
    doc.on('update', this.onDocUpdate);
    this.awareness.on('update', this.onAwarenessUpdate);
    this.offs.push(
      live.onBinary(this.onFrame),
      live.on('hello', () => this.open()),
      live.onState((s) => {
        if (s !== 'connected') this.lost();
      }),
    );
    if (live.state === 'connected') this.open();
  }

  get state(): DocSyncState {
    return this._state;
  }

  /**
   * Whether local edits may be made: the text was loaded, the server last said
   * `read-write`, and it has not denied us. A reconnect does not take this away:
   * edits made meanwhile are sent with the resync.
   */
  get writable(): boolean {
    return isWritable(this._state);
  }

  onChange(fn: (s: DocSyncState) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Errors the server sent about our messages (stateless `{type:'error'}`). */
  onError(fn: (e: DocError) => void): () => void {
    this.errorListeners.add(fn);
    return () => this.errorListeners.delete(fn);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const off of this.offs) off();
    this.doc.off('update', this.onDocUpdate);
    this.awareness.off('update', this.onAwarenessUpdate);
    // Edits still waiting for the throttle go now; then our awareness is removed
    // (null, clock + 1) and the close says we leave the document.
    this.flushUpdates();
    this.clearTimers();
    if (this._state.open && this._state.denied === null) {
      this.awareness.setLocalState(null);
      const gone = awarenessProtocol.encodeAwarenessUpdate(this.awareness, [this.doc.clientID]);
      this.send((e) => {
        encoding.writeVarUint(e, MSG_AWARENESS);
        encoding.writeVarUint8Array(e, gone);
      });
      this.send((e) => encoding.writeVarUint(e, MSG_CLOSE));
    }
    this.awareness.destroy();
    this.listeners.clear();
    this.errorListeners.clear();
  }

  // ---- state --------------------------------------------------------------

  private set(patch: Partial<DocSyncState>): void {
    const next = { ...this._state, ...patch };
    const prev = this._state;
    if ((Object.keys(next) as Array<keyof DocSyncState>).every((k) => next[k] === prev[k])) return;
    this._state = next;
    for (const fn of [...this.listeners]) fn(next);
  }

  private clearTimers(): void {
    for (const timer of [this.updateTimer, this.awarenessTimer, this.retryTimer]) if (timer !== null) clearTimeout(timer);
    this.updateTimer = this.awarenessTimer = this.retryTimer = null;
  }

  // ---- sending --------------------------------------------------------------

  /** One frame: our document's name, then what `write` writes. */
  private send(write: (e: encoding.Encoder) => void): boolean {
    const e = encoding.createEncoder();
    encoding.writeVarString(e, this.name);
    write(e);
    return this.live.sendBinary(encoding.toUint8Array(e));
  }

  private open(): void {
    if (this.destroyed || this._state.denied !== null) return;
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    this.pendingStep1 = null;
    this.step1Count = 0;
    this.queued = [];
    this.authed = false;
    this.set({ open: false, synced: false, unsaved: 0 });
    const sent = this.send((e) => {
      encoding.writeVarUint(e, MSG_AUTH);
      encoding.writeVarUint(e, AUTH_TOKEN);
      encoding.writeVarString(e, '');
    });
    if (!sent) return;
    this.send((e) => {
      encoding.writeVarUint(e, MSG_SYNC);
      syncProtocol.writeSyncStep1(e, this.doc);
    });
    this.set({ open: true });
    this.announceAgain();
  }

  /**
   * Sends our awareness after a (re)open. The server told the others we left
   * with our clock + 1, so the clock must pass that or they would ignore us.
   */
  private announceAgain(): void {
    const id = this.doc.clientID;
    const meta = this.awareness.meta.get(id);
    if (this.awareness.getLocalState() === null || !meta) return;
    this.awareness.meta.set(id, { clock: meta.clock + 2, lastUpdated: Date.now() });
    this.sendAwarenessNow();
  }

  /** The socket went away: nothing is open on the next one until `hello`. */
  private lost(): void {
    this.pendingStep1 = null;
    this.queued = [];
    this.authed = false;
    if (this.updateTimer !== null) {
      clearTimeout(this.updateTimer);
      this.updateTimer = null;
    }
    this.dropRemoteAwareness();
    this.set({ open: false, synced: false, unsaved: 0 });
  }

  private dropRemoteAwareness(): void {
    const remote = [...this.awareness.getStates().keys()].filter((id) => id !== this.doc.clientID);
    if (remote.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, remote, this);
  }

  private onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === this || !this._state.open || this._state.denied !== null) return;
    this.queued.push(update);
    this.scheduleUpdates();
  };

  private scheduleUpdates(): void {
    if (this.updateTimer !== null) return;
    const wait = this.lastUpdateSent + UPDATE_INTERVAL_MS - Date.now();
    if (wait <= 0) {
      this.flushUpdates();
      return;
    }
    this.updateTimer = setTimeout(() => {
      this.updateTimer = null;
      this.flushUpdates();
    }, wait);
  }

  private flushUpdates(): void {
    if (this.queued.length === 0 || !this._state.open) return;
    const update = this.queued.length === 1 ? this.queued[0] : Y.mergeUpdates(this.queued);
    this.queued = [];
    this.lastUpdateSent = Date.now();
    const sent = this.send((e) => {
      encoding.writeVarUint(e, MSG_SYNC);
      syncProtocol.writeUpdate(e, update);
    });
    if (sent) this.set({ unsaved: this._state.unsaved + 1 });
  }

  private onAwarenessUpdate = (
    { added, updated, removed }: { added: number[]; updated: number[]; removed: number[] },
    origin: unknown,
  ): void => {
    if (origin === this) return;
    const mine = this.doc.clientID;
    if (!added.includes(mine) && !updated.includes(mine) && !removed.includes(mine)) return;
    this.awarenessDirty = true;
    if (this.awarenessTimer !== null) return;
    const wait = this.lastAwarenessSent + AWARENESS_INTERVAL_MS - Date.now();
    if (wait <= 0) {
      this.sendAwarenessNow();
      return;
    }
    this.awarenessTimer = setTimeout(() => {
      this.awarenessTimer = null;
      if (this.awarenessDirty) this.sendAwarenessNow();
    }, wait);
  };

  private sendAwarenessNow(): void {
    this.awarenessDirty = false;
    if (!this._state.open || this._state.denied !== null) return;
    this.lastAwarenessSent = Date.now();
    const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, [this.doc.clientID]);
    this.send((e) => {
      encoding.writeVarUint(e, MSG_AWARENESS);
      encoding.writeVarUint8Array(e, update);
    });
  }

  private answerStep1(sv: Uint8Array): void {
    const sent = this.send((e) => {
      encoding.writeVarUint(e, MSG_SYNC);
      encoding.writeVarUint(e, syncProtocol.messageYjsSyncStep2);
      encoding.writeVarUint8Array(e, Y.encodeStateAsUpdate(this.doc, sv));
    });
    if (sent) this.set({ unsaved: this._state.unsaved + 1 });
  }

  // ---- receiving ------------------------------------------------------------

  private onFrame = (data: Uint8Array): void => {
    if (this.destroyed) return;
    const d = decoding.createDecoder(data);
    try {
      // Bare keepalive answers (`10`) and frames of other documents are not ours.
      if (data.length < 2 || decoding.readVarString(d) !== this.name) return;
    } catch {
      return;
    }
    try {
      this.handle(d);
    } catch (e) {
      console.error('docSync: bad frame', e);
    }
  };

  private handle(d: decoding.Decoder): void {
    switch (decoding.readVarUint(d)) {
      case MSG_SYNC: {
        const sub = decoding.readVarUint(d);
        const payload = decoding.readVarUint8Array(d);
        if (sub === syncProtocol.messageYjsSyncStep1) {
          this.step1Count += 1;
          // The server attached us again (its document restarted): it forgot our awareness.
          if (this.step1Count > 1) this.announceAgain();
          if (!this.authed) this.pendingStep1 = payload;
          else if (this._state.scope === 'read-write') this.answerStep1(payload);
          // Read-only: we have nothing the server would take.
        } else if (sub === syncProtocol.messageYjsSyncStep2) {
          Y.applyUpdate(this.doc, payload, this);
          this.set({ synced: true, loaded: true });
        } else if (sub === syncProtocol.messageYjsUpdate) {
          Y.applyUpdate(this.doc, payload, this);
        }
        return;
      }
      case MSG_AWARENESS:
        awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(d), this);
        return;
      case MSG_QUERY_AWARENESS:
        this.sendAwarenessNow();
        return;
      case MSG_AUTH: {
        const sub = decoding.readVarUint(d);
        const text = decoding.hasContent(d) ? decoding.readVarString(d) : '';
        if (sub === AUTH_AUTHENTICATED) {
          const scope: DocScope = text === 'read-write' ? 'read-write' : 'readonly';
          this.retries = 0;
          this.authed = true;
          this.set({ scope });
          const pending = this.pendingStep1;
          this.pendingStep1 = null;
          if (pending && scope === 'read-write') this.answerStep1(pending);
        } else if (sub === AUTH_DENIED || sub === 0) {
          this.denied(text || 'forbidden');
        }
        return;
      }
      case MSG_SYNC_STATUS:
        decoding.readVarUint(d);
        this.set({ unsaved: Math.max(0, this._state.unsaved - 1) });
        return;
      case MSG_STATELESS: {
        const payload = decoding.readVarString(d);
        let body: unknown;
        try {
          body = JSON.parse(payload);
        } catch {
          return;
        }
        const b = body as { type?: unknown; code?: unknown; message?: unknown };
        if (b && b.type === 'error' && typeof b.code === 'string') {
          const err = { code: b.code, message: typeof b.message === 'string' ? b.message : '' };
          for (const fn of [...this.errorListeners]) fn(err);
        }
        return;
      }
      default:
        return;
    }
  }

  private denied(reason: string): void {
    this.pendingStep1 = null;
    this.queued = [];
    this.dropRemoteAwareness();
    if (reason === 'unavailable' && this.retries < UNAVAILABLE_RETRIES) {
      // The document could not be loaded just now: the server keeps nothing open, so try again.
      this.retries += 1;
      this.authed = false;
      this.set({ open: false, synced: false, unsaved: 0 });
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (this.live.state === 'connected') this.open();
      }, UNAVAILABLE_RETRY_MS);
      return;
    }
    this.clearTimers();
    this.set({ open: false, synced: false, unsaved: 0, denied: reason });
  }
}
