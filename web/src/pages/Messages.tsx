// Direct messages: the inbox (`/messages`) and one conversation
// (`/messages/:userId`). State and protocol handling live in `../dm.ts`.
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError } from '../api';
import { ErrorAlert } from '../components/Alert';
import { chatSmallButton, Composer } from '../components/Composer';
import { ConnIndicator } from '../components/ConnIndicator';
import { Layout } from '../components/Layout';
import { linkClass } from '../components/Study';
import { useApp } from '../context';
import { type Conversation, DmThread, listConversations } from '../dm';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { linkClick } from '../router';


export function MessagesPage() {
  const { t, lang } = useI18n();
  const app = useApp();
  const [items, setItems] = useState<Conversation[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    let cancelled = false;
    const load = () =>
      listConversations().then(
        (list) => {
          if (cancelled) return;
          setItems(list);
          setError(null);
        },
        (e) => !cancelled && setError(toApiError(e)),
      );
    load();
    const live = app.live;
    const offs = live ? [live.on('dm.message', load), live.on('hello', load)] : [];
    return () => {
      cancelled = true;
      for (const off of offs) off();
    };
  }, [app.live]);

  return (
    <Layout titleKey="dm.title">
      <div class="flex flex-col gap-4">
        <h1 class="text-2xl font-bold">{t('dm.title')}</h1>
        {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
        {!items && !error && <p role="status">{t('app.loading')}</p>}
        {items && items.length === 0 && <p class="text-slate-600">{t('dm.empty')}</p>}
        {items && items.length > 0 && (
          <ul class="flex flex-col gap-2" data-testid="conversations">
            {items.map((c) => (
              <li key={c.user.id} data-testid="conversation" data-user-id={c.user.id} class="rounded-lg border border-slate-200 bg-white p-3">
                <a href={`/messages/${c.user.id}`} onClick={linkClick} class="flex flex-wrap items-baseline gap-2 focus-visible:outline-2 focus-visible:outline-blue-600">
                  <span class="font-semibold text-blue-900 underline">{c.user.display_name}</span>
                  {c.unread > 0 && (
                    <span data-testid="conversation-unread" class="rounded-full bg-red-600 px-1.5 text-xs text-white">
                      <span aria-hidden="true">{c.unread}</span>
                      <span class="sr-only">{t('chat.unread', { count: c.unread })}</span>
                    </span>
                  )}
                  {c.last_message && (
                    <span class="w-full truncate text-sm text-slate-700">
                      {c.last_message.sender.id === app.user?.id ? t('dm.you') : c.last_message.sender.display_name}: {c.last_message.body}
                      <span class="ml-2 text-xs text-slate-500">{new Date(c.last_message.created_at).toLocaleString(lang)}</span>
                    </span>
                  )}
                </a>
              </li>
            ))}
          </ul>
        )}
      </div>
    </Layout>
  );
}

export function ConversationPage({ userId }: { userId: number }) {
  const { t, lang } = useI18n();
  const app = useApp();
  const [thread, setThread] = useState<DmThread | null>(null);
  const [, setTick] = useState(0);
  const [name, setName] = useState<string | null>(null);
  const [body, setBody] = useState('');
  const listRef = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const prev = useRef<{ first: number | null; height: number }>({ first: null, height: 0 });

  useEffect(() => {
    let cancelled = false;
    api.getProfile(userId).then(
      (p) => !cancelled && setName(p.user.display_name),
      () => {},
    );
    return () => {
      cancelled = true;
    };
  }, [userId]);

  const live = app.live;
  const me = app.user;
  const inbox = app.dm;
  useEffect(() => {
    if (!live || !me) return;
    const th = new DmThread(
      live,
      me,
      userId,
      () => setTick((v) => v + 1),
      () => inbox?.markRead(userId),
    );
    setThread(th);
    th.start();
    inbox?.setOpen(userId);
    return () => {
      th.stop();
      if (inbox?.openWith() === userId) inbox.setOpen(null);
      setThread(null);
    };
  }, [live, me?.id, userId, inbox]);

  const view = thread?.view() ?? null;
  const first = view && view.messages.length ? view.messages[0].seq : null;
  const count = view ? view.messages.length + view.pending.length : 0;
  useLayoutEffect(() => {
    const el = listRef.current;
    if (!el) return;
    const p = prev.current;
    if (p.first !== null && first !== null && first < p.first && !atBottom.current) el.scrollTop += el.scrollHeight - p.height;
    else if (atBottom.current) el.scrollTop = el.scrollHeight;
    prev.current = { first, height: el.scrollHeight };
  }, [first, count]);

  function onScroll() {
    const el = listRef.current;
    if (!el || !thread || !view) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    prev.current = { first, height: el.scrollHeight };
    if (el.scrollTop < 40 && view.hasOlder && !view.loadingOlder) void thread.loadOlder();
  }

  function submit(e?: Event) {
    e?.preventDefault();
    if (thread && thread.send(body)) {
      setBody('');
      atBottom.current = true;
    }
  }

  const title = name ?? t('dm.title');
  return (
    <Layout titleKey="dm.title">
      <div class="flex flex-col gap-3" data-testid="conversation-view" data-user-id={userId}>
        <div class="flex flex-wrap items-center justify-between gap-2">
          <h1 class="text-2xl font-bold" data-testid="conversation-name">
            {title}
          </h1>
          <ConnIndicator state={app.connState} />
        </div>
        <a href="/messages" onClick={linkClick} class={linkClass}>
          {t('dm.back')}
        </a>
        {view?.error && <ErrorAlert>{view.error.code === 'not_found' ? t('dm.notFound') : errorMessage(view.error)}</ErrorAlert>}
        <div
          ref={listRef}
          onScroll={onScroll}
          role="log"
          aria-label={t('dm.with', { name: title })}
          data-testid="dm-messages"
          tabIndex={0}
          class="h-96 overflow-y-auto rounded-md border border-slate-200 bg-slate-50 p-2 focus-visible:outline-2 focus-visible:outline-blue-600"
        >
          <ol class="flex flex-col gap-2">
            {view?.hasOlder && (
              <li class="self-center">
                <button type="button" class={chatSmallButton} disabled={view.loadingOlder} onClick={() => void thread?.loadOlder()}>
                  {view.loadingOlder ? t('app.loading') : t('chat.loadOlder')}
                </button>
              </li>
            )}
            {view && !view.loaded && !view.error && (
              <li class="self-center text-sm text-slate-600" role="status">
                {t('app.loading')}
              </li>
            )}
            {view?.loaded && view.messages.length === 0 && view.pending.length === 0 && (
              <li class="self-center text-sm text-slate-600">{t('dm.noMessages')}</li>
            )}
            {view?.messages.map((m) => {
              const mine = m.sender.id === me?.id;
              const read = mine && m.seq <= view.readByOther;
              const time = new Date(m.created_at);
              return (
                <li
                  key={m.seq}
                  data-testid="dm-message"
                  data-seq={m.seq}
                  data-mine={mine ? 'true' : 'false'}
                  class={`flex max-w-[85%] flex-col gap-1 rounded-md border border-slate-200 px-3 py-2 ${mine ? 'self-end bg-blue-50' : 'self-start bg-white'}`}
                >
                  <div class="flex flex-wrap items-baseline gap-2 text-xs text-slate-600">
                    <span class="font-semibold text-slate-900">{m.sender.display_name}</span>
                    <time dateTime={time.toISOString()}>{time.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' })}</time>
                    {read && (
                      <span data-testid="read-check" class="font-bold text-emerald-700" title={t('dm.read')}>
                        <span aria-hidden="true">✓</span>
                        <span class="sr-only">{t('dm.read')}</span>
                      </span>
                    )}
                  </div>
                  <p class="whitespace-pre-wrap break-words text-slate-900" data-testid="dm-body">
                    {m.body}
                  </p>
                </li>
              );
            })}
            {view?.pending.map((p) => (
              <li
                key={p.client_id}
                data-testid="dm-pending"
                data-client-id={p.client_id}
                class="self-end rounded-md border border-dashed border-slate-400 bg-white px-3 py-2 text-slate-700"
              >
                <p class="whitespace-pre-wrap">{p.body}</p>
                {p.failed ? (
                  <p class="mt-1 flex flex-wrap items-center gap-2 text-xs text-red-800">
                    {t('chat.failed', { reason: p.failed === 'not_found' ? t('dm.notFound') : errorMessage({ code: p.failed }) })}
                    <button type="button" class={chatSmallButton} onClick={() => thread?.retry(p.client_id)}>
                      {t('chat.retry')}
                    </button>
                    <button type="button" class={chatSmallButton} onClick={() => thread?.discard(p.client_id)}>
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
        <Composer id="dm-input" label={t('dm.composer', { name: title })} body={body} onInput={setBody} onSubmit={submit} />
      </div>
    </Layout>
  );
}
