// Live study events for the task board, task and post pages.
//
// A tab receives `study.event` frames for the studies it watches
// (`study.watch`). The study page watches its study itself; the task and post
// pages use `useStudyEvents(..., { watch: true })`, which sends `study.watch`
// when connected and after every `hello`, and `study.unwatch` on unmount.
// `onReconnect` runs after every `hello` and on a `resync` for the study:
// events may have been missed, so the caller re-reads what it shows.
// `onMembersChanged` runs on `member_left` / `member_removed`: the leaver's open
// tasks were unassigned by the server, so a board re-reads.
// `onRemoved` runs on `study.removed` (this user was removed from the study),
// `onDeleted` on the `deleted` study event (the leader deleted the study; see
// `leaveDeletedStudy`).
//
// There is no task or post event for a post count: a created or deleted post is
// followed by `task_updated` carrying the task with its new `post_count`.
import { useEffect, useRef } from 'preact/hooks';
import type { PostSummary, Task } from './api';
import { useApp } from './context';
import { goWithNotice } from './flash';
import type { AnyFrame } from './live';

export type ContentEvent =
  | { kind: 'task_created' | 'task_updated'; task: Task }
  | { kind: 'task_deleted'; task_id: number }
  | { kind: 'post_created' | 'post_updated'; post: PostSummary }
  | { kind: 'post_deleted'; task_id: number; post_id: number };

const CONTENT_KINDS = new Set(['task_created', 'task_updated', 'task_deleted', 'post_created', 'post_updated', 'post_deleted']);

/** The task/post event carried by a `study.event` frame, or null for other kinds. */
export function contentEvent(frame: AnyFrame): ContentEvent | null {
  const event = frame.event as { kind?: unknown } | undefined;
  if (!event || typeof event !== 'object' || typeof event.kind !== 'string' || !CONTENT_KINDS.has(event.kind)) return null;
  return event as ContentEvent;
}

/** True for `study.event` frames about tasks and posts (the study page itself need not re-read for those). */
export function isContentEvent(frame: AnyFrame): boolean {
  return contentEvent(frame) !== null;
}

/** The `kind` of a `study.event` frame's event (`deleted`, `study_attachments_changed`, ...). */
export function studyEventKind(frame: AnyFrame): string | null {
  const event = frame.event as { kind?: unknown } | undefined;
  return event && typeof event === 'object' && typeof event.kind === 'string' ? event.kind : null;
}

/**
 * The study was deleted while one of its pages was open: go to my studies
 * (`toMine`; else the study list) and say so there.
 */
export function leaveDeletedStudy(title: string | null, toMine = true): void {
  const path = toMine ? '/me/studies' : '/studies';
  if (title) goWithNotice(path, 'study.deletedNotice', { title });
  else goWithNotice(path, 'study.deletedNoticeUntitled');
}

export function useStudyEvents(
  studyId: number,
  handlers: {
    onEvent: (e: ContentEvent) => void;
    onReconnect: () => void;
    onRemoved?: () => void;
    onDeleted?: () => void;
    onMembersChanged?: () => void;
  },
  { watch }: { watch: boolean },
): void {
  const live = useApp().live;
  const ref = useRef(handlers);
  ref.current = handlers;
  useEffect(() => {
    if (!live) return;
    const sendWatch = () => live.send({ type: 'study.watch', id: `watch-${studyId}`, study_id: studyId });
    if (watch && live.state === 'connected') sendWatch();
    const offs = [
      live.on('hello', () => {
        if (watch) sendWatch();
        ref.current.onReconnect();
      }),
      live.on('resync', (f) => {
        if ((f as AnyFrame).study_id === studyId) ref.current.onReconnect();
      }),
      // Removed from the study: the server ended the watch; nothing here is readable any more.
      live.on('study.removed', (f) => {
        if ((f as AnyFrame).study_id === studyId) ref.current.onRemoved?.();
      }),
      live.on('study.event', (f) => {
        const frame = f as AnyFrame;
        if (frame.study_id !== studyId) return;
        const kind = studyEventKind(frame);
        if (kind === 'deleted') {
          ref.current.onDeleted?.();
          return;
        }
        // Someone left or was removed: the server gave their open tasks back to the pool.
        if (kind === 'member_left' || kind === 'member_removed') {
          ref.current.onMembersChanged?.();
          return;
        }
        const e = contentEvent(frame);
        if (e) ref.current.onEvent(e);
      }),
    ];
    return () => {
      for (const off of offs) off();
      if (watch) live.send({ type: 'study.unwatch', study_id: studyId });
    };
  }, [live, studyId, watch]);
}
