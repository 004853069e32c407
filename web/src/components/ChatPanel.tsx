// The chat panel of a study page (members and the leader): room tabs with
// unread badges, the open room's messages (scroll-back over HTTP, live frames
// over the socket), a composer with pending sends, typing, presence, edit,
// delete and reactions. State and protocol handling live in `../chat.ts`.
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, ChatMessage, ChatRoom, RoomCategory } from '../api';
import { CHAT_BODY_MAX, REACTIONS, ROOM_CATEGORIES, ROOM_NAME_MAX } from '../api';
import { type RoomView, StudyChat } from '../chat';
import { useApp } from '../context';
import { toApiError } from '../forms';
import { errorMessage, hasKey, type MessageKey, useI18n } from '../i18n';
import type { AnyFrame } from '../live';
import { isContentEvent, studyEventKind } from '../studyLive';
import { Button } from './Button';
import { ErrorAlert, Notice } from './Alert';
import { chatInputClass, chatSmallButton, Composer } from './Composer';
import { ConnIndicator } from './ConnIndicator';

const sectionClass = 'flex flex-col gap-3 rounded-lg border border-slate-200 bg-white p-4';

export function categoryText(category: string, t: (k: MessageKey) => string): string {
  const key = `chat.category.${category}`;
  return hasKey(key) ? t(key) : category;
}

export function ChatPanel({ studyId, isLeader, onRemoved }: { studyId: number; isLeader: boolean; onRemoved: () => void }) {
  const { t } = useI18n();
  const app = useApp();
  const [, setTick] = useState(0);
  const [chat, setChat] = useState<StudyChat | null>(null);
  const removedRef = useRef(onRemoved);
  removedRef.current = onRemoved;

  const live = app.live;
  const me = app.user;
  useEffect(() => {
    if (!live || !me) return;
    const c = new StudyChat(
      live,
      studyId,
      me,
      () => setTick((v) => v + 1),
      () => removedRef.current(),
    );
    setChat(c);
    c.start();
    // New or closed rooms show up as study events (and are re-read after every hello).
    // Files of the recruiting post change no room; a deleted study is left by the page.
    const off = live.on('study.event', (f) => {
      const frame = f as AnyFrame;
      if (frame.study_id !== studyId || isContentEvent(frame)) return;
      const kind = studyEventKind(frame);
      if (kind === 'deleted' || kind === 'study_attachments_changed') return;
      void c.reloadRooms();
    });
    return () => {
      off();
      c.stop();
      setChat(null);
    };
  }, [live, me?.id, studyId]);

  if (!chat) return null;
  const rooms = chat.roomList();
  const active = chat.activeRoom();
  const view = chat.view(active);
  const unread = chat.unreadCounts();

  return (
    <section aria-labelledby="chat-h" class={sectionClass} data-testid="chat-panel">
      <div class="flex flex-wrap items-center justify-between gap-2">
        <h2 id="chat-h" class="text-lg font-semibold">
          {t('chat.title')}
        </h2>
        <ConnIndicator state={app.connState} />
      </div>
      {chat.loadError && <ErrorAlert>{errorMessage(chat.loadError)}</ErrorAlert>}
      {chat.lastError && (
        <div class="flex items-start gap-2">
          <div class="flex-1">
            <ErrorAlert>{errorMessage(chat.lastError)}</ErrorAlert>
          </div>
          <button type="button" class={chatSmallButton} onClick={() => chat.clearError()} aria-label={t('toast.dismiss')}>
            ×
          </button>
        </div>
      )}
      {chat.roomsLoaded && rooms.length === 0 && <p class="text-slate-600">{t('chat.noRooms')}</p>}
      {rooms.length > 0 && <RoomTabs rooms={rooms} active={active} unread={unread} onSelect={(id) => chat.setActive(id)} />}
      {view && <RoomPane key={view.room.id} chat={chat} view={view} isLeader={isLeader} />}
      {chat.roomsLoaded && (
        <NewRoomForm
          studyId={studyId}
          openCount={rooms.filter((r) => !r.closed).length}
          onCreated={async (room) => {
            await chat.reloadRooms();
            chat.setActive(room.id);
          }}
        />
      )}
    </section>
  );
}

function RoomTabs({
  rooms,
  active,
  unread,
  onSelect,
}: {
  rooms: ChatRoom[];
  active: number | null;
  unread: Map<number, number>;
  onSelect: (id: number) => void;
}) {
  const { t } = useI18n();
  const refs = useRef(new Map<number, HTMLButtonElement>());
  function onKey(e: KeyboardEvent, i: number) {
    let next = -1;
    if (e.key === 'ArrowRight') next = (i + 1) % rooms.length;
    else if (e.key === 'ArrowLeft') next = (i - 1 + rooms.length) % rooms.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = rooms.length - 1;
    if (next < 0) return;
    e.preventDefault();
    onSelect(rooms[next].id);
    refs.current.get(rooms[next].id)?.focus();
  }
  return (
    <div role="tablist" aria-label={t('chat.rooms')} class="flex flex-wrap gap-1 border-b border-slate-200 pb-2">
      {rooms.map((room, i) => {
        const selected = room.id === active;
        const count = unread.get(room.id) ?? 0;
        return (
          <button
            key={room.id}
            ref={(el) => {
              if (el) refs.current.set(room.id, el);
              else refs.current.delete(room.id);
            }}
            type="button"
            role="tab"
            id={`room-tab-${room.id}`}
            aria-controls={`room-panel-${room.id}`}
            aria-selected={selected}
            tabIndex={selected ? 0 : -1}
            data-testid="room-tab"
            data-room-id={room.id}
            data-closed={room.closed ? 'true' : 'false'}
            onClick={() => onSelect(room.id)}
            onKeyDown={(e) => onKey(e, i)}
            class={`inline-flex items-center gap-2 rounded-md px-3 py-1.5 text-sm font-semibold focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600 ${
              selected ? 'bg-blue-700 text-white' : 'bg-slate-100 text-slate-800 hover:bg-slate-200'
            }`}
          >
            <span data-testid="room-name">{room.name}</span>
            <span class={`text-xs font-normal ${selected ? 'text-blue-100' : 'text-slate-600'}`}>{categoryText(room.category, t)}</span>
            {room.closed && <span class="text-xs font-normal italic">{t('chat.closedBadge')}</span>}
            {count > 0 && (
              <span data-testid="room-unread" class="rounded-full bg-red-600 px-1.5 text-xs text-white">
                <span aria-hidden="true">{count}</span>
                <span class="sr-only">{t('chat.unread', { count })}</span>
              </span>
            )}
          </button>
        );
      })}
    </div>
  );
}

function typingText(view: RoomView, t: ReturnType<typeof useI18n>['t']): string | null {
  const names = view.typing.map((u) => u.display_name);
  if (names.length === 0) return null;
  if (names.length === 1) return t('chat.typingOne', { name: names[0] });
  if (names.length === 2) return t('chat.typingTwo', { a: names[0], b: names[1] });
  return t('chat.typingMany');
}

function RoomPane({ chat, view, isLeader }: { chat: StudyChat; view: RoomView; isLeader: boolean }) {
  const { t } = useI18n();
  const app = useApp();
  const [body, setBody] = useState('');
  const [confirmClose, setConfirmClose] = useState(false);
  const [closeError, setCloseError] = useState<ApiError | null>(null);
  const [closing, setClosing] = useState(false);
  const listRef = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const prev = useRef<{ first: number | null; height: number }>({ first: null, height: 0 });
  const room = view.room;
  const connected = app.connState === 'connected';

  const first = view.messages.length ? view.messages[0].seq : null;
  const count = view.messages.length + view.pending.length;
  // Keep the view pinned to the bottom for new messages; keep the position when older ones load above.
  useLayoutEffect(() => {
    const el = listRef.current;
    if (!el) return;
    const p = prev.current;
    if (p.first !== null && first !== null && first < p.first && !atBottom.current) {
      el.scrollTop += el.scrollHeight - p.height;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
    prev.current = { first, height: el.scrollHeight };
  }, [first, count, view.typing.length]);

  function onScroll() {
    const el = listRef.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    prev.current = { first, height: el.scrollHeight };
    if (el.scrollTop < 40 && view.hasOlder && !view.loadingOlder) void chat.loadOlder();
  }

  function submit(e?: Event) {
    e?.preventDefault();
    if (!body.trim()) return;
    if (chat.send(body)) {
      setBody('');
      atBottom.current = true;
    }
  }

  async function close() {
    setClosing(true);
    setCloseError(null);
    try {
      await api.closeRoom(chat.studyId, room.id);
      setConfirmClose(false);
      await chat.reloadRooms();
    } catch (e) {
      setCloseError(toApiError(e));
    } finally {
      setClosing(false);
    }
  }

  const typing = typingText(view, t);
  const composerId = `chat-input-${room.id}`;
  return (
    <div
      role="tabpanel"
      id={`room-panel-${room.id}`}
      aria-labelledby={`room-tab-${room.id}`}
      data-testid="chat-room"
      data-room-id={room.id}
      data-closed={view.closed ? 'true' : 'false'}
      data-joined={view.joined ? 'true' : 'false'}
      class="flex flex-col gap-2"
    >
      <div class="flex flex-wrap items-center justify-between gap-2">
        <div class="text-sm text-slate-700" data-testid="presence">
          <span class="font-semibold">{t('chat.presence')}: </span>
          {view.presence.map((u, i) => (
            <span key={u.id} data-testid="presence-user">
              {i > 0 ? ', ' : ''}
              {u.display_name}
            </span>
          ))}
        </div>
        {isLeader && !view.closed && (
          <div class="flex flex-wrap items-center gap-2">
            {!confirmClose ? (
              <Button variant="secondary" onClick={() => setConfirmClose(true)}>
                {t('chat.closeRoom')}
              </Button>
            ) : (
              <>
                <span class="text-sm text-slate-800">{t('chat.closeConfirm')}</span>
                <Button disabled={closing} onClick={close}>
                  {t('chat.closeYes')}
                </Button>
                <Button variant="secondary" onClick={() => setConfirmClose(false)}>
                  {t('chat.cancel')}
                </Button>
              </>
            )}
          </div>
        )}
      </div>
      {closeError && <ErrorAlert>{errorMessage(closeError)}</ErrorAlert>}
      {view.closed && <Notice>{t('chat.closedNotice')}</Notice>}

      <div
        ref={listRef}
        onScroll={onScroll}
        role="log"
        aria-label={t('chat.messages', { room: room.name })}
        data-testid="chat-messages"
        tabIndex={0}
        class="h-80 overflow-y-auto rounded-md lg:h-[calc(100vh-24rem)] lg:min-h-64 border border-slate-200 bg-slate-50 p-2 focus-visible:outline-2 focus-visible:outline-blue-600"
      >
        <ol class="flex flex-col gap-2">
        {view.hasOlder && (
          <li class="self-center">
            <button type="button" class={chatSmallButton} disabled={view.loadingOlder} onClick={() => void chat.loadOlder()}>
              {view.loadingOlder ? t('app.loading') : t('chat.loadOlder')}
            </button>
          </li>
        )}
        {view.historyLoaded && view.messages.length === 0 && view.pending.length === 0 && (
          <li class="self-center text-sm text-slate-600">{t('chat.empty')}</li>
        )}
        {!view.historyLoaded && (
          <li class="self-center text-sm text-slate-600" role="status">
            {connected || view.closed ? t('app.loading') : t('chat.notConnected')}
          </li>
        )}
        {view.messages.map((m) => (
          <MessageItem key={m.seq} chat={chat} message={m} isLeader={isLeader} closed={view.closed} />
        ))}
        {view.pending.map((p) => (
          <li
            key={p.client_id}
            data-testid="chat-pending"
            data-client-id={p.client_id}
            class="self-end rounded-md border border-dashed border-slate-400 bg-white px-3 py-2 text-slate-700"
          >
            <p class="whitespace-pre-wrap">{p.body}</p>
            {p.failed ? (
              <p class="mt-1 flex flex-wrap items-center gap-2 text-xs text-red-800">
                {t('chat.failed', { reason: errorMessage({ code: p.failed }) })}
                <button type="button" class={chatSmallButton} onClick={() => chat.retry(p.client_id)}>
                  {t('chat.retry')}
                </button>
                <button type="button" class={chatSmallButton} onClick={() => chat.discard(p.client_id)}>
                  {t('chat.discard')}
                </button>
              </p>
            ) : (
              <p class="mt-1 text-xs text-slate-600">{t('chat.pending')}</p>
            )}
          </li>
        ))}
        </ol>
      </div>
      <p class="min-h-5 text-sm italic text-slate-600" aria-live="polite" data-testid="typing">
        {typing ?? ''}
      </p>

      {!view.closed && (
        <Composer
          id={composerId}
          label={t('chat.composer')}
          body={body}
          onInput={(value) => {
            setBody(value);
            if (value) chat.typing();
            else chat.stopTyping();
          }}
          onBlur={() => chat.stopTyping()}
          onSubmit={submit}
        />
      )}
    </div>
  );
}

function MessageItem({ chat, message: m, isLeader, closed }: { chat: StudyChat; message: ChatMessage; isLeader: boolean; closed: boolean }) {
  const { t, lang } = useI18n();
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(m.body);
  const mine = m.author.id === chat.me.id;
  const time = new Date(m.created_at);
  const editId = `edit-${m.seq}`;
  const reactions = Object.entries(m.reactions ?? {}).filter(([, users]) => users.length > 0);
  return (
    <li
      data-testid="chat-message"
      data-seq={m.seq}
      data-mine={mine ? 'true' : 'false'}
      data-deleted={m.deleted ? 'true' : 'false'}
      class={`flex max-w-[85%] flex-col gap-1 rounded-md px-3 py-2 ${mine ? 'self-end bg-blue-50' : 'self-start bg-white'} border border-slate-200`}
    >
      <div class="flex flex-wrap items-baseline gap-2 text-xs text-slate-600">
        <span class="font-semibold text-slate-900" data-testid="chat-author">
          {m.author.display_name}
        </span>
        <time dateTime={time.toISOString()}>{time.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' })}</time>
        {m.edited_at && !m.deleted && <span>{t('chat.edited')}</span>}
      </div>
      {editing ? (
        <form
          class="flex flex-col gap-1"
          onSubmit={(e) => {
            e.preventDefault();
            chat.edit(m.seq, draft);
            setEditing(false);
          }}
        >
          <label for={editId} class="sr-only">
            {t('chat.editLabel')}
          </label>
          <textarea id={editId} rows={2} maxLength={CHAT_BODY_MAX} value={draft} onInput={(e) => setDraft(e.currentTarget.value)} class={chatInputClass} />
          <div class="flex gap-2">
            <button type="submit" class={chatSmallButton} disabled={!draft.trim()}>
              {t('chat.save')}
            </button>
            <button type="button" class={chatSmallButton} onClick={() => setEditing(false)}>
              {t('chat.cancel')}
            </button>
          </div>
        </form>
      ) : (
        <p class={`whitespace-pre-wrap break-words ${m.deleted ? 'italic text-slate-500' : 'text-slate-900'}`} data-testid="chat-body">
          {m.deleted ? t('chat.deleted') : m.body}
        </p>
      )}
      {!m.deleted && (reactions.length > 0 || !closed) && (
        <div class="flex flex-wrap items-center gap-1">
          {reactions.map(([emoji, users]) => {
            const on = users.includes(chat.me.id);
            return (
              <button
                key={emoji}
                type="button"
                data-testid="reaction"
                data-emoji={emoji}
                aria-pressed={on}
                disabled={closed}
                aria-label={t('chat.reactionCount', { emoji, count: users.length })}
                onClick={() => chat.react(m.seq, emoji, !on)}
                class={`rounded-full border px-2 text-xs ${on ? 'border-blue-400 bg-blue-100' : 'border-slate-300 bg-white'}`}
              >
                {emoji} {users.length}
              </button>
            );
          })}
          {!closed && (
            <details class="relative">
              <summary class={`${chatSmallButton} cursor-pointer list-none`} aria-label={t('chat.react')}>
                <span aria-hidden="true">☺+</span>
              </summary>
              <div class="absolute z-10 mt-1 flex gap-1 rounded-md border border-slate-300 bg-white p-1 shadow">
                {REACTIONS.map((emoji) => (
                  <button
                    key={emoji}
                    type="button"
                    aria-label={t('chat.reactWith', { emoji })}
                    class="rounded px-1 text-lg hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-blue-600"
                    onClick={(e) => {
                      const on = !(m.reactions?.[emoji] ?? []).includes(chat.me.id);
                      chat.react(m.seq, emoji, on);
                      (e.currentTarget.closest('details') as HTMLDetailsElement | null)?.removeAttribute('open');
                    }}
                  >
                    {emoji}
                  </button>
                ))}
              </div>
            </details>
          )}
          {!closed && mine && !editing && (
            <button
              type="button"
              class={chatSmallButton}
              onClick={() => {
                setDraft(m.body);
                setEditing(true);
              }}
            >
              {t('chat.edit')}
            </button>
          )}
          {!closed && (mine || isLeader) && (
            <button type="button" class={chatSmallButton} onClick={() => chat.remove(m.seq)}>
              {t('chat.delete')}
            </button>
          )}
        </div>
      )}
    </li>
  );
}

function NewRoomForm({ studyId, openCount, onCreated }: { studyId: number; openCount: number; onCreated: (room: ChatRoom) => Promise<void> }) {
  const { t } = useI18n();
  const [name, setName] = useState('');
  const [category, setCategory] = useState<RoomCategory>('general');
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  // Unfolded at first when there is no open room; then it is the user's to fold.
  const [open, setOpen] = useState(openCount === 0);
  async function submit(e: Event) {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const room = await api.createRoom(studyId, { name: name.trim(), category });
      setName('');
      setOpen(false);
      await onCreated(room);
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <details class="rounded-md border border-slate-200 p-2" open={open} onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
      <summary class="cursor-pointer text-sm font-semibold text-slate-800">{t('chat.newRoom')}</summary>
      <form class="mt-2 flex flex-col gap-2" onSubmit={submit} data-testid="new-room-form">
        <div class="flex flex-wrap items-end gap-3">
          <div class="flex flex-col gap-1">
            <label for="room-name" class="text-sm font-medium text-slate-800">
              {t('chat.roomName')}
            </label>
            <input id="room-name" type="text" maxLength={ROOM_NAME_MAX} value={name} onInput={(e) => setName(e.currentTarget.value)} required class={chatInputClass} />
          </div>
          <div class="flex flex-col gap-1">
            <label for="room-category" class="text-sm font-medium text-slate-800">
              {t('chat.roomCategory')}
            </label>
            <select id="room-category" value={category} onChange={(e) => setCategory(e.currentTarget.value as RoomCategory)} class={chatInputClass}>
              {ROOM_CATEGORIES.map((c) => (
                <option key={c} value={c}>
                  {categoryText(c, t)}
                </option>
              ))}
            </select>
          </div>
          <Button type="submit" disabled={busy || !name.trim()}>
            {t('chat.create')}
          </Button>
        </div>
        <p class="text-xs text-slate-600">{t('chat.roomLimitHint')}</p>
        {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
      </form>
    </details>
  );
}
