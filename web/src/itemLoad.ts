// The load state of a page that shows one thing of a study (a task, a post)
// and reads it again on live events (shared by the task page and the post
// page). Only the newest of overlapping reads is applied; a failed re-read
// keeps what is shown; `not_found` after it was shown means it was deleted.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { ApiError } from './api';
import { toApiError } from './forms';

export type ItemLoad<T> = { state: 'loading' } | { state: 'error'; error: ApiError } | ({ state: 'ready' } & T);

/** `read` is run on mount and whenever `inputs` change, and by `reload`. */
export function useItemLoad<T extends object>(read: () => Promise<T>, inputs: ReadonlyArray<unknown>) {
  const [load, setLoad] = useState<ItemLoad<T>>({ state: 'loading' });
  const [deleted, setDeleted] = useState(false);
  const seq = useRef(0);
  const loaded = useRef(false);

  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const value = await read();
      if (mine !== seq.current) return;
      loaded.current = true;
      setLoad({ state: 'ready', ...value });
    } catch (e) {
      if (mine !== seq.current) return;
      const err = toApiError(e);
      // Shown before and gone now: it was deleted.
      if (err.code === 'not_found' && loaded.current) setDeleted(true);
      setLoad((prev) => (prev.state === 'ready' ? prev : { state: 'error', error: err }));
    }
  }, inputs);

  useEffect(() => {
    void reload();
  }, [reload]);

  return { load, setLoad, reload, deleted, setDeleted };
}
