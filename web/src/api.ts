// Thin fetch wrapper for the StudyOn JSON API.
//
// Every request is same-origin with cookies (`credentials: 'same-origin'`);
// the browser adds the Origin header the server checks on state-changing
// requests. Any non-2xx answer (or a network failure) is thrown as an
// `ApiError` carrying the server's stable error code.

export interface User {
  id: number;
  login_id: string;
  display_name: string;
}

/** Error codes the client knows; the server may send others. */
export type ApiErrorCode =
  | 'validation_failed'
  | 'login_id_taken'
  | 'display_name_taken'
  | 'invalid_credentials'
  | 'rate_limited'
  | 'unauthenticated'
  | 'network'
  | 'unknown'
  | (string & {});

export class ApiError extends Error {
  /** HTTP status; 0 when the server could not be reached. */
  readonly status: number;
  /** Stable snake_case code from the server (`network`/`unknown` are client-side). */
  readonly code: ApiErrorCode;
  /** The offending field, for validation errors. */
  readonly field: string | null;
  /** Seconds from the Retry-After header, when present. */
  readonly retryAfter: number | null;

  constructor(
    status: number,
    code: ApiErrorCode,
    message: string,
    field: string | null = null,
    retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

function parseRetryAfter(value: string | null): number | null {
  if (!value) return null;
  const secs = Number(value);
  if (Number.isFinite(secs) && secs >= 0) return Math.ceil(secs);
  const date = Date.parse(value);
  if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  return null;
}

/**
 * Send a JSON request and return the parsed JSON body (or `undefined` for
 * 204 / empty bodies). Throws `ApiError` on failure.
 */
export async function request<T>(
  method: Method,
  path: string,
  body?: unknown,
  init?: { signal?: AbortSignal },
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';

  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal: init?.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', e instanceof Error ? e.message : String(e));
  }

  const text = await res.text().catch(() => '');
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }

  if (!res.ok) {
    const obj = (data && typeof data === 'object' ? data : {}) as Record<string, unknown>;
    // No JSON error body: a gateway/proxy answered because the server is down.
    const code =
      typeof obj.error === 'string' ? obj.error : [502, 503, 504].includes(res.status) ? 'network' : 'unknown';
    const message =
      typeof obj.message === 'string' ? obj.message : `HTTP ${res.status} ${res.statusText}`.trim();
    const field = typeof obj.field === 'string' ? obj.field : null;
    throw new ApiError(res.status, code, message, field, parseRetryAfter(res.headers.get('Retry-After')));
  }
  return data as T;
}

// ---- auth -----------------------------------------------------------------

interface UserResponse {
  user: User;
}

export async function signup(input: {
  login_id: string;
  display_name: string;
  password: string;
}): Promise<User> {
  return (await request<UserResponse>('POST', '/api/auth/signup', input)).user;
}

export async function login(input: { login_id: string; password: string }): Promise<User> {
  return (await request<UserResponse>('POST', '/api/auth/login', input)).user;
}

export async function logout(): Promise<void> {
  await request<void>('POST', '/api/auth/logout');
}

/** The current user, or `null` when not logged in (401). */
export async function me(): Promise<User | null> {
  try {
    return (await request<UserResponse>('GET', '/api/auth/me')).user;
  } catch (e) {
    if (isApiError(e) && e.status === 401) return null;
    throw e;
  }
}
