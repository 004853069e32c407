// Localized text for notifications, built from `kind` + `payload` (the server
// sends data, never display text, so the text follows the chosen language).
import type { AppNotification, StudyStatus } from './api';
import { hasKey, type MessageKey, t } from './i18n';

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

function person(v: unknown): string {
  return v && typeof v === 'object' ? str((v as Record<string, unknown>).display_name) : '';
}

export function statusText(status: string): string {
  const key = `status.${status}`;
  return hasKey(key) ? t(key as MessageKey) : status;
}

/** Where clicking a notification goes: the task it gave me, else its study; null if neither. */
export function notificationPath(n: AppNotification): string | null {
  const sid = n.payload?.study_id;
  if (typeof sid !== 'number') return null;
  const tid = n.payload?.task_id;
  return n.kind === 'task_assigned' && typeof tid === 'number' ? `/studies/${sid}/tasks/${tid}` : `/studies/${sid}`;
}

export function notificationText(n: AppNotification): string {
  const p = n.payload ?? {};
  const study = str(p.study_title);
  switch (n.kind) {
    case 'application_received':
      return t('notif.application_received', { name: person(p.applicant), study });
    case 'application_decided': {
      if (p.accepted === true) return t('notif.application_accepted', { study });
      const reason = str(p.reason);
      return reason
        ? t('notif.application_rejected_reason', { study, reason })
        : t('notif.application_rejected', { study });
    }
    case 'study_status_changed':
      return t('notif.study_status_changed', { study, status: statusText(str(p.status) as StudyStatus) });
    case 'recruitment_closed': {
      const pending = typeof p.pending_applications === 'number' ? p.pending_applications : 0;
      return pending > 0
        ? t('notif.recruitment_closed_pending', { study, count: String(pending) })
        : t('notif.recruitment_closed', { study });
    }
    case 'study_starting':
      return t('notif.study_starting', { study });
    case 'removed_from_study':
      return p.banned === true ? t('notif.removed_banned', { study }) : t('notif.removed', { study });
    case 'review_received':
      return t('notif.review_received', { name: person(p.author), study, rating: str(p.rating) });
    case 'task_assigned':
      return t('notif.task_assigned', { name: person(p.by), task: str(p.task_title), study });
    case 'chat_mention':
      return t('notif.chat_mention', { name: person(p.author), excerpt: str(p.excerpt) });
    case 'call_started':
      return t('notif.call_started', { name: person(p.by), study });
    default:
      return t('notif.unknown');
  }
}
