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

  if (!res.ok) throw errorFromResponse(res.status, res.statusText, data, res.headers.get('Retry-After'));
  return data as T;
}

/** The `ApiError` for a non-2xx answer with the parsed JSON body `data` (shared with XHR uploads). */
export function errorFromResponse(status: number, statusText: string, data: unknown, retryAfter: string | null): ApiError {
  const obj = (data && typeof data === 'object' ? data : {}) as Record<string, unknown>;
  // No JSON error body: a gateway/proxy answered because the server is down.
  const code = typeof obj.error === 'string' ? obj.error : [502, 503, 504].includes(status) ? 'network' : 'unknown';
  const message = typeof obj.message === 'string' ? obj.message : `HTTP ${status} ${statusText}`.trim();
  const field = typeof obj.field === 'string' ? obj.field : null;
  return new ApiError(status, code, message, field, parseRetryAfter(retryAfter));
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

// ---- studies --------------------------------------------------------------

export type StudyStatus = 'recruiting' | 'in_progress' | 'completed';
export const STUDY_STATUSES: readonly StudyStatus[] = ['recruiting', 'in_progress', 'completed'];
export type StudyRole = 'none' | 'applicant' | 'member' | 'leader';
export type ApplicationStatus = 'pending' | 'accepted' | 'rejected' | 'withdrawn';

export interface StudySummary {
  id: number;
  title: string;
  tags: string[];
  status: StudyStatus;
  capacity: number;
  member_count: number;
  recruit_opens_on: string;
  recruit_closes_on: string;
  starts_on: string;
  ends_on: string;
  leader: User;
  created_at: number;
}

export interface StudyDetail extends StudySummary {
  description: string;
  /** Server-sanitized HTML rendered from `description`. */
  description_html: string;
  my_role: StudyRole;
  bookmarked: boolean;
  my_application: { id: number; status: ApplicationStatus } | null;
  /** Files of the recruiting post (sent to members and the leader). */
  attachments?: FileInfo[];
}

export interface StudyInput {
  title: string;
  description: string;
  tags: string[];
  capacity: number;
  recruit_opens_on: string;
  recruit_closes_on: string;
  starts_on: string;
  ends_on: string;
}
export type StudyField = keyof StudyInput;

export interface Review {
  id: number;
  study_id: number;
  study_title: string;
  author: User;
  reviewee: User;
  rating: number;
  body: string;
  created_at: number;
  updated_at: number;
}

export interface StudyRef {
  id: number;
  title: string;
}

export interface Applicant {
  user: User;
  review_average: number | null;
  review_count: number;
  reviews: Review[];
  completed_studies: StudyRef[];
}

export interface Application {
  id: number;
  study_id: number;
  status: ApplicationStatus;
  message: string;
  reason: string | null;
  created_at: number;
  decided_at: number | null;
  applicant: Applicant;
}

export type MyApplication = Omit<Application, 'applicant'> & { study: StudySummary };

export interface Member {
  user: User;
  /** `leader` or `member` (the roles a member can have). */
  role: StudyRole;
  joined_at: number;
}

export interface Profile {
  user: User;
  review_average: number | null;
  review_count: number;
  reviews: Review[];
  completed_studies: StudyRef[];
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface StudyQuery {
  q?: string;
  status?: StudyStatus | '';
  tags?: string[];
  sort?: 'newest' | 'deadline';
  cursor?: string | null;
  limit?: number;
}

export function studiesUrl(query: StudyQuery): string {
  const params = new URLSearchParams();
  if (query.q) params.set('q', query.q);
  if (query.status) params.set('status', query.status);
  for (const tag of query.tags ?? []) params.append('tag', tag);
  if (query.sort) params.set('sort', query.sort);
  if (query.cursor) params.set('cursor', query.cursor);
  params.set('limit', String(query.limit ?? 20));
  return `/api/studies?${params}`;
}

export function listStudies(query: StudyQuery, init?: { signal?: AbortSignal }): Promise<Page<StudySummary>> {
  return request<Page<StudySummary>>('GET', studiesUrl(query), undefined, init);
}

export async function createStudy(input: StudyInput): Promise<StudyDetail> {
  return (await request<{ study: StudyDetail }>('POST', '/api/studies', input)).study;
}

export async function getStudy(id: number): Promise<StudyDetail> {
  return (await request<{ study: StudyDetail }>('GET', `/api/studies/${id}`)).study;
}

export async function updateStudy(id: number, input: Partial<StudyInput>): Promise<StudyDetail> {
  return (await request<{ study: StudyDetail }>('PATCH', `/api/studies/${id}`, input)).study;
}

/** Deletes the study with everything in it and all of its files (leader). */
export async function deleteStudy(id: number): Promise<void> {
  await request<void>('DELETE', `/api/studies/${id}`);
}

export async function setStudyStatus(id: number, status: StudyStatus): Promise<StudyDetail> {
  return (await request<{ study: StudyDetail }>('POST', `/api/studies/${id}/status`, { status })).study;
}

export async function toggleBookmark(id: number): Promise<boolean> {
  return (await request<{ bookmarked: boolean }>('POST', `/api/studies/${id}/bookmark`)).bookmarked;
}

export async function listMembers(id: number): Promise<Member[]> {
  return (await request<{ items: Member[] }>('GET', `/api/studies/${id}/members`)).items;
}

export async function apply(id: number, message: string): Promise<Omit<Application, 'applicant'>> {
  return (await request<{ application: Application }>('POST', `/api/studies/${id}/applications`, { message })).application;
}

export async function listApplications(id: number): Promise<Application[]> {
  return (await request<{ items: Application[] }>('GET', `/api/studies/${id}/applications`)).items;
}

export async function withdrawApplication(id: number, aid: number): Promise<void> {
  await request<unknown>('POST', `/api/studies/${id}/applications/${aid}/withdraw`);
}

export async function decideApplication(id: number, aid: number, accept: boolean, reason?: string): Promise<void> {
  const body: { accept: boolean; reason?: string } = { accept };
  if (reason) body.reason = reason;
  await request<unknown>('POST', `/api/studies/${id}/applications/${aid}/decision`, body);
}

export async function leaveStudy(id: number): Promise<void> {
  await request<void>('POST', `/api/studies/${id}/leave`);
}

export async function transferLeader(id: number, userId: number): Promise<StudyDetail> {
  return (await request<{ study: StudyDetail }>('POST', `/api/studies/${id}/transfer`, { user_id: userId })).study;
}

export async function removeMember(id: number, userId: number, ban: boolean): Promise<void> {
  await request<void>('POST', `/api/studies/${id}/members/${userId}/remove`, { ban });
}

export async function createReview(
  id: number,
  input: { reviewee_id: number; rating: number; body: string },
): Promise<Review> {
  return (await request<{ review: Review }>('POST', `/api/studies/${id}/reviews`, input)).review;
}

export async function updateReview(rid: number, input: { rating?: number; body?: string }): Promise<Review> {
  return (await request<{ review: Review }>('PATCH', `/api/reviews/${rid}`, input)).review;
}

export function getProfile(userId: number): Promise<Profile> {
  return request<Profile>('GET', `/api/users/${userId}/profile`);
}

export function myStudies(): Promise<{ leading: StudySummary[]; joined: StudySummary[]; applications: MyApplication[] }> {
  return request('GET', '/api/me/studies');
}

export async function myBookmarks(): Promise<StudySummary[]> {
  return (await request<{ items: StudySummary[] }>('GET', '/api/me/bookmarks')).items;
}

// ---- notifications --------------------------------------------------------

export type NotificationKind =
  | 'application_received'
  | 'application_decided'
  | 'study_status_changed'
  | 'recruitment_closed'
  | 'study_starting'
  | 'removed_from_study'
  | 'review_received';

export interface AppNotification {
  id: number;
  kind: NotificationKind | (string & {});
  payload: Record<string, unknown>;
  created_at: number;
  read: boolean;
}

export function listNotifications(cursor?: string | null, limit = 20): Promise<Page<AppNotification>> {
  const params = new URLSearchParams({ limit: String(limit) });
  if (cursor) params.set('cursor', cursor);
  return request<Page<AppNotification>>('GET', `/api/notifications?${params}`);
}

export async function unreadCount(): Promise<number> {
  return (await request<{ count: number }>('GET', '/api/notifications/unread_count')).count;
}

export async function markRead(id: number): Promise<void> {
  await request<void>('POST', `/api/notifications/${id}/read`);
}

export async function markAllRead(): Promise<void> {
  await request<void>('POST', '/api/notifications/read_all');
}

// ---- chat rooms -------------------------------------------------------------

export type RoomCategory = 'general' | 'qna' | 'resources' | 'off_topic';
export const ROOM_CATEGORIES: readonly RoomCategory[] = ['general', 'qna', 'resources', 'off_topic'];
/** The fixed reaction set the server accepts. */
export const REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '🙏'] as const;
export const CHAT_BODY_MAX = 4000;
export const ROOM_NAME_MAX = 40;

export interface ChatRoom {
  id: number;
  study_id: number;
  name: string;
  category: RoomCategory | (string & {});
  closed: boolean;
  /** The room's newest seq (0 when empty). */
  last_seq: number;
  /** Messages by others after my read marker. */
  unread: number;
}

export interface Author {
  id: number;
  display_name: string;
}

export interface ChatMessage {
  seq: number;
  client_id: string;
  author: Author;
  body: string;
  created_at: number;
  edited_at: number | null;
  deleted: boolean;
  reactions: Record<string, number[]>;
  mentions: number[];
}

export async function listRooms(studyId: number): Promise<ChatRoom[]> {
  return (await request<{ items: ChatRoom[] }>('GET', `/api/studies/${studyId}/chat_rooms`)).items;
}

export async function createRoom(studyId: number, input: { name: string; category: RoomCategory }): Promise<ChatRoom> {
  return (await request<{ room: ChatRoom }>('POST', `/api/studies/${studyId}/chat_rooms`, input)).room;
}

export async function closeRoom(studyId: number, roomId: number): Promise<void> {
  await request<void>('POST', `/api/studies/${studyId}/chat_rooms/${roomId}/close`);
}

/** A page of a room's history, oldest first: before `before` (newest page when null), or after `after`. */
export async function roomHistory(
  studyId: number,
  roomId: number,
  page: { before?: number | null; after?: number; limit?: number },
): Promise<ChatMessage[]> {
  const params = new URLSearchParams();
  if (page.before != null) params.set('before', String(page.before));
  if (page.after != null) params.set('after', String(page.after));
  params.set('limit', String(page.limit ?? 50));
  return (await request<{ items: ChatMessage[] }>('GET', `/api/studies/${studyId}/chat_rooms/${roomId}/messages?${params}`)).items;
}

// ---- tasks, posts and files ------------------------------------------------

export type TaskStatus = 'open' | 'done';
export type TaskFilter = 'all' | 'open' | 'done' | 'mine';
export const TASK_FILTERS: readonly TaskFilter[] = ['all', 'open', 'done', 'mine'];
export const TASK_TITLE_MAX = 200;
export const TASK_DESCRIPTION_MAX = 20_000;
export const POST_TITLE_MAX = 200;
export const POST_BODY_MAX = 100_000;

export interface Task {
  id: number;
  study_id: number;
  title: string;
  description: string;
  /** Server-sanitized HTML rendered from `description`. */
  description_html: string;
  /** `YYYY-MM-DD` or null. */
  due_on: string | null;
  assignee: Author | null;
  status: TaskStatus;
  created_by: Author;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
  post_count: number;
  /** Goes up with every change (the post count included): the newer of two copies wins. */
  version: number;
}

export interface TaskInput {
  title: string;
  description: string;
  due_on: string | null;
  assignee_id: number | null;
}

export interface FileInfo {
  id: number;
  name: string;
  content_type: string;
  size: number;
  sha256: string;
  uploaded_by: Author;
  created_at: number;
  /** `/api/studies/{study_id}/files/{file_id}`: the bytes, as an attachment. */
  url: string;
}

export interface PostSummary {
  id: number;
  task_id: number;
  title: string;
  author: Author;
  created_at: number;
  updated_at: number;
  attachment_count: number;
  /** Locked by the leader: the body is read-only for everyone else. */
  locked: boolean;
  /** Goes up with every change (the attachment count included). */
  version: number;
}

export interface Post extends Omit<PostSummary, 'attachment_count'> {
  study_id: number;
  body: string;
  /** Server-sanitized HTML; code blocks carry `hl-*` classes styled by `/api/highlight.css`. */
  body_html: string;
  attachments: FileInfo[];
}

const studyBase = (studyId: number) => `/api/studies/${studyId}`;

export async function listTasks(studyId: number, filter: TaskFilter = 'all'): Promise<Task[]> {
  return (await request<{ items: Task[] }>('GET', `${studyBase(studyId)}/tasks?filter=${filter}`)).items;
}

export async function getTask(studyId: number, taskId: number): Promise<Task> {
  return (await request<{ task: Task }>('GET', `${studyBase(studyId)}/tasks/${taskId}`)).task;
}

export async function createTask(studyId: number, input: TaskInput): Promise<Task> {
  return (await request<{ task: Task }>('POST', `${studyBase(studyId)}/tasks`, input)).task;
}

/**
 * Sends only the given fields; the server applies them to the current task, so
 * other fields changed meanwhile by someone else are kept. With `version`, the
 * edit is refused (`edit_conflict`) if the task changed since that version.
 */
export async function updateTask(
  studyId: number,
  taskId: number,
  input: Partial<TaskInput> & { status?: TaskStatus; version?: number },
): Promise<Task> {
  return (await request<{ task: Task }>('PATCH', `${studyBase(studyId)}/tasks/${taskId}`, input)).task;
}

/** A task of mine on the home page: the task and its study's title. */
export interface MyTask extends Task {
  study_title: string;
}

/** My open tasks across my studies, soonest due first (at most 50). */
export async function myTasks(): Promise<MyTask[]> {
  return (await request<{ items: MyTask[] }>('GET', '/api/me/tasks')).items;
}

export async function deleteTask(studyId: number, taskId: number): Promise<void> {
  await request<void>('DELETE', `${studyBase(studyId)}/tasks/${taskId}`);
}

export function listPosts(
  studyId: number,
  taskId: number,
  query: { q?: string; cursor?: string | null; limit?: number },
  init?: { signal?: AbortSignal },
): Promise<Page<PostSummary>> {
  const params = new URLSearchParams();
  if (query.q) params.set('q', query.q);
  if (query.cursor) params.set('cursor', query.cursor);
  params.set('limit', String(query.limit ?? 20));
  return request<Page<PostSummary>>('GET', `${studyBase(studyId)}/tasks/${taskId}/posts?${params}`, undefined, init);
}

export async function createPost(studyId: number, taskId: number, input: { title: string; body: string }): Promise<Post> {
  return (await request<{ post: Post }>('POST', `${studyBase(studyId)}/tasks/${taskId}/posts`, input)).post;
}

export async function getPost(studyId: number, postId: number): Promise<Post> {
  return (await request<{ post: Post }>('GET', `${studyBase(studyId)}/posts/${postId}`)).post;
}

/** As `updateTask`: the given fields, applied to the current post. */
export async function updatePost(studyId: number, postId: number, input: { title?: string; body?: string; version?: number }): Promise<Post> {
  return (await request<{ post: Post }>('PATCH', `${studyBase(studyId)}/posts/${postId}`, input)).post;
}

export async function deletePost(studyId: number, postId: number): Promise<void> {
  await request<void>('DELETE', `${studyBase(studyId)}/posts/${postId}`);
}

// ---- co-edited bodies: lock and version history ------------------------------

/** Longest version name, in characters. */
export const VERSION_NAME_MAX = 100;

/** One stored version of a post's body. */
export interface DocVersion {
  id: number;
  /** Given when the version was taken by name; null for automatic ones. */
  name: string | null;
  created_at: number;
  /** Who asked for a named version; null for automatic ones. */
  created_by: Author | null;
  /** Who edited the body between the previous version and this one. */
  authors: Author[];
  /** The body's length in characters. */
  chars: number;
}

export interface DocVersionPreview {
  version: DocVersion;
  body: string;
  /** Server-sanitized HTML. */
  body_html: string;
}

/** The leader locks (read-only for everyone else) or unlocks a post's body. */
export async function lockPost(studyId: number, postId: number, locked: boolean): Promise<Post> {
  return (await request<{ post: Post }>('PUT', `${studyBase(studyId)}/posts/${postId}/lock`, { locked })).post;
}

/** Newest first. */
export async function listVersions(studyId: number, postId: number): Promise<DocVersion[]> {
  return (await request<{ versions: DocVersion[] }>('GET', `${studyBase(studyId)}/posts/${postId}/versions`)).versions;
}

export async function takeVersion(studyId: number, postId: number, name: string): Promise<DocVersion> {
  return (await request<{ version: DocVersion }>('POST', `${studyBase(studyId)}/posts/${postId}/versions`, { name })).version;
}

export async function getVersion(studyId: number, postId: number, versionId: number): Promise<DocVersionPreview> {
  return request<DocVersionPreview>('GET', `${studyBase(studyId)}/posts/${postId}/versions/${versionId}`);
}

/** The version's text becomes the body, as an edit live editors receive. */
export async function restoreVersion(studyId: number, postId: number, versionId: number): Promise<Post> {
  return (await request<{ post: Post }>('POST', `${studyBase(studyId)}/posts/${postId}/versions/${versionId}/restore`)).post;
}

/** The server's bounds a client checks before sending (`GET /api/limits`). */
export interface Limits {
  /** Largest file the server accepts, in bytes. */
  upload_max_bytes: number;
  /** Storage per study, in bytes. */
  study_quota_bytes: number;
  /** Files per post (also for the recruiting post). */
  attachments_per_post: number;
  tasks_per_study: number;
}

export async function getLimits(): Promise<Limits> {
  return request<Limits>('GET', '/api/limits');
}

export async function deleteFile(studyId: number, fileId: number): Promise<void> {
  await request<void>('DELETE', `${studyBase(studyId)}/files/${fileId}`);
}
