// The server's limits (`GET /api/limits`): read once per signed-in session and
// shared by every page. Uploads check them before sending anything (a body
// refused by its Content-Length may reach the browser as a reset connection
// rather than a readable 413), and pickers stop offering files once a post has
// as many as it may have. The server still checks everything itself.
import { useEffect, useState } from 'preact/hooks';
import * as api from './api';
import type { Limits } from './api';

export type { Limits };

let pending: Promise<Limits> | null = null;
let value: Limits | null = null;
/** Bumped by `resetLimits`, so an answer for an earlier session is dropped. */
let generation = 0;

/** The limits, fetched on first use; a failed read is tried again on the next call. */
export function loadLimits(): Promise<Limits> {
  if (pending) return pending;
  const gen = generation;
  const p = api.getLimits().then(
    (limits) => {
      if (gen === generation) value = limits;
      return limits;
    },
    (e) => {
      if (pending === p) pending = null;
      throw e;
    },
  );
  pending = p;
  return p;
}

/** The limits if they were read already (no request). */
export function knownLimits(): Limits | null {
  return value;
}

/** Forget them (sign-out or another user): the next session reads them again. */
export function resetLimits(): void {
  generation += 1;
  pending = null;
  value = null;
}

/** The limits for a component: null until the (single, shared) read has answered. */
export function useLimits(): Limits | null {
  const [limits, setLimits] = useState<Limits | null>(value);
  useEffect(() => {
    let alive = true;
    loadLimits().then(
      (l) => alive && setLimits(l),
      () => {}, // uploads still work; the server checks
    );
    return () => {
      alive = false;
    };
  }, []);
  return limits;
}

/** Whether `size` bytes exceed the per-file limit (false while the limits are unknown). */
export function tooLarge(size: number, limits: Limits | null): boolean {
  return limits !== null && size > limits.upload_max_bytes;
}
