// Helpers shared by the forms: client-side checks that mirror the server's
// rules (the server stays the authority), and the busy/error state of a form
// that sends one request at a time.
import { useState } from 'preact/hooks';
import { ApiError, isApiError } from './api';
import { t } from './i18n';

export const LOGIN_ID_RE = /^[a-z0-9_]{3,32}$/;
export const DISPLAY_NAME_MAX = 40;
export const PASSWORD_MIN_BYTES = 10;
export const PASSWORD_MAX_BYTES = 256;

export type FieldName = 'login_id' | 'display_name' | 'password';
/** Fields checked for being filled in: the auth forms', and the title of a task or a post. */
type RequiredField = FieldName | 'title';

// Client-side failures use the same shape as server errors, so one code path
// shows them (`required` is client-only; `validation_failed` matches the server).
function clientError(field: RequiredField, code: 'validation_failed' | 'required'): ApiError {
  return new ApiError(400, code, t(`field.${field}`), field);
}

export function required(values: Partial<Record<RequiredField, string>>): ApiError | null {
  for (const [field, value] of Object.entries(values) as [RequiredField, string][]) {
    const empty = field === 'password' ? value === '' : value.trim() === '';
    if (empty) return clientError(field, 'required');
  }
  return null;
}

export function validateSignup(v: { login_id: string; display_name: string; password: string }): ApiError | null {
  const missing = required(v);
  if (missing) return missing;
  if (!LOGIN_ID_RE.test(v.login_id)) return clientError('login_id', 'validation_failed');
  if ([...v.display_name].length > DISPLAY_NAME_MAX) return clientError('display_name', 'validation_failed');
  const bytes = new TextEncoder().encode(v.password).length;
  if (bytes < PASSWORD_MIN_BYTES || bytes > PASSWORD_MAX_BYTES) return clientError('password', 'validation_failed');
  return null;
}

/** Normalise anything thrown by a request into an ApiError. */
export function toApiError(e: unknown): ApiError {
  if (isApiError(e)) return e;
  return new ApiError(0, 'unknown', e instanceof Error ? e.message : String(e));
}

/**
 * Busy and error state for a form (or a row of buttons) that sends one request
 * at a time. `fail` shows an error (client-side checks use it too); `onError`
 * sees every error shown, e.g. to focus the field it names.
 */
export function useSubmit(onError?: (err: ApiError) => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  function fail(err: ApiError) {
    setError(err);
    onError?.(err);
  }

  /** Runs `fn` unless one is running; what it throws is shown as the error. */
  async function run(fn: () => Promise<unknown>) {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      fail(toApiError(e));
    } finally {
      setBusy(false);
    }
  }

  return { busy, error, fail, run };
}
