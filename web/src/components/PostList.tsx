// A task's posts, newest first: a title search box (debounced) and infinite
// scroll over the server's keyset cursor (an IntersectionObserver on a
// sentinel, plus a "Load more" button for keyboards). Posts are kept by id, so
// a page overlapping a live-added post never shows it twice. Live
// `post_created/updated/deleted` events for the task are applied in place.
import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { PostSummary } from '../api';
import { useI18n } from '../i18n';
import { useInfiniteList } from '../infiniteList';
import { inputClass } from '../pages/Studies';
import { linkClick } from '../router';
import { useStudyEvents } from '../studyLive';
import { newer, titleMatches } from '../tasks';
import { ListError, ListTail } from './InfiniteList';

const SEARCH_DEBOUNCE_MS = 300;
const PAGE_SIZE = 20;

export function PostList({ studyId, taskId }: { studyId: number; taskId: number }) {
  const { t, lang } = useI18n();
  const [q, setQ] = useState('');
  const [appliedQ, setAppliedQ] = useState('');
  const qRef = useRef(appliedQ);
  qRef.current = appliedQ;

  useEffect(() => {
    const timer = setTimeout(() => setAppliedQ(q.trim()), SEARCH_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [q]);

  const list = useInfiniteList<PostSummary>(JSON.stringify([studyId, taskId, appliedQ]), (cursor) =>
    api.listPosts(studyId, taskId, { q: appliedQ, cursor, limit: PAGE_SIZE }),
  );
  const { items, setItems, loading, loaded, error } = list;

  useStudyEvents(
    studyId,
    {
      onEvent: (e) => {
        if (e.kind === 'post_created' && e.post.task_id === taskId) {
          if (titleMatches(e.post, qRef.current)) setItems((prev) => (prev.some((p) => p.id === e.post.id) ? prev : [e.post, ...prev]));
        } else if (e.kind === 'post_updated' && e.post.task_id === taskId) {
          setItems((prev) =>
            titleMatches(e.post, qRef.current) ? prev.map((p) => (p.id === e.post.id ? newer(p, e.post) : p)) : prev.filter((p) => p.id !== e.post.id),
          );
        } else if (e.kind === 'post_deleted' && e.task_id === taskId) {
          setItems((prev) => prev.filter((p) => p.id !== e.post_id));
        }
      },
      // Missed events: start over from the first page.
      onReconnect: () => void list.fetchPage(null),
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
      <ListError list={list} />
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
      <ListTail list={list} loadMoreLabel={t('posts.loadMore')} />
    </section>
  );
}
