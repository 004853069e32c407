// A list paged over the server's keyset cursor, with infinite scroll: an
// IntersectionObserver on a sentinel element loads the next page (shared by the
// study list and a task's posts; `components/InfiniteList.tsx` renders the
// sentinel, the loading status and the "Load more" button). Items are kept by
// id, so a page overlapping what is already shown never shows an item twice.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { ApiError, Page } from './api';
import { toApiError } from './forms';

/** `prev` followed by the items of `page` not already in it. */
function appendNew<T extends { id: number }>(prev: T[], page: T[]): T[] {
  const seen = new Set(prev.map((x) => x.id));
  return [...prev, ...page.filter((x) => !seen.has(x.id))];
}

/**
 * `fetch` reads one page (`null`: the first). `key` names the query: when it
 * changes the list starts over from the first page, and an answer for an
 * older query is dropped.
 */
export function useInfiniteList<T extends { id: number }>(key: string, fetch: (cursor: string | null) => Promise<Page<T>>) {
  const [items, setItems] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const generation = useRef(0);
  // The generation whose answer set the `cursor` shown now, and whether a page
  // is on its way. A cursor belongs to the query that produced it: a load
  // fired from a stale closure (an observer created just before the query
  // changed sees the old cursor) would read the new query past the old
  // query's position and append the wrong items to the new first page.
  const cursorGeneration = useRef(-1);
  const inFlight = useRef(false);
  const sentinel = useRef<HTMLDivElement>(null);
  // The newest `fetch`: it reads the query that `key` names.
  const fetchRef = useRef(fetch);
  fetchRef.current = fetch;

  const fetchPage = useCallback(
    async (from: string | null) => {
      if (from !== null && (cursorGeneration.current !== generation.current || inFlight.current)) return;
      const gen = from === null ? ++generation.current : generation.current;
      inFlight.current = true;
      setLoading(true);
      setError(null);
      try {
        const page = await fetchRef.current(from);
        if (gen !== generation.current) return;
        setItems((prev) => (from === null ? page.items : appendNew(prev, page.items)));
        setCursor(page.next_cursor);
        cursorGeneration.current = gen;
        setLoaded(true);
      } catch (e) {
        if (gen === generation.current) setError(toApiError(e));
      } finally {
        if (gen === generation.current) {
          inFlight.current = false;
          setLoading(false);
        }
      }
    },
    [key],
  );

  // A new query starts over from the first page.
  useEffect(() => {
    setItems([]);
    setCursor(null);
    setLoaded(false);
    void fetchPage(null);
  }, [fetchPage]);

  const loadMore = useCallback(() => {
    if (cursor && !loading && !error) void fetchPage(cursor);
  }, [cursor, loading, error, fetchPage]);

  /** After an error: the page that failed (the first one when nothing is shown). */
  const retry = () => void fetchPage(items.length ? cursor : null);

  // Infinite scroll: load the next page when the sentinel scrolls into view.
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

  return { items, setItems, cursor, loading, loaded, error, fetchPage, loadMore, retry, sentinel };
}

export type InfiniteList<T extends { id: number }> = ReturnType<typeof useInfiniteList<T>>;
