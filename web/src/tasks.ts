// Pure helpers for the task board and posts: the server's task order, the
// board filters, applying live events to a list, and file sizes.
import type { PostSummary, Task, TaskFilter, TaskInput } from './api';
import { getLang, t } from './i18n';

/** The server's order: by due date (no due date last), then id. */
export function compareTasks(a: Task, b: Task): number {
  if (a.due_on !== b.due_on) {
    if (a.due_on === null) return 1;
    if (b.due_on === null) return -1;
    return a.due_on < b.due_on ? -1 : 1;
  }
  return a.id - b.id;
}

export function matchesFilter(task: Task, filter: TaskFilter, myId: number | null): boolean {
  if (filter === 'open') return task.status === 'open';
  if (filter === 'done') return task.status === 'done';
  if (filter === 'mine') return myId !== null && task.assignee?.id === myId;
  return true;
}

/**
 * The newer of two copies of one task or post. Answers and live events can
 * cross (a re-read in flight while an edit lands), so an older copy arriving
 * late never replaces a newer one.
 */
export function newer<T extends { version: number }>(current: T | undefined, incoming: T): T {
  return current && current.version > incoming.version ? current : incoming;
}

/** `list` with `task` put in (or replaced, or dropped when it no longer matches the filter), sorted. */
export function upsertTask(list: Task[], incoming: Task, filter: TaskFilter, myId: number | null): Task[] {
  const task = newer(
    list.find((x) => x.id === incoming.id),
    incoming,
  );
  const rest = list.filter((x) => x.id !== task.id);
  if (!matchesFilter(task, filter, myId)) return rest;
  return [...rest, task].sort(compareTasks);
}

/**
 * The fields of a task form that differ from the task it was opened on: an
 * edit sends only these, so it cannot put back a field someone else changed
 * while the form was open.
 */
export function changedTaskFields(task: Task, input: TaskInput): Partial<TaskInput> {
  const changed: Partial<TaskInput> = {};
  if (input.title !== task.title) changed.title = input.title;
  if (input.description !== task.description) changed.description = input.description;
  if (input.due_on !== task.due_on) changed.due_on = input.due_on;
  if (input.assignee_id !== (task.assignee?.id ?? null)) changed.assignee_id = input.assignee_id;
  return changed;
}

/** The local date as `YYYY-MM-DD` (what `<input type="date">` and `due_on` use). */
export function today(now = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

export function isOverdue(task: Task, now = new Date()): boolean {
  return task.status === 'open' && task.due_on !== null && task.due_on < today(now);
}

/** Case-insensitive title match, like the server's `q` (used for live-added posts). */
export function titleMatches(post: PostSummary, q: string): boolean {
  const needle = q.trim().toLocaleLowerCase();
  return !needle || post.title.toLocaleLowerCase().includes(needle);
}

/** "512 B", "195.3 KB", "4.2 MB" (binary units), localized digits. */
export function formatSize(bytes: number): string {
  const fmt = (n: number) => n.toLocaleString(getLang(), { maximumFractionDigits: 1 });
  if (bytes < 1024) return t('size.bytes', { n: fmt(bytes) });
  if (bytes < 1024 * 1024) return t('size.kb', { n: fmt(bytes / 1024) });
  if (bytes < 1024 * 1024 * 1024) return t('size.mb', { n: fmt(bytes / (1024 * 1024)) });
  return t('size.gb', { n: fmt(bytes / (1024 * 1024 * 1024)) });
}
