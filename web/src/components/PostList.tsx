// A task's posts, newest first: a title search box (debounced) and infinite
// scroll over the server's keyset cursor (an IntersectionObserver on a
// sentinel, plus a "Load more" button for keyboards). Posts are kept by id, so
// a page overlapping a live-added post never shows it twice. Live
// `post_created/updated/deleted` events for the task are applied in place.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, PostSummary } from '../api';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { inputClass } from '../pages/Studies';
import { linkClick } from '../router';
import { useStudyEvents } from '../studyLive';
import { titleMatches } from '../tasks';
import { ErrorAlert } from './Alert';
import { Button } from './Button';

const SEARCH_DEBOUNCE_MS = 300;
const PAGE_SIZE = 20;

/** `prev` followed by the posts of `page` not already in it. */
function appendNew(prev: PostSummary[], page: PostSummary[]): PostSummary[] {
  const seen = new Set(prev.map((p) => p.id));
  return [...prev, ...page.filter((p) => !seen.has(p.id))];
}

export function PostList({ studyId, taskId }: { studyId: number; taskId: number }) {
  const { t, lang } = useI18n();
  const [q, setQ] = useState('');
  const [appliedQ, setAppliedQ] = useState('');
  const [items, setItems] = useState<PostSummary[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const generation = useRef(0);
  const sentinel = useRef<HTMLDivElement>(null);
  const qRef = useRef(appliedQ);
  qRef.current = appliedQ;

  useEffect(() => {
    const timer = setTimeout(() => setAppliedQ(q.trim()), SEARCH_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [q]);

  const fetchPage = useCallback(
    async (from: string | null) => {
      const gen = from === null ? ++generation.current : generation.current;
      setLoading(true);
      setError(null);
      try {
        const page = await api.listPosts(studyId, taskId, { q: appliedQ, cursor: from, limit: PAGE_SIZE });
        if (gen !== generation.current) return;
        setItems((prev) => (from === null ? page.items : appendNew(prev, page.items)));
        setCursor(page.next_cursor);
        setLoaded(true);
      } catch (e) {
        if (gen === generation.current) setError(toApiError(e));
      } finally {
        if (gen === generation.current) setLoading(false);
      }
    },
    [studyId, taskId, appliedQ],
  );

  // A new search starts over from the first page.
  useEffect(() => {
    setItems([]);
    setCursor(null);
    setLoaded(false);
    void fetchPage(null);
  }, [fetchPage]);

  const loadMore = useCallback(() => {
    if (cursor && !loading && !error) void fetchPage(cursor);
  }, [cursor, loading, error, fetchPage]);

  useEffect(() => {
    const el = sentinel.current;
    if (!el || !cursor || typeof IntersectionObserver === 'undefined') return;
    const io = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) loadMore();
      },
      { rootMargin: '200px' },
    );
    io.observe(el);
    return () => io.disconnect();
  }, [cursor, loadMore]);

  useStudyEvents(
    studyId,
    {
      onEvent: (e) => {
        if (e.kind === 'post_created' && e.post.task_id === taskId) {
          if (titleMatches(e.post, qRef.current)) setItems((prev) => (prev.some((p) => p.id === e.post.id) ? prev : [e.post, ...prev]));
        } else if (e.kind === 'post_updated' && e.post.task_id === taskId) {
          setItems((prev) =>
            titleMatches(e.post, qRef.current) ? prev.map((p) => (p.id === e.post.id ? e.post : p)) : prev.filter((p) => p.id !== e.post.id),
          );
        } else if (e.kind === 'post_deleted' && e.task_id === taskId) {
          setItems((prev) => prev.filter((p) => p.id !== e.post_id));
        }
      },
      // Missed events: start over from the first page.
      onReconnect: () => void fetchPage(null),
    },
    { watch: false },
  );

  return (
    <section aria-labelledby="posts-h" class="flex flex-col gap-3" data-testid="post-list">
      <div class="flex flex-wrap items-center justify-between gap-2">
        <h2 id="posts-h" class="text-lg font-semibold">
          {t('posts.title')}
        </h2>
        <a
          href={`/studies/${studyId}/tasks/${taskId}/posts/new`}
          onClick={linkClick}
          class="inline-flex items-center rounded-md bg-blue-700 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-blue-800 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600"
        >
          {t('posts.new')}
        </a>
      </div>
      <form role="search" class="flex flex-col gap-1" onSubmit={(e) => {
          e.preventDefault();
          setAppliedQ(q.trim());
        }}
      >
        <label for="posts-q" class="text-sm font-medium text-slate-800">
          {t('posts.search')}
        </label>
        <input id="posts-q" type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} class={inputClass} />
      </form>
      {error && (
        <div class="flex flex-col items-start gap-2">
          <ErrorAlert>{errorMessage(error)}</ErrorAlert>
          <Button variant="secondary" onClick={() => void fetchPage(items.length ? cursor : null)}>
            {t('error.retry')}
          </Button>
        </div>
      )}
      {loaded && items.length === 0 && !error && (
        <p data-testid="posts-empty" class="rounded-lg border border-dashed border-slate-300 p-6 text-center text-slate-600">
          {appliedQ ? t('posts.noMatch') : t('posts.empty')}
        </p>
      )}
      <ul class="flex flex-col gap-2" aria-busy={loading} data-testid="posts">
        {items.map((p) => (
          <li key={p.id} data-testid="post-item" data-post-id={p.id} class="rounded-md border border-slate-200 bg-white p-3">
            <a
              href={`/studies/${studyId}/posts/${p.id}`}
              onClick={linkClick}
              class="font-semibold text-blue-900 hover:underline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600"
            >
              {p.title}
            </a>
            <p class="text-sm text-slate-600">
              {p.author.display_name} · <time dateTime={new Date(p.created_at).toISOString()}>{new Date(p.created_at).toLocaleString(lang)}</time>
              {p.attachment_count > 0 && ` · ${t('posts.attachmentCount', { count: p.attachment_count })}`}
            </p>
          </li>
        ))}
      </ul>
      <div ref={sentinel} aria-hidden="true" class="h-1" />
      {loading && (
        <p role="status" class="py-2 text-center text-slate-600">
          {t('app.loading')}
        </p>
      )}
      {cursor && !loading && !error && (
        <div class="flex justify-center">
          <Button variant="secondary" onClick={loadMore}>
            {t('posts.loadMore')}
          </Button>
        </div>
      )}
    </section>
  );
}
