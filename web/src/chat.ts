// The chat rooms of one study, as seen by one tab (protocol: src/ws/PROTOCOL.md,
// "Chat rooms"). Pure state + socket/HTTP plumbing; `components/ChatPanel.tsx`
// renders it.
//
// - Every open (not closed) room of the study is joined, so unread badges move
//   live; a closed room is joined only while it is the one shown.
// - The first join of a room carries no `last_seq`; the server answers with the
//   room's newest seq, which becomes this tab's baseline (`lastSeen`). History up
//   to it is paged over HTTP (newest page when the room is shown, older pages on
//   scroll-back). Every later join (after a reconnect / `resync`) sends
//   `last_seq: lastSeen` and the server replays what was missed.
// - Messages are kept by seq, so replays, history pages and live frames never
//   show twice. A jump in live seqs (should not happen) is filled over HTTP.
// - `chat.send` carries a fresh `client_id`; the message stays pending until
//   its `chat.ack` (or its own `chat.message`), and is sent again with the same
//   `client_id` after every re-join until then: the server stores it once.
import * as api from './api';
import type { Author, ChatMessage, ChatRoom, User } from './api';
import type { AnyFrame, LiveClient } from './live';

export interface PendingMessage {
  client_id: string;
  body: string;
  /** Error code of the last attempt (null while still trying). */
  failed: string | null;
}

export interface RoomView {
  room: ChatRoom;
  joined: boolean;
  closed: boolean;
  /** Oldest first. */
  messages: ChatMessage[];
  pending: PendingMessage[];
  presence: Author[];
  typing: Author[];
  unread: number;
  historyLoaded: boolean;
  hasOlder: boolean;
  loadingOlder: boolean;
}

interface RoomState {
  room: ChatRoom;
  joined: boolean;
  /** A `chat.join` is on its way. */
  joining: boolean;
  closed: boolean;
  messages: Map<number, ChatMessage>;
  /** Highest seq this tab knows the room reached (null before the first `chat.joined`). */
  lastSeen: number | null;
  /** My read marker in this room. */
  readSeq: number;
  /** Unread count from the last room list, counted up to `baseSeq`. */
  baseUnread: number;
  baseSeq: number;
  pending: PendingMessage[];
  presence: Author[];
  typing: Map<number, { user: Author; timer: ReturnType<typeof setTimeout> }>;
  historyLoaded: boolean;
  loadingHistory: boolean;
  oldest: number | null;
  hasOlder: boolean;
  loadingOlder: boolean;
  fillingGap: boolean;
  /** Joins refused in a row as `unavailable`/`busy` (the retry backs off). */
  joinRetries: number;
}

/** How long another user's typing state is shown without a refresh (the server expires at 6 s). */
const TYPING_SHOW_MS = 7_000;
/** `chat.typing true` is repeated at most this often while typing goes on. */
const TYPING_REPEAT_MS = 3_000;
const PAGE = 50;

export function newClientId(): string {
  if (typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function uniqueUsers(list: unknown): Author[] {
  const out: Author[] = [];
  const seen = new Set<number>();
  if (!Array.isArray(list)) return out;
  for (const u of list) {
    if (!u || typeof u !== 'object') continue;
    const id = num((u as Author).id);
    if (id === null || seen.has(id)) continue;
    seen.add(id);
    out.push({ id, display_name: String((u as Author).display_name ?? '') });
  }
  return out;
}

export class StudyChat {
  private readonly rooms = new Map<number, RoomState>();
  private order: number[] = [];
  private active: number | null = null;
  private offs: Array<() => void> = [];
  private stopped = false;
  private typingSentAt = 0;
  private typingRoom: number | null = null;
  /** Bumped on every change; the panel re-renders on `onChange`. */
  version = 0;
  lastError: { code: string; message: string } | null = null;
  loadError: api.ApiError | null = null;
  roomsLoaded = false;

  constructor(
    private readonly live: LiveClient,
    readonly studyId: number,
    readonly me: User,
    private readonly onChange: () => void,
    private readonly onRemoved: () => void,
  ) {}

  // ---- lifecycle ----------------------------------------------------------

  start(): void {
    const mine = (f: AnyFrame) => {
      const rid = num(f.room_id);
      return rid === null ? null : this.rooms.get(rid) ?? null;
    };
    this.offs = [
      this.live.on('hello', () => {
        for (const r of this.rooms.values()) {
          r.joined = false;
          r.joining = false;
        }
        this.joinAll();
        void this.reloadRooms();
      }),
      this.live.on('resync', (f) => {
        const frame = f as AnyFrame;
        if (frame.scope !== 'chat_room') return;
        const r = mine(frame);
        if (!r) return;
        r.joined = false;
        r.joining = false;
        this.join(r);
      }),
      this.live.on('chat.joined', (f) => {
        const r = mine(f as AnyFrame);
        if (r) this.onJoined(r, f as AnyFrame);
      }),
      this.live.on('chat.message', (f) => {
        const r = mine(f as AnyFrame);
        const m = (f as AnyFrame).message as ChatMessage | undefined;
        if (r && m && typeof m === 'object') this.onMessage(r, m, true);
      }),
      this.live.on('chat.ack', (f) => {
        const r = mine(f as AnyFrame);
        if (r) this.onAck(r, f as AnyFrame);
      }),
      this.live.on('chat.updated', (f) => {
        const r = mine(f as AnyFrame);
        const m = (f as AnyFrame).message as ChatMessage | undefined;
        if (!r || !m || typeof m !== 'object' || !r.messages.has(m.seq)) return;
        r.messages.set(m.seq, m);
        this.changed();
      }),
      this.live.on('chat.typing', (f) => {
        const r = mine(f as AnyFrame);
        if (r) this.onTyping(r, f as AnyFrame);
      }),
      this.live.on('chat.presence', (f) => {
        const r = mine(f as AnyFrame);
        if (!r) return;
        r.presence = uniqueUsers((f as AnyFrame).users);
        this.changed();
      }),
      this.live.on('chat.closed', (f) => {
        const r = mine(f as AnyFrame);
        if (!r) return;
        r.closed = true;
        r.room = { ...r.room, closed: true };
        this.clearTyping(r);
        this.changed();
      }),
      this.live.on('chat.removed', (f) => {
        if (mine(f as AnyFrame)) this.removed();
      }),
      this.live.on('error', (f) => this.onError(f as AnyFrame)),
    ];
    document.addEventListener('visibilitychange', this.onVisibility);
    void this.reloadRooms();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const off of this.offs) off();
    this.offs = [];
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.stopTyping();
    for (const r of this.rooms.values()) {
      this.clearTyping(r);
      if (r.joined) this.live.send({ type: 'chat.leave', room_id: r.room.id });
      r.joined = false;
    }
  }

  private removed(): void {
    if (this.stopped) return;
    this.stop();
    this.onRemoved();
  }

  private changed(): void {
    if (this.stopped) return;
    this.version += 1;
    this.onChange();
  }

  private onVisibility = (): void => {
    // Rooms opened or closed elsewhere have no live frame of their own: re-read them on return.
    if (document.visibilityState === 'visible') void this.reloadRooms();
    this.markRead();
  };

  // ---- rooms --------------------------------------------------------------

  async reloadRooms(): Promise<void> {
    let list: ChatRoom[];
    try {
      list = await api.listRooms(this.studyId);
    } catch (e) {
      if (this.stopped) return;
      const err = e instanceof api.ApiError ? e : new api.ApiError(0, 'unknown', String(e));
      // Not (or no longer) a member: the study page re-reads the role.
      if (err.status === 404) {
        this.removed();
        return;
      }
      this.loadError = err;
      this.changed();
      return;
    }
    if (this.stopped) return;
    this.loadError = null;
    this.roomsLoaded = true;
    for (const room of list) {
      const r = this.rooms.get(room.id);
      if (!r) {
        this.rooms.set(room.id, {
          room,
          joined: false,
          joining: false,
          joinRetries: 0,
          closed: room.closed,
          messages: new Map(),
          lastSeen: null,
          readSeq: 0,
          baseUnread: room.unread,
          baseSeq: room.last_seq,
          pending: [],
          presence: [],
          typing: new Map(),
          historyLoaded: false,
          loadingHistory: false,
          oldest: null,
          hasOlder: false,
          loadingOlder: false,
          fillingGap: false,
        });
      } else {
        r.room = room;
        if (room.closed) r.closed = true;
        r.baseUnread = room.unread;
        r.baseSeq = room.last_seq;
        // What we have read ourselves since counts even if the list is older.
        if (this.active === room.id && r.readSeq >= room.last_seq) r.baseUnread = 0;
      }
    }
    this.order = list.map((r) => r.id);
    if (this.active === null || !this.rooms.has(this.active)) {
      const first = list.find((r) => !r.closed) ?? list[0];
      this.active = first ? first.id : null;
    }
    this.joinAll();
    this.ensureHistory();
    this.changed();
  }

  roomList(): ChatRoom[] {
    return this.order.map((id) => this.rooms.get(id)!.room);
  }

  activeRoom(): number | null {
    return this.active;
  }

  setActive(id: number): void {
    if (!this.rooms.has(id) || this.active === id) return;
    this.stopTyping();
    const before = this.active === null ? null : this.rooms.get(this.active);
    if (before && before.closed && before.joined) {
      this.live.send({ type: 'chat.leave', room_id: before.room.id });
      before.joined = false;
    }
    this.active = id;
    const r = this.rooms.get(id)!;
    // A closed room is joined only while shown (its history is readable; read markers still move).
    if (!r.joined && !r.joining) this.join(r);
    this.ensureHistory();
    this.markRead();
    this.changed();
  }

  private joinAll(): void {
    for (const r of this.rooms.values()) {
      if ((!r.closed || r.room.id === this.active) && !r.joined && !r.joining) this.join(r);
    }
  }

  private join(r: RoomState): void {
    if (this.stopped || this.live.state !== 'connected') return;
    const frame: { type: string; [k: string]: unknown } = { type: 'chat.join', id: `join:${r.room.id}`, room_id: r.room.id };
    if (r.lastSeen !== null) frame.last_seq = r.lastSeen;
    r.joining = this.live.send(frame);
  }

  private onJoined(r: RoomState, f: AnyFrame): void {
    r.joined = true;
    r.joining = false;
    r.joinRetries = 0;
    const last = num(f.last_seq) ?? 0;
    const read = num(f.read_seq) ?? 0;
    r.readSeq = Math.max(r.readSeq, read);
    if (f.closed === true) {
      r.closed = true;
      r.room = { ...r.room, closed: true };
    }
    r.presence = uniqueUsers(f.presence);
    if (r.lastSeen === null) {
      // First join: everything up to `last` is history (paged over HTTP).
      r.lastSeen = last;
    }
    r.room = { ...r.room, last_seq: Math.max(r.room.last_seq, last) };
    // Sends that were never acknowledged go again, with the same client_id.
    for (const p of r.pending) if (!p.failed) this.sendPending(r, p);
    this.ensureHistory();
    this.markRead();
    this.changed();
  }

  // ---- messages -------------------------------------------------------------

  private onMessage(r: RoomState, m: ChatMessage, isLive: boolean): void {
    const seq = num(m.seq);
    if (seq === null) return;
    if (m.author?.id === this.me.id) r.pending = r.pending.filter((p) => p.client_id !== m.client_id);
    if (m.author && r.typing.has(m.author.id)) {
      clearTimeout(r.typing.get(m.author.id)!.timer);
      r.typing.delete(m.author.id);
    }
    if (r.messages.has(seq)) {
      this.changed();
      return;
    }
    r.messages.set(seq, m);
    if (r.oldest === null || seq < r.oldest) r.oldest = seq;
    if (isLive && r.lastSeen !== null && seq > r.lastSeen + 1) {
      // A seq jumped: fetch what lies between.
      this.fillGap(r, r.lastSeen);
    }
    if (r.lastSeen === null || seq > r.lastSeen) r.lastSeen = seq;
    r.room = { ...r.room, last_seq: Math.max(r.room.last_seq, seq) };
    this.markRead();
    this.changed();
  }

  private onAck(r: RoomState, f: AnyFrame): void {
    const clientId = typeof f.client_id === 'string' ? f.client_id : '';
    const seq = num(f.seq);
    r.pending = r.pending.filter((p) => p.client_id !== clientId);
    if (seq !== null && !r.messages.has(seq) && r.lastSeen !== null && seq > r.lastSeen) this.fillGap(r, r.lastSeen);
    this.changed();
  }

  private async fillGap(r: RoomState, after: number): Promise<void> {
    if (r.fillingGap) return;
    r.fillingGap = true;
    try {
      const items = await api.roomHistory(this.studyId, r.room.id, { after, limit: 100 });
      for (const m of items) this.onMessage(r, m, false);
    } catch {
      // The next re-join replays it.
    } finally {
      r.fillingGap = false;
    }
  }

  /** Load the newest page of the shown room once (after its first join, or for a closed room). */
  private ensureHistory(): void {
    if (this.active === null) return;
    const r = this.rooms.get(this.active);
    if (!r || r.historyLoaded || r.loadingHistory) return;
    if (!r.closed && !r.joined) return; // wait for chat.joined (its seq is our baseline)
    r.loadingHistory = true;
    api.roomHistory(this.studyId, r.room.id, { limit: PAGE }).then(
      (items) => {
        r.loadingHistory = false;
        r.historyLoaded = true;
        for (const m of items) this.onMessage(r, m, false);
        const lowest = items.length ? items[0].seq : null;
        if (lowest !== null && (r.oldest === null || lowest < r.oldest)) r.oldest = lowest;
        r.hasOlder = items.length > 0 && (r.oldest ?? 1) > 1;
        if (r.lastSeen === null) r.lastSeen = items.length ? items[items.length - 1].seq : 0;
        this.markRead();
        this.changed();
      },
      (e) => {
        r.loadingHistory = false;
        this.lastError = { code: e?.code ?? 'unknown', message: e?.message ?? '' };
        this.changed();
      },
    );
  }

  /** Scroll-back: the page before the oldest message shown. */
  async loadOlder(): Promise<void> {
    if (this.active === null) return;
    const r = this.rooms.get(this.active);
    if (!r || !r.hasOlder || r.loadingOlder || r.oldest === null) return;
    r.loadingOlder = true;
    this.changed();
    try {
      const items = await api.roomHistory(this.studyId, r.room.id, { before: r.oldest, limit: PAGE });
      for (const m of items) if (!r.messages.has(m.seq)) r.messages.set(m.seq, m);
      if (items.length) r.oldest = Math.min(r.oldest ?? Infinity, items[0].seq);
      r.hasOlder = items.length > 0 && (r.oldest ?? 1) > 1;
    } catch (e) {
      this.lastError = { code: (e as api.ApiError)?.code ?? 'unknown', message: String((e as Error)?.message ?? '') };
    } finally {
      r.loadingOlder = false;
      this.changed();
    }
  }

  // ---- sending --------------------------------------------------------------

  send(body: string): boolean {
    const r = this.active === null ? null : this.rooms.get(this.active);
    const text = body.trim();
    if (!r || r.closed || !text) return false;
    const p: PendingMessage = { client_id: newClientId(), body: text, failed: null };
    r.pending = [...r.pending, p];
    this.stopTyping();
    if (r.joined) this.sendPending(r, p);
    this.changed();
    return true;
  }

  retry(clientId: string): void {
    const r = this.active === null ? null : this.rooms.get(this.active);
    const p = r?.pending.find((x) => x.client_id === clientId);
    if (!r || !p) return;
    p.failed = null;
    if (r.joined) this.sendPending(r, p);
    this.changed();
  }

  discard(clientId: string): void {
    const r = this.active === null ? null : this.rooms.get(this.active);
    if (!r) return;
    r.pending = r.pending.filter((x) => x.client_id !== clientId);
    this.changed();
  }

  private sendPending(r: RoomState, p: PendingMessage): void {
    this.live.send({ type: 'chat.send', id: `send:${r.room.id}:${p.client_id}`, room_id: r.room.id, client_id: p.client_id, body: p.body });
  }

  edit(seq: number, body: string): void {
    if (this.active === null || !body.trim()) return;
    this.request({ type: 'chat.edit', room_id: this.active, seq, body: body.trim() });
  }

  remove(seq: number): void {
    if (this.active === null) return;
    this.request({ type: 'chat.delete', room_id: this.active, seq });
  }

  react(seq: number, emoji: string, on: boolean): void {
    if (this.active === null) return;
    this.request({ type: 'chat.react', room_id: this.active, seq, emoji, on });
  }

  private reqSeq = 0;
  private request(frame: { type: string; [k: string]: unknown }): void {
    this.reqSeq += 1;
    if (!this.live.send({ ...frame, id: `req:${this.reqSeq}` })) {
      this.lastError = { code: 'network', message: '' };
      this.changed();
    }
  }

  private onError(f: AnyFrame): void {
    const id = typeof f.id === 'string' ? f.id : '';
    const code = typeof f.error === 'string' ? f.error : 'unknown';
    const message = typeof f.message === 'string' ? f.message : '';
    let m: RegExpExecArray | null;
    if ((m = /^send:(\d+):(.+)$/.exec(id))) {
      const r = this.rooms.get(Number(m[1]));
      const p = r?.pending.find((x) => x.client_id === m![2]);
      if (!r || !p) return;
      if (code === 'rate_limited' || code === 'busy' || code === 'unavailable') {
        // Try again by itself after the wait the server asked for (`unavailable`: the room
        // is moving to another server; the same client_id makes the resend safe).
        const wait = Math.min(10_000, Math.max(200, num(f.retry_after_ms) ?? 1_000));
        setTimeout(() => {
          if (!this.stopped && r.pending.includes(p) && !p.failed && r.joined) this.sendPending(r, p);
        }, wait);
        return;
      }
      if (code === 'not_found' && !r.joined) return; // resent after the re-join
      p.failed = code;
      if (code === 'room_closed') r.closed = true;
      this.changed();
      return;
    }
    if ((m = /^join:(\d+)$/.exec(id))) {
      const r = this.rooms.get(Number(m[1]));
      if (!r) return;
      r.joining = false;
      if (code === 'unavailable' || code === 'busy' || code === 'rate_limited') {
        // The room is between servers (one stopped or died) or the server is loaded: join
        // again by itself, backing off, rather than leave the room silently unjoined.
        const wait = Math.min(10_000, num(f.retry_after_ms) ?? 500 * 2 ** Math.min(r.joinRetries, 4));
        r.joinRetries += 1;
        setTimeout(() => {
          if (!this.stopped && !r.joined && !r.joining) this.join(r);
        }, wait);
        return;
      }
      if (code === 'not_found') {
        // Not a member any more (or the room is gone): stop joining it and re-read the rooms
        // (a 404 there closes the panel).
        r.closed = true;
        this.changed();
        void this.reloadRooms();
        return;
      }
      this.lastError = { code, message };
      this.changed();
      return;
    }
    if (id.startsWith('req:')) {
      this.lastError = { code, message };
      this.changed();
    }
  }

  clearError(): void {
    if (!this.lastError) return;
    this.lastError = null;
    this.changed();
  }

  // ---- typing & read ----------------------------------------------------------

  /** The composer's input changed. */
  typing(): void {
    const id = this.active;
    if (id === null) return;
    const r = this.rooms.get(id);
    if (!r || !r.joined || r.closed) return;
    const now = Date.now();
    if (this.typingRoom === id && now - this.typingSentAt < TYPING_REPEAT_MS) return;
    this.typingRoom = id;
    this.typingSentAt = now;
    this.live.send({ type: 'chat.typing', room_id: id, typing: true });
  }

  /** Sent, blurred, or switched rooms. */
  stopTyping(): void {
    if (this.typingRoom === null) return;
    this.live.send({ type: 'chat.typing', room_id: this.typingRoom, typing: false });
    this.typingRoom = null;
    this.typingSentAt = 0;
  }

  private onTyping(r: RoomState, f: AnyFrame): void {
    const user = f.user as Author | undefined;
    const uid = num(user?.id);
    if (!user || uid === null || uid === this.me.id) return;
    const old = r.typing.get(uid);
    if (old) clearTimeout(old.timer);
    if (f.typing === true) {
      const timer = setTimeout(() => {
        r.typing.delete(uid);
        this.changed();
      }, TYPING_SHOW_MS);
      r.typing.set(uid, { user: { id: uid, display_name: String(user.display_name ?? '') }, timer });
    } else {
      r.typing.delete(uid);
    }
    this.changed();
  }

  private clearTyping(r: RoomState): void {
    for (const t of r.typing.values()) clearTimeout(t.timer);
    r.typing.clear();
  }

  /** Move my read marker to the newest seq of the shown room, while the page is visible. */
  markRead(): void {
    if (this.stopped || this.active === null || document.visibilityState !== 'visible') return;
    const r = this.rooms.get(this.active);
    if (!r || !r.joined || r.lastSeen === null) return;
    const newest = r.lastSeen;
    if (newest <= r.readSeq) {
      if (r.baseUnread !== 0 && newest >= r.baseSeq) {
        r.baseUnread = 0;
        this.changed();
      }
      return;
    }
    if (!this.live.send({ type: 'chat.read', id: `read:${r.room.id}:${newest}`, room_id: r.room.id, seq: newest })) return;
    r.readSeq = newest;
    r.baseUnread = 0;
    r.baseSeq = Math.max(r.baseSeq, newest);
    this.changed();
  }

  // ---- views ----------------------------------------------------------------

  private unreadOf(r: RoomState): number {
    let n = r.baseUnread;
    for (const m of r.messages.values()) {
      if (m.seq > r.baseSeq && m.seq > r.readSeq && !m.deleted && m.author?.id !== this.me.id) n += 1;
    }
    return n;
  }

  unreadCounts(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [id, r] of this.rooms) out.set(id, this.unreadOf(r));
    return out;
  }

  view(id: number | null = this.active): RoomView | null {
    if (id === null) return null;
    const r = this.rooms.get(id);
    if (!r) return null;
    return {
      room: r.room,
      joined: r.joined,
      closed: r.closed,
      messages: [...r.messages.values()].sort((a, b) => a.seq - b.seq),
      pending: r.pending,
      presence: r.presence,
      typing: [...r.typing.values()].map((x) => x.user),
      unread: this.unreadOf(r),
      historyLoaded: r.historyLoaded,
      hasOlder: r.hasOlder,
      loadingOlder: r.loadingOlder,
    };
  }
}
