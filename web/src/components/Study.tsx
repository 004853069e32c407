// Small pieces shared by the study pages: status badge, tag chips, profile
// links, rating text and the study card used in lists.
import type { ComponentChildren } from 'preact';
import { useId } from 'preact/hooks';
import type { StudyRef, StudyStatus, StudySummary, User } from '../api';
import { t as translate, useI18n } from '../i18n';
import { statusText } from '../notifications';
import { linkClick } from '../router';

export const linkClass =
  'font-semibold text-blue-800 underline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600';

const badge: Record<StudyStatus, string> = {
  recruiting: 'border-emerald-300 bg-emerald-50 text-emerald-900',
  in_progress: 'border-sky-300 bg-sky-50 text-sky-900',
  completed: 'border-slate-300 bg-slate-100 text-slate-800',
};

export function StatusBadge({ status }: { status: StudyStatus }) {
  useI18n();
  return (
    <span
      data-testid="study-status"
      data-status={status}
      class={`inline-block rounded-full border px-2 py-0.5 text-xs font-semibold ${badge[status] ?? badge.completed}`}
    >
      {statusText(status)}
    </span>
  );
}

export function TagList({ tags, label }: { tags: string[]; label?: string }) {
  if (!tags.length) return null;
  return (
    <ul class="flex flex-wrap gap-1" aria-label={label}>
      {tags.map((tag) => (
        <li key={tag} class="rounded-full bg-slate-100 px-2 py-0.5 text-xs text-slate-800">
          #{tag}
        </li>
      ))}
    </ul>
  );
}

/** A removable chip list (form inputs and filters). */
export function Chips({ items, onRemove, removeLabel }: { items: string[]; onRemove: (item: string) => void; removeLabel: (item: string) => string }) {
  if (!items.length) return null;
  return (
    <ul class="flex flex-wrap gap-2">
      {items.map((item) => (
        <li key={item} data-testid="chip" class="inline-flex items-center gap-1 rounded-full bg-blue-100 py-0.5 pl-3 pr-1 text-sm text-blue-900">
          <span>{item}</span>
          <button
            type="button"
            class="rounded-full px-1.5 hover:bg-blue-200 focus-visible:outline-2 focus-visible:outline-blue-600"
            aria-label={removeLabel(item)}
            onClick={() => onRemove(item)}
          >
            ×
          </button>
        </li>
      ))}
    </ul>
  );
}

export function UserLink({ user }: { user: Pick<User, 'id' | 'display_name'> }) {
  return (
    <a href={`/users/${user.id}`} onClick={linkClick} class={linkClass}>
      {user.display_name}
    </a>
  );
}

/** Opens the direct-message conversation with `user`. */
export function MessageLink({ user }: { user: Pick<User, 'id' | 'display_name'> }) {
  const { t } = useI18n();
  // Named "Message", described by the person's name (so the name stays unique to their profile link).
  const descId = `msg-${useId()}`;
  return (
    <a
      href={`/messages/${user.id}`}
      onClick={linkClick}
      data-testid="message-user"
      data-user-id={user.id}
      aria-describedby={descId}
      class="rounded border border-slate-300 bg-white px-2 py-0.5 text-xs font-semibold text-slate-800 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-blue-600"
    >
      {t('dm.message')}
      <span id={descId} hidden>
        {t('dm.with', { name: user.display_name })}
      </span>
    </a>
  );
}

export function StudyLink({ study, children }: { study: StudyRef; children?: ComponentChildren }) {
  return (
    <a href={`/studies/${study.id}`} onClick={linkClick} class={linkClass}>
      {children ?? study.title}
    </a>
  );
}

/** "4.5 ★ (3 reviews)" / "No reviews yet". */
export function ratingText(average: number | null, count: number): string {
  if (average === null || count === 0) return translate('review.none');
  if (count === 1) return translate('review.summaryOne', { average: average.toFixed(1) });
  return translate('review.summary', { average: average.toFixed(1), count });
}

export function Stars({ rating }: { rating: number }) {
  const { t } = useI18n();
  return (
    <span aria-label={t('review.stars', { rating })} title={t('review.stars', { rating })} class="text-amber-600">
      <span aria-hidden="true">{'★'.repeat(rating)}{'☆'.repeat(Math.max(0, 5 - rating))}</span>
    </span>
  );
}

export function StudyCard({ study }: { study: StudySummary }) {
  const { t } = useI18n();
  return (
    <article data-testid="study-card" data-study-id={study.id} class="flex flex-col gap-2 rounded-lg border border-slate-200 bg-white p-4 shadow-sm">
      <div class="flex flex-wrap items-start justify-between gap-2">
        <h2 class="text-lg font-semibold">
          <a href={`/studies/${study.id}`} onClick={linkClick} class="text-blue-900 hover:underline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600">
            {study.title}
          </a>
        </h2>
        <StatusBadge status={study.status} />
      </div>
      <TagList tags={study.tags} label={t('study.tags')} />
      <dl class="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 text-sm text-slate-700 sm:grid-cols-[auto_1fr_auto_1fr]">
        <dt class="text-slate-500">{t('study.members')}</dt>
        <dd data-testid="member-count">
          {study.member_count}/{study.capacity}
        </dd>
        <dt class="text-slate-500">{t('study.deadline')}</dt>
        <dd>{study.recruit_closes_on}</dd>
        <dt class="text-slate-500">{t('study.leader')}</dt>
        <dd>
          <UserLink user={study.leader} />
        </dd>
      </dl>
    </article>
  );
}
