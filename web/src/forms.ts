// Helpers shared by the auth forms: client-side checks that mirror the
// server's rules (the server stays the authority) and error focusing.
import { ApiError, isApiError } from './api';
import { t } from './i18n';

export const LOGIN_ID_RE = /^[a-z0-9_]{3,32}$/;
export const DISPLAY_NAME_MAX = 40;
export const PASSWORD_MIN_BYTES = 10;
export const PASSWORD_MAX_BYTES = 256;

export type FieldName = 'login_id' | 'display_name' | 'password';

// Client-side failures use the same shape as server errors, so one code path
// shows them (`required` is client-only; `validation_failed` matches the server).
function clientError(field: FieldName, code: 'validation_failed' | 'required'): ApiError {
  return new ApiError(400, code, t(`field.${field}`), field);
}

export function required(values: Partial<Record<FieldName, string>>): ApiError | null {
  for (const [field, value] of Object.entries(values) as [FieldName, string][]) {
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
