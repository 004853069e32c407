// The files chosen for upload and the work of sending them, one at a time, to
// a post or to the study's recruiting post (the post editor and the study
// page share this). A file over the server's `upload_max_bytes` is refused on
// the client, when chosen and again before sending: no request is made for it.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { ApiError, FileInfo } from './api';
import { toApiError } from './forms';
import { knownLimits, type Limits, loadLimits, tooLarge } from './limits';
import { tooLargeError, type UploadHandle, type UploadTarget, uploadAttachment } from './upload';

export type UploadState = 'queued' | 'uploading' | 'done' | 'error';

export interface Upload {
  key: number;
  file: File;
  state: UploadState;
  /** Bytes of the body sent so far. */
  loaded: number;
  error: ApiError | null;
  /** The stored file, once `done`. */
  info: FileInfo | null;
}

/** Attempts after a `busy` answer before the file counts as failed. */
const BUSY_RETRIES = 3;

export function percent(u: Upload): number {
  if (u.state === 'done') return 100;
  if (u.file.size === 0) return 0;
  return Math.min(100, Math.floor((u.loaded / u.file.size) * 100));
}

/**
 * Whether a row will become an attachment if the upload goes on: waiting,
 * sending, or failed and to be retried. Stored rows are counted by the caller
 * (they are in the post's file list), and a file refused for its size never
 * will be.
 */
export function takesSlot(u: Upload): boolean {
  if (u.state === 'done') return false;
  return !(u.state === 'error' && u.error?.code === 'payload_too_large');
}

/** How many more files may be chosen for a post with `stored` files (null: not known yet). */
export function slotsLeft(stored: number, uploads: Upload[], limits: Limits | null): number | null {
  if (!limits) return null;
  return Math.max(0, limits.attachments_per_post - stored - uploads.filter(takesSlot).length);
}

export function useUploadQueue() {
  const [uploads, setUploads] = useState<Upload[]>([]);
  const nextKey = useRef(1);
  const active = useRef<UploadHandle | null>(null);
  const alive = useRef(true);

  // Leaving the page stops an upload in flight.
  useEffect(() => {
    alive.current = true;
    return () => {
      alive.current = false;
      active.current?.abort();
    };
  }, []);

  const patch = useCallback(
    (key: number, change: Partial<Upload>) => setUploads((list) => list.map((u) => (u.key === key ? { ...u, ...change } : u))),
    [],
  );

  /** Queue chosen files; one over the per-file limit is marked failed at once. */
  const add = useCallback((files: File[]) => {
    const limits = knownLimits();
    const rows = files.map((file): Upload => {
      const key = nextKey.current++;
      return tooLarge(file.size, limits)
        ? { key, file, state: 'error', loaded: 0, error: tooLargeError(), info: null }
        : { key, file, state: 'queued', loaded: 0, error: null, info: null };
    });
    setUploads((list) => [...list, ...rows]);
  }, []);

  const remove = useCallback((key: number) => setUploads((list) => list.filter((u) => u.key !== key)), []);
  const clearDone = useCallback(() => setUploads((list) => list.filter((u) => u.state !== 'done')), []);

  /** One file; a `busy` server (too many uploads at once) is asked again after its Retry-After. */
  async function uploadOne(target: UploadTarget, u: Upload, maxBytes: number | null): Promise<FileInfo> {
    if (maxBytes !== null && u.file.size > maxBytes) throw tooLargeError();
    for (let attempt = 0; ; attempt++) {
      patch(u.key, { state: 'uploading', loaded: 0, error: null });
      const handle = uploadAttachment(target, u.file, (loaded) => patch(u.key, { loaded }), maxBytes);
      active.current = handle;
      try {
        return await handle.done;
      } catch (e) {
        const err = toApiError(e);
        if (err.code !== 'busy' || attempt >= BUSY_RETRIES || !alive.current) throw err;
        await new Promise((r) => setTimeout(r, (err.retryAfter ?? 1) * 1000));
      } finally {
        active.current = null;
      }
    }
  }

  /**
   * Upload the files of `list` not yet stored, one at a time; `onStored` gets
   * each stored file. True when all of them are stored.
   */
  async function uploadAll(target: UploadTarget, list: Upload[], onStored: (file: FileInfo) => void): Promise<boolean> {
    // Usually answered already (the picker asked on mount); a failed read leaves the check to the server.
    const limits = await loadLimits().catch(() => null);
    const maxBytes = limits?.upload_max_bytes ?? null;
    let ok = true;
    for (const u of list) {
      if (u.state === 'done') continue;
      if (!alive.current) return false;
      try {
        const info = await uploadOne(target, u, maxBytes);
        patch(u.key, { state: 'done', loaded: u.file.size, error: null, info });
        onStored(info);
      } catch (e) {
        if (!alive.current) return false;
        patch(u.key, { state: 'error', error: toApiError(e) });
        ok = false;
      }
    }
    return ok;
  }

  return { uploads, add, remove, clearDone, uploadAll, alive };
}
