import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import { type StudyQuery, STUDY_STATUSES, type StudyStatus, type StudySummary } from '../api';
import { ListError, ListTail } from '../components/InfiniteList';
import { Layout } from '../components/Layout';
import { Chips, StudyCard } from '../components/Study';
import { useI18n } from '../i18n';
import { useInfiniteList } from '../infiniteList';
import { statusText } from '../notifications';
import { linkClick } from '../router';

const SEARCH_DEBOUNCE_MS = 300;
const PAGE_SIZE = 20;

export const inputClass =
  'rounded-md border border-slate-300 bg-white px-3 py-2 text-base shadow-sm focus-visible:border-blue-600 focus-visible:outline-2 focus-visible:outline-offset-1 focus-visible:outline-blue-600';

/** Split "a, b c" style input into normalized tags (trimmed, lower-cased, no duplicates). */
export function parseTags(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

/** Filters kept in the address (`?q=&status=&tag=&sort=`) so Back and shared links restore them. */
function initialFilters(): { q: string; status: StudyStatus | ''; tags: string[]; sort: 'newest' | 'deadline' } {
  const p = new URLSearchParams(location.search);
  const status = p.get('status') ?? '';
  return {
    q: p.get('q') ?? '',
    status: (STUDY_STATUSES as readonly string[]).includes(status) ? (status as StudyStatus) : '',
    tags: [...new Set(p.getAll('tag').flatMap(parseTags))],
    sort: p.get('sort') === 'deadline' ? 'deadline' : 'newest',
  };
}

export function StudiesPage() {
  const { t } = useI18n();
  const [init] = useState(initialFilters);
  const [q, setQ] = useState(init.q);
  const [appliedQ, setAppliedQ] = useState(init.q);
  const [status, setStatus] = useState<StudyStatus | ''>(init.status);
  const [tags, setTags] = useState<string[]>(init.tags);
  const [tagText, setTagText] = useState('');
  const [sort, setSort] = useState<'newest' | 'deadline'>(init.sort);

  // Debounce typing in the search box.
  useEffect(() => {
    const timer = setTimeout(() => setAppliedQ(q.trim()), SEARCH_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [q]);

  const query: StudyQuery = { q: appliedQ, status, tags, sort, limit: PAGE_SIZE };
  const queryKey = JSON.stringify(query);

  // Mirror the filters into the address without adding history entries.
  useEffect(() => {
    const p = new URLSearchParams();
    if (appliedQ) p.set('q', appliedQ);
    if (status) p.set('status', status);
    for (const tag of tags) p.append('tag', tag);
    if (sort !== 'newest') p.set('sort', sort);
    const search = p.toString();
    const url = `/studies${search ? `?${search}` : ''}`;
    if (location.pathname === '/studies' && url !== location.pathname + location.search) history.replaceState(null, '', url);
  }, [queryKey]);

  const list = useInfiniteList<StudySummary>(queryKey, (cursor) => api.listStudies({ ...query, cursor }));
  const { items, loading, loaded, error } = list;

  function addTags(text: string) {
    const add = parseTags(text);
    if (add.length) setTags((prev) => [...prev, ...add.filter((x) => !prev.includes(x))]);
    setTagText('');
  }

  return (
    <Layout titleKey="studies.title">
      <div class="flex flex-col gap-6">
        <div class="flex flex-wrap items-center justify-between gap-4">
          <h1 class="text-2xl font-bold">{t('studies.title')}</h1>
          <a
            href="/studies/new"
            onClick={linkClick}
            class="inline-flex items-center rounded-md bg-blue-700 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-blue-800 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600"
          >
            {t('studies.new')}
          </a>
        </div>

        <form
          role="search"
          class="grid gap-4 rounded-lg border border-slate-200 bg-white p-4 sm:grid-cols-2"
          onSubmit={(e) => {
            e.preventDefault();
            setAppliedQ(q.trim());
            if (tagText.trim()) addTags(tagText);
          }}
        >
          <div class="flex flex-col gap-1 sm:col-span-2">
            <label for="studies-q" class="text-sm font-medium text-slate-800">
              {t('studies.search')}
            </label>
            <input
              id="studies-q"
              type="search"
              value={q}
              onInput={(e) => setQ(e.currentTarget.value)}
              class={inputClass}
            />
          </div>
          <div class="flex flex-col gap-1">
            <label for="studies-status" class="text-sm font-medium text-slate-800">
              {t('studies.status')}
            </label>
            <select
              id="studies-status"
              value={status}
              onChange={(e) => setStatus(e.currentTarget.value as StudyStatus | '')}
              class={inputClass}
            >
              <option value="">{t('studies.statusAll')}</option>
              {STUDY_STATUSES.map((s) => (
                <option key={s} value={s}>
                  {statusText(s)}
                </option>
              ))}
            </select>
          </div>
          <div class="flex flex-col gap-1">
            <label for="studies-sort" class="text-sm font-medium text-slate-800">
              {t('studies.sort')}
            </label>
            <select
              id="studies-sort"
              value={sort}
              onChange={(e) => setSort(e.currentTarget.value as 'newest' | 'deadline')}
              class={inputClass}
            >
              <option value="newest">{t('studies.sortNewest')}</option>
              <option value="deadline">{t('studies.sortDeadline')}</option>
            </select>
          </div>
          <div class="flex flex-col gap-2 sm:col-span-2">
            <label for="studies-tag" class="text-sm font-medium text-slate-800">
              {t('studies.tagFilter')}
            </label>
            <input
              id="studies-tag"
              type="text"
              value={tagText}
              aria-describedby="studies-tag-hint"
              onInput={(e) => {
                const v = e.currentTarget.value;
                if (v.includes(',')) addTags(v);
                else setTagText(v);
              }}
              onKeyDown={(e) => {
                if (e.key === 'Enter') {
                  e.preventDefault();
                  addTags(tagText);
                } else if (e.key === 'Backspace' && !tagText && tags.length) {
                  setTags(tags.slice(0, -1));
                }
              }}
              class={inputClass}
            />
            <p id="studies-tag-hint" class="text-xs text-slate-600">
              {t('studies.tagHint')}
            </p>
            <Chips
              items={tags}
              onRemove={(tag) => setTags(tags.filter((x) => x !== tag))}
              removeLabel={(tag) => t('tags.remove', { tag })}
            />
          </div>
        </form>

        <ListError list={list} />

        <section aria-labelledby="studies-results" aria-busy={loading}>
          <h2 id="studies-results" class="sr-only">
            {t('studies.results')}
          </h2>
          {loaded && items.length === 0 && !error && (
            <p data-testid="studies-empty" class="rounded-lg border border-dashed border-slate-300 p-6 text-center text-slate-600">
              {t('studies.empty')}
            </p>
          )}
          <ul class="flex flex-col gap-3" data-testid="study-list">
            {items.map((s) => (
              <li key={s.id}>
                <StudyCard study={s} />
              </li>
            ))}
          </ul>
          <ListTail list={list} loadMoreLabel={t('studies.loadMore')} roomy />
        </section>
      </div>
    </Layout>
  );
}
