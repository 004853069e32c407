// Direct messages (protocol: src/ws/PROTOCOL.md, "Direct messages").
//
// - `DmInbox` (one per signed-in user, in app.tsx): the conversation list's
//   unread counts, kept live from `dm.message` frames (every tab of both users
//   gets them) and re-read after every `hello`; it also knows which
//   conversation is open, so no toast / no unread bump is made for it.
// - `DmThread` (the open conversation page): history over HTTP (newest page,
//   older pages on scroll-back), live `dm.message` frames deduped by seq,
//   `dm.send` with a fresh `client_id` kept pending until `dm.ack` (resent with
//   the same client_id after a reconnect), `dm.read` while visible, the read
//   check from `dm.read` / `dm.synced.read_seq`, and `dm.sync` with the last
//   seen seq after every `hello` (the server replays what was missed).
import * as api from './api';
import type { Author, User } from './api';
import { newClientId, type PendingMessage } from './chat';
import type { AnyFrame, LiveClient } from './live';

export interface DirectMessage {
  seq: number;
  client_id: string;
  sender: Author;
  body: string;
  created_at: number;
}

export interface Conversation {
  user: User;
  last_message: DirectMessage | null;
  unread: number;
  last_seq: number;
}

export async function listConversations(): Promise<Conversation[]> {
  return (await api.request<{ items: Conversation[] }>('GET', '/api/dms')).items;
}

/** A page of a conversation, oldest first, and how far the other side has read my messages. */
export async function dmHistory(
  userId: number,
  page: { before?: number | null; after?: number; limit?: number },
): Promise<{ items: DirectMessage[]; read_seq?: number }> {
  const params = new URLSearchParams();
  if (page.before != null) params.set('before', String(page.before));
  if (page.after != null) params.set('after', String(page.after));
  params.set('limit', String(page.limit ?? 50));
  return api.request('GET', `/api/dms/${userId}/messages?${params}`);
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export function dmMessageOf(f: AnyFrame): { with: number; message: DirectMessage } | null {
  const w = num(f.with);
  const m = f.message as DirectMessage | undefined;
  if (w === null || !m || typeof m !== 'object' || num(m.seq) === null) return null;
  return { with: w, message: m };
}

// ---- inbox -------------------------------------------------------------------

export class DmInbox {
  /** Unread per other user. */
  private unread = new Map<number, number>();
  /** Newest seq per conversation counted so far (a replayed frame is not counted twice). */
  private counted = new Map<number, number>();
  private open: number | null = null;
  private offs: Array<() => void> = [];
  private reads = 0;

  constructor(
    private readonly live: LiveClient,
    private readonly me: User,
    private readonly onChange: (total: number) => void,
  ) {}

  start(): void {
    this.offs = [
      this.live.on('hello', () => void this.refresh()),
      this.live.on('dm.message', (f) => {
        const d = dmMessageOf(f as AnyFrame);
        if (!d || d.message.sender?.id === this.me.id) return;
        const seen = this.counted.get(d.with) ?? 0;
        if (d.message.seq <= seen) return;
        this.counted.set(d.with, d.message.seq);
        if (this.isOpen(d.with)) return;
        this.unread.set(d.with, (this.unread.get(d.with) ?? 0) + 1);
        this.emit();
      }),
    ];
    void this.refresh();
  }

  stop(): void {
    for (const off of this.offs) off();
    this.offs = [];
  }

  async refresh(): Promise<void> {
    const reads = this.reads;
    try {
      const list = await listConversations();
      if (reads !== this.reads) return; // a read happened meanwhile; the next refresh is exact
      this.unread.clear();
      for (const c of list) {
        this.unread.set(c.user.id, this.isOpen(c.user.id) ? 0 : c.unread);
        this.counted.set(c.user.id, Math.max(this.counted.get(c.user.id) ?? 0, c.last_seq));
      }
      this.emit();
    } catch {
      // Keep the last count.
    }
  }

  private isOpen(userId: number): boolean {
    return this.open === userId && document.visibilityState === 'visible';
  }

  /** The conversation page with `userId` is shown (null: none). */
  setOpen(userId: number | null): void {
    this.open = userId;
    if (userId !== null) this.markRead(userId);
  }

  openWith(): number | null {
    return this.open;
  }

  markRead(userId: number): void {
    this.reads += 1;
    if ((this.unread.get(userId) ?? 0) === 0) return;
    this.unread.set(userId, 0);
    this.emit();
  }

  total(): number {
    let n = 0;
    for (const v of this.unread.values()) n += v;
    return n;
  }

  private emit(): void {
    this.onChange(this.total());
  }
}

// ---- one conversation -----------------------------------------------------------

export interface ThreadView {
  messages: DirectMessage[];
  pending: PendingMessage[];
  /** The other side has read my messages up to this seq. */
  readByOther: number;
  loaded: boolean;
  hasOlder: boolean;
  loadingOlder: boolean;
  error: api.ApiError | null;
  sendError: string | null;
}

const PAGE = 50;

export class DmThread {
  private messages = new Map<number, DirectMessage>();
  private lastSeen: number | null = null;
  private readByOther = 0;
  private sentRead = 0;
  private pending: PendingMessage[] = [];
  private loaded = false;
  private oldest: number | null = null;
  private hasOlder = false;
  private loadingOlder = false;
  private fillingGap = false;
  private error: api.ApiError | null = null;
  private sendError: string | null = null;
  private offs: Array<() => void> = [];
  private stopped = false;

  constructor(
    private readonly live: LiveClient,
    private readonly me: User,
    readonly other: number,
    private readonly onChange: () => void,
    private readonly onRead: () => void,
  ) {}

  start(): void {
    this.offs = [
      this.live.on('hello', () => {
        if (this.lastSeen === null) void this.load();
        else this.live.send({ type: 'dm.sync', id: `dmsync:${this.other}`, with: this.other, last_seq: this.lastSeen });
      }),
      this.live.on('dm.synced', (f) => {
        const frame = f as AnyFrame;
        if (frame.with !== this.other) return;
        this.readByOther = Math.max(this.readByOther, num(frame.read_seq) ?? 0);
        for (const p of this.pending) if (!p.failed) this.sendPending(p);
        this.markRead();
        this.changed();
      }),
      this.live.on('dm.message', (f) => {
        const d = dmMessageOf(f as AnyFrame);
        if (d && d.with === this.other) this.add(d.message, true);
      }),
      this.live.on('dm.ack', (f) => {
        const frame = f as AnyFrame;
        if (frame.to !== this.other) return;
        this.pending = this.pending.filter((p) => p.client_id !== frame.client_id);
        const seq = num(frame.seq);
        if (seq !== null && !this.messages.has(seq) && this.lastSeen !== null && seq > this.lastSeen) void this.fillGap(this.lastSeen);
        this.changed();
      }),
      this.live.on('dm.read', (f) => {
        const frame = f as AnyFrame;
        if (frame.with !== this.other) return;
        this.readByOther = Math.max(this.readByOther, num(frame.seq) ?? 0);
        this.changed();
      }),
      this.live.on('error', (f) => this.onError(f as AnyFrame)),
    ];
    document.addEventListener('visibilitychange', this.onVisibility);
    void this.load();
  }

  stop(): void {
    this.stopped = true;
    for (const off of this.offs) off();
    this.offs = [];
    document.removeEventListener('visibilitychange', this.onVisibility);
  }

  private onVisibility = (): void => this.markRead();

  private changed(): void {
    if (!this.stopped) this.onChange();
  }

  private async load(): Promise<void> {
    try {
      const page = await dmHistory(this.other, { limit: PAGE });
      if (this.stopped) return;
      this.error = null;
      for (const m of page.items) this.add(m, false);
      this.readByOther = Math.max(this.readByOther, page.read_seq ?? 0);
      this.loaded = true;
      if (page.items.length) this.oldest = Math.min(this.oldest ?? Infinity, page.items[0].seq);
      this.hasOlder = page.items.length > 0 && (this.oldest ?? 1) > 1;
      let newest = 0;
      for (const seq of this.messages.keys()) newest = Math.max(newest, seq);
      this.lastSeen = Math.max(this.lastSeen ?? 0, newest);
      this.markRead();
      this.changed();
    } catch (e) {
      if (this.stopped) return;
      this.error = e instanceof api.ApiError ? e : new api.ApiError(0, 'unknown', String(e));
      this.changed();
    }
  }

  private add(m: DirectMessage, isLive: boolean): void {
    const seq = num(m.seq);
    if (seq === null) return;
    if (m.sender?.id === this.me.id) this.pending = this.pending.filter((p) => p.client_id !== m.client_id);
    if (!this.messages.has(seq)) {
      this.messages.set(seq, m);
      if (this.oldest === null || seq < this.oldest) this.oldest = seq;
      if (isLive && this.lastSeen !== null && seq > this.lastSeen + 1) void this.fillGap(this.lastSeen);
      if (this.lastSeen !== null && seq > this.lastSeen) this.lastSeen = seq;
    }
    if (isLive) {
      this.markRead();
      this.changed();
    }
  }

  private async fillGap(after: number): Promise<void> {
    if (this.fillingGap) return;
    this.fillingGap = true;
    try {
      const page = await dmHistory(this.other, { after, limit: 100 });
      for (const m of page.items) this.add(m, false);
      for (const seq of this.messages.keys()) if (this.lastSeen !== null && seq > this.lastSeen) this.lastSeen = seq;
      this.markRead();
      this.changed();
    } catch {
      // The next dm.sync replays it.
    } finally {
      this.fillingGap = false;
    }
  }

  async loadOlder(): Promise<void> {
    if (!this.hasOlder || this.loadingOlder || this.oldest === null) return;
    this.loadingOlder = true;
    this.changed();
    try {
      const page = await dmHistory(this.other, { before: this.oldest, limit: PAGE });
      for (const m of page.items) if (!this.messages.has(m.seq)) this.messages.set(m.seq, m);
      if (page.items.length) this.oldest = Math.min(this.oldest ?? Infinity, page.items[0].seq);
      this.hasOlder = page.items.length > 0 && (this.oldest ?? 1) > 1;
    } catch (e) {
      this.error = e instanceof api.ApiError ? e : null;
    } finally {
      this.loadingOlder = false;
      this.changed();
    }
  }

  send(body: string): boolean {
    const text = body.trim();
    if (!text) return false;
    const p: PendingMessage = { client_id: newClientId(), body: text, failed: null };
    this.pending = [...this.pending, p];
    this.sendError = null;
    this.sendPending(p);
    this.changed();
    return true;
  }

  retry(clientId: string): void {
    const p = this.pending.find((x) => x.client_id === clientId);
    if (!p) return;
    p.failed = null;
    this.sendPending(p);
    this.changed();
  }

  discard(clientId: string): void {
    this.pending = this.pending.filter((x) => x.client_id !== clientId);
    this.changed();
  }

  private sendPending(p: PendingMessage): void {
    this.live.send({ type: 'dm.send', id: `dm:${p.client_id}`, to: this.other, client_id: p.client_id, body: p.body });
  }

  private onError(f: AnyFrame): void {
    const id = typeof f.id === 'string' ? f.id : '';
    if (!id.startsWith('dm:')) return;
    const p = this.pending.find((x) => x.client_id === id.slice(3));
    if (!p) return;
    const code = typeof f.error === 'string' ? f.error : 'unknown';
    // `unavailable`: the conversation is moving to another server (one stopped or died);
    // the same client_id goes again, so it is stored once.
    if (code === 'rate_limited' || code === 'busy' || code === 'unavailable') {
      const wait = Math.min(10_000, Math.max(200, num(f.retry_after_ms) ?? 1_000));
      setTimeout(() => {
        if (!this.stopped && this.pending.includes(p) && !p.failed) this.sendPending(p);
      }, wait);
      return;
    }
    p.failed = code;
    this.changed();
  }

  /** While the page is visible, tell the server (and the other side) how far I have read. */
  markRead(): void {
    if (this.stopped || this.lastSeen === null || document.visibilityState !== 'visible') return;
    // Only messages from the other side need reading.
    let newest = 0;
    for (const m of this.messages.values()) if (m.sender?.id !== this.me.id && m.seq > newest) newest = m.seq;
    if (newest <= this.sentRead) return;
    if (!this.live.send({ type: 'dm.read', id: `dmread:${this.other}:${newest}`, with: this.other, seq: newest })) return;
    this.sentRead = newest;
    this.onRead();
  }

  view(): ThreadView {
    return {
      messages: [...this.messages.values()].sort((a, b) => a.seq - b.seq),
      pending: this.pending,
      readByOther: this.readByOther,
      loaded: this.loaded,
      hasOlder: this.hasOlder,
      loadingOlder: this.loadingOlder,
      error: this.error,
      sendError: this.sendError,
    };
  }
}
