import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, Application, FileInfo, Member, StudyDetail, StudyStatus } from '../api';
import { ErrorAlert, Notice } from '../components/Alert';
import { AttachmentList } from '../components/Attachments';
import { Button } from '../components/Button';
import { ChatPanel } from '../components/ChatPanel';
import { TaskBoard } from '../components/TaskBoard';
import { UploadPicker } from '../components/Uploads';
import { VideoPanel } from '../components/VideoPanel';
import { Layout } from '../components/Layout';
import { BackLink, PageNotice } from '../components/PageNotice';
import { linkClass, MessageLink, ratingText, Stars, StatusBadge, StudyLink, TagList, UserLink } from '../components/Study';
import { useApp } from '../context';
import { goWithNotice } from '../flash';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import type { AnyFrame } from '../live';
import { statusText } from '../notifications';
import { linkClick } from '../router';
import { isContentEvent, leaveDeletedStudy, studyEventKind } from '../studyLive';
import { useUploadQueue } from '../uploadQueue';
import { inputClass } from './Studies';

export const MESSAGE_MAX = 1000;
/** How long finished progress bars stay before they give way to the file list. */
const DONE_PAUSE_MS = 1500;

/** Status changes a leader may make: recruiting ↔ in_progress, either → completed (final). */
export function allowedTransitions(status: StudyStatus): StudyStatus[] {
  if (status === 'recruiting') return ['in_progress', 'completed'];
  if (status === 'in_progress') return ['recruiting', 'completed'];
  return [];
}

type Load =
  | { state: 'loading' }
  | { state: 'error'; error: ApiError }
  | { state: 'ready'; study: StudyDetail; members: Member[]; applications: Application[] };

export function StudyDetailPage({ id }: { id: number }) {
  const { t } = useI18n();
  const app = useApp();
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Set by `chat.removed` / `study.removed`: the chat panel closes at once, before the re-read.
  const [chatRemoved, setChatRemoved] = useState(false);
  const seq = useRef(0);
  const loaded = useRef(false);
  // This tab is deleting the study: its own answer moves on, not the `deleted` event.
  const deleting = useRef(false);
  // What the `deleted` event needs to say where it went.
  const shown = useRef<{ title: string; member: boolean } | null>(null);
  shown.current =
    load.state === 'ready' ? { title: load.study.title, member: load.study.my_role !== 'none' } : shown.current;

  // Fetch detail, then members (member/leader) and applications (leader).
  // Only the newest of overlapping reloads is applied.
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const study = await api.getStudy(id);
      const isMember = study.my_role === 'member' || study.my_role === 'leader';
      const [members, applications] = await Promise.all([
        isMember ? api.listMembers(id).catch(() => [] as Member[]) : Promise.resolve([] as Member[]),
        study.my_role === 'leader' ? api.listApplications(id).catch(() => [] as Application[]) : Promise.resolve([] as Application[]),
      ]);
      if (mine !== seq.current) return;
      loaded.current = true;
      setLoad({ state: 'ready', study, members, applications });
    } catch (e) {
      if (mine !== seq.current) return;
      const err = toApiError(e);
      // A failed re-fetch (e.g. the server is restarting) keeps what is shown.
      if (loaded.current && err.code !== 'not_found') setActionError(err);
      else setLoad({ state: 'error', error: err });
    }
  }, [id]);

  useEffect(() => {
    reload();
  }, [reload]);

  // Live: watch this study (again after every reconnect) and re-fetch on its events.
  const live = app.live;
  useEffect(() => {
    if (!live) return;
    const watch = () => live.send({ type: 'study.watch', id: `watch-${id}`, study_id: id });
    if (live.state === 'connected') watch();
    const offs = [
      live.on('hello', () => {
        watch();
        reload(); // we may have missed events while disconnected
      }),
      // Task and post events are the task board's (it applies them itself).
      live.on('study.event', (f) => {
        const frame = f as AnyFrame;
        // Call news is the video panel's (it shows who is in the call).
        if (frame.study_id !== id || isContentEvent(frame) || studyEventKind(frame) === 'call_changed') return;
        if (studyEventKind(frame) === 'deleted') {
          // Gone for good: say so on my studies (or the list, for a visitor) and leave.
          if (!deleting.current) leaveDeletedStudy(shown.current?.title ?? null, shown.current?.member ?? true);
          return;
        }
        reload(); // also `study_attachments_changed`: the recruiting post's files
      }),
      // The study's actor restarted: the server already re-watched; re-read.
      live.on('resync', (f) => {
        if ((f as AnyFrame).study_id === id) reload();
      }),
      live.on('study.removed', (f) => {
        if ((f as AnyFrame).study_id !== id) return;
        setInfo(t('study.removedNotice'));
        setChatRemoved(true);
        reload();
      }),
    ];
    return () => {
      for (const off of offs) off();
      live.send({ type: 'study.unwatch', study_id: id });
    };
  }, [live, id, reload]);

  // Member again later (re-accepted): the chat comes back.
  const loadedRole = load.state === 'ready' ? load.study.my_role : null;
  const wasMember = useRef(false);
  useEffect(() => {
    const isMember = loadedRole === 'member' || loadedRole === 'leader';
    if (isMember && !wasMember.current) setChatRemoved(false);
    if (loadedRole !== null) wasMember.current = isMember;
  }, [loadedRole]);

  const onChatRemoved = useCallback(() => {
    setChatRemoved(true);
    reload();
  }, [reload]);

  /** Run a state-changing request, show its error, then re-fetch. */
  async function act(fn: () => Promise<unknown>, done?: string) {
    if (busy) return false;
    setBusy(true);
    setActionError(null);
    setInfo(null);
    let ok = true;
    try {
      await fn();
      if (done) setInfo(done);
    } catch (e) {
      ok = false;
      setActionError(toApiError(e));
    } finally {
      setBusy(false);
    }
    await reload();
    return ok;
  }

  if (load.state === 'loading') {
    return (
      <Layout titleKey="study.title">
        <p role="status">{t('app.loading')}</p>
      </Layout>
    );
  }
  if (load.state === 'error') {
    return (
      <Layout titleKey="study.title">
        <PageNotice error back={<BackLink href="/studies">{t('study.backToList')}</BackLink>}>
          {load.error.code === 'not_found' ? t('study.notFound') : errorMessage(load.error)}
        </PageNotice>
      </Layout>
    );
  }

  const { study, members, applications } = load;
  const role = study.my_role;
  const me = app.user;
  const inStudy = role === 'member' || role === 'leader';
  // The chat's place: the panel, or the notice that this user was removed from it.
  const sideColumn = inStudy || chatRemoved;

  return (
    <Layout titleKey="study.title" wide={sideColumn}>
      <article class="flex flex-col gap-6" data-testid="study-detail" data-role={role}>
        <header class="flex flex-col gap-3">
          <div class="flex flex-wrap items-start justify-between gap-3">
            <h1 class="text-2xl font-bold" data-testid="study-title">
              {study.title}
            </h1>
            <div class="flex flex-wrap items-center gap-2">
              <StatusBadge status={study.status} />
              <button
                type="button"
                data-testid="bookmark"
                aria-pressed={study.bookmarked}
                disabled={busy}
                onClick={() => act(() => api.toggleBookmark(id))}
                class={`rounded-md border px-3 py-1.5 text-sm font-semibold focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600 ${
                  study.bookmarked ? 'border-amber-400 bg-amber-50 text-amber-900' : 'border-slate-300 bg-white text-slate-800'
                }`}
              >
                <span aria-hidden="true">{study.bookmarked ? '★ ' : '☆ '}</span>
                {t('study.bookmark')}
              </button>
              {role === 'leader' && (
                <a href={`/studies/${id}/edit`} onClick={linkClick} class={linkClass}>
                  {t('study.edit')}
                </a>
              )}
            </div>
          </div>
          <TagList tags={study.tags} label={t('study.tags')} />
          <dl class="grid grid-cols-[auto_1fr] gap-x-4 gap-y-1 text-sm text-slate-700">
            <dt class="text-slate-500">{t('study.leader')}</dt>
            <dd>
              <UserLink user={study.leader} />
            </dd>
            <dt class="text-slate-500">{t('study.members')}</dt>
            <dd data-testid="member-count">
              {study.member_count}/{study.capacity}
            </dd>
            <dt class="text-slate-500">{t('study.recruitPeriod')}</dt>
            <dd>
              {study.recruit_opens_on} – {study.recruit_closes_on}
            </dd>
            <dt class="text-slate-500">{t('study.studyPeriod')}</dt>
            <dd>
              {study.starts_on} – {study.ends_on}
            </dd>
          </dl>
        </header>

        {info && <Notice>{info}</Notice>}
        {actionError && <ErrorAlert>{errorMessage(actionError)}</ErrorAlert>}

        {/*
          On a wide screen the chat is a column beside the work, sticky while the page
          scrolls; on a narrow one it comes after the task board. One tree for both
          (placed by the grid), so crossing the width never remounts the chat or loses a
          draft. The second row takes the spare height, so a tall chat leaves no gap
          under the first.
        */}
        <div class={sideColumn ? 'flex flex-col gap-6 lg:grid lg:grid-cols-[minmax(0,1fr)_24rem] lg:grid-rows-[auto_1fr] lg:items-start' : 'flex flex-col gap-6'}>
          <div class="flex min-w-0 flex-col gap-6 lg:col-start-1 lg:row-start-1">
            <section aria-labelledby="desc-h" class="rounded-lg border border-slate-200 bg-white p-4">
              <h2 id="desc-h" class="sr-only">
                {t('study.description')}
              </h2>
              {/* description_html is sanitized by the server. */}
              <div class="markdown" data-testid="description" dangerouslySetInnerHTML={{ __html: study.description_html }} />
              <StudyFiles study={study} onChanged={reload} />
            </section>

            {(role === 'none' || role === 'applicant') && (
              <ApplySection study={study} busy={busy} act={act} />
            )}

            {role === 'leader' && (
              <>
                <StatusChanger study={study} busy={busy} act={act} />
                <ApplicantPanel study={study} applications={applications} busy={busy} act={act} />
              </>
            )}

            {inStudy && (
              <VideoPanel
                key={`video-${id}`}
                studyId={id}
                isLeader={role === 'leader'}
                names={new Map(members.map((m) => [m.user.id, m.user.display_name]))}
              />
            )}

            {inStudy && <TaskBoard key={`tasks-${id}`} studyId={id} members={members} />}
          </div>

          {sideColumn && (
            <aside aria-label={t('chat.title')} class="lg:sticky lg:top-4 lg:col-start-2 lg:row-span-2 lg:row-start-1">
              {chatRemoved ? (
                <Notice>{t('chat.removedNotice')}</Notice>
              ) : (
                <ChatPanel key={`chat-${id}`} studyId={id} isLeader={role === 'leader'} onRemoved={onChatRemoved} />
              )}
            </aside>
          )}

          <div class="flex min-w-0 flex-col gap-6 lg:col-start-1 lg:row-start-2">
            {inStudy && (
              <>
                <MembersSection study={study} members={members} busy={busy} act={act} />
                {me && <ReviewForm study={study} members={members.filter((m) => m.user.id !== me.id)} busy={busy} act={act} />}
              </>
            )}

            {role === 'leader' && (
              <DeleteStudy
                study={study}
                onDeleting={(on) => {
                  deleting.current = on;
                }}
              />
            )}
          </div>
        </div>
      </article>
    </Layout>
  );
}

/**
 * The recruiting post's files (`study.attachments`, sent to members and the
 * leader) as download links. The leader attaches files here (uploaded one at
 * a time with a progress bar each) and removes them; the uploader may remove
 * their own. Other tabs re-read on `study_attachments_changed`.
 */
function StudyFiles({ study, onChanged }: { study: StudyDetail; onChanged: () => Promise<void> }) {
  const { t } = useI18n();
  const me = useApp().user;
  const queue = useUploadQueue();
  const { uploads, alive } = queue;
  const [busy, setBusy] = useState(false);
  const [attempted, setAttempted] = useState(false);
  const files = study.attachments ?? [];
  const isLeader = study.my_role === 'leader';
  if (!isLeader && files.length === 0) return null;

  // Stored here but not yet in the re-read list: they count against the limit too.
  const ids = new Set(files.map((f) => f.id));
  const stored = files.length + uploads.filter((u) => u.state === 'done' && u.info && !ids.has(u.info.id)).length;
  const queued = uploads.some((u) => u.state === 'queued');
  const failed = uploads.some((u) => u.state === 'error');

  async function upload() {
    if (busy) return;
    setBusy(true);
    const ok = await queue.uploadAll({ studyId: study.id, postId: null }, uploads, () => {});
    if (!alive.current) return;
    setBusy(false);
    setAttempted(true);
    await onChanged();
    // Let the finished bars show for a moment; the files are listed above by now.
    if (ok) setTimeout(() => alive.current && queue.clearDone(), DONE_PAUSE_MS);
  }

  const mayRemove = (f: FileInfo) => isLeader || f.uploaded_by.id === me?.id;
  return (
    <div class="mt-4 flex flex-col gap-3 border-t border-slate-200 pt-3" data-testid="study-files">
      <h3 class="text-sm font-semibold text-slate-800">{t('study.files')}</h3>
      {files.length === 0 && <p class="text-sm text-slate-600">{t('study.files.none')}</p>}
      <AttachmentList studyId={study.id} files={files} onRemoved={() => void onChanged()} canRemove={mayRemove} />
      {isLeader && (
        <>
          <UploadPicker
            label={t('study.files.attach')}
            note={t('study.files.note')}
            uploads={uploads}
            stored={stored}
            disabled={busy}
            onAdd={queue.add}
            onRemove={queue.remove}
          />
          {attempted && failed && !queued && !busy && <Notice>{t('study.files.failed')}</Notice>}
          {(queued || failed || busy) && (
            <div>
              <Button disabled={busy} onClick={() => void upload()}>
                {busy ? t('study.files.uploading') : queued || !attempted ? t('study.files.upload') : t('study.files.retry')}
              </Button>
            </div>
          )}
        </>
      )}
    </div>
  );
}

/** The leader deletes the study (after a confirmation) and lands on their studies. */
function DeleteStudy({ study, onDeleting }: { study: StudyDetail; onDeleting: (on: boolean) => void }) {
  const { t } = useI18n();
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function remove() {
    if (busy) return;
    setBusy(true);
    setError(null);
    onDeleting(true);
    try {
      await api.deleteStudy(study.id);
    } catch (e) {
      const err = toApiError(e);
      // Already gone (a second tab, or a retried request): the outcome is the same.
      if (err.code !== 'not_found') {
        onDeleting(false);
        setError(err);
        setBusy(false);
        return;
      }
    }
    goWithNotice('/me/studies', 'study.deletedSelf', { title: study.title });
  }

  return (
    <section aria-labelledby="delete-h" class={sectionClass} data-testid="delete-study">
      <h2 id="delete-h" class="text-lg font-semibold">
        {t('study.deleteTitle')}
      </h2>
      {!confirm ? (
        <>
          <p class="text-sm text-slate-700">{t('study.deleteHint')}</p>
          <div>
            <Button variant="secondary" onClick={() => setConfirm(true)}>
              {t('study.delete')}
            </Button>
          </div>
        </>
      ) : (
        <div class="flex flex-col gap-2" data-testid="delete-study-confirm">
          <p id="delete-confirm-text" class="text-sm font-medium text-red-800">
            {t('study.deleteConfirm', { title: study.title })}
          </p>
          <div class="flex flex-wrap gap-2" role="group" aria-labelledby="delete-confirm-text">
            <Button variant="danger" disabled={busy} onClick={() => void remove()}>
              {busy ? t('study.deleting') : t('study.deleteYes')}
            </Button>
            <Button variant="secondary" disabled={busy} onClick={() => setConfirm(false)}>
              {t('members.cancel')}
            </Button>
          </div>
        </div>
      )}
      {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
    </section>
  );
}

type Act = (fn: () => Promise<unknown>, done?: string) => Promise<boolean>;
interface SectionProps {
  study: StudyDetail;
  busy: boolean;
  act: Act;
}

const sectionClass = 'flex flex-col gap-3 rounded-lg border border-slate-200 bg-white p-4';

function ApplySection({ study, busy, act }: SectionProps) {
  const { t } = useI18n();
  const [message, setMessage] = useState('');
  // An accepted application of someone who is no longer a member (left or removed) is history.
  const mine = study.my_application && study.my_application.status !== 'accepted' ? study.my_application : null;
  const pending = mine && mine.status === 'pending';

  return (
    <section aria-labelledby="apply-h" class={sectionClass} data-testid="apply-section">
      <h2 id="apply-h" class="text-lg font-semibold">
        {t('apply.title')}
      </h2>
      {mine && (
        <p data-testid="my-application" data-status={mine.status}>
          {t('apply.myState', { status: t(`appStatus.${mine.status}`) })}
        </p>
      )}
      {pending ? (
        <div>
          <Button variant="secondary" disabled={busy} onClick={() => act(() => api.withdrawApplication(study.id, mine.id), t('apply.withdrawn'))}>
            {t('apply.withdraw')}
          </Button>
        </div>
      ) : study.status !== 'recruiting' ? (
        <p class="text-slate-700">{t('apply.notRecruiting')}</p>
      ) : (
        <form
          class="flex flex-col gap-2"
          onSubmit={async (e) => {
            e.preventDefault();
            if (await act(() => api.apply(study.id, message), t('apply.sent'))) setMessage('');
          }}
        >
          <label for="apply-message" class="text-sm font-medium text-slate-800">
            {t('apply.message')}
          </label>
          <textarea
            id="apply-message"
            rows={4}
            maxLength={MESSAGE_MAX}
            value={message}
            onInput={(e) => setMessage(e.currentTarget.value)}
            aria-describedby="apply-count"
            class={inputClass}
          />
          <p id="apply-count" class="text-xs text-slate-600">
            {t('apply.count', { count: [...message].length, max: MESSAGE_MAX })}
          </p>
          <div>
            <Button type="submit" disabled={busy}>
              {t('apply.submit')}
            </Button>
          </div>
        </form>
      )}
    </section>
  );
}

function StatusChanger({ study, busy, act }: SectionProps) {
  const { t } = useI18n();
  const next = allowedTransitions(study.status);
  return (
    <section aria-labelledby="status-h" class={sectionClass} data-testid="status-changer">
      <h2 id="status-h" class="text-lg font-semibold">
        {t('leader.status')}
      </h2>
      {next.length === 0 ? (
        <p class="text-slate-700">{t('leader.statusFinal')}</p>
      ) : (
        <div class="flex flex-wrap gap-2">
          {next.map((s) => (
            <Button key={s} variant="secondary" disabled={busy} onClick={() => act(() => api.setStudyStatus(study.id, s))}>
              {t('leader.setStatus', { status: statusText(s) })}
            </Button>
          ))}
        </div>
      )}
    </section>
  );
}

function ApplicantPanel({ study, applications, busy, act }: SectionProps & { applications: Application[] }) {
  const { t } = useI18n();
  const pending = applications.filter((a) => a.status === 'pending');
  const decided = applications.filter((a) => a.status !== 'pending');
  return (
    <section aria-labelledby="apps-h" class={sectionClass} data-testid="applicant-panel">
      <h2 id="apps-h" class="text-lg font-semibold">
        {t('leader.applications', { count: pending.length })}
      </h2>
      {pending.length === 0 && <p class="text-slate-600">{t('leader.noApplications')}</p>}
      <ul class="flex flex-col gap-3">
        {pending.map((a) => (
          <li key={a.id}>
            <ApplicationCard study={study} application={a} busy={busy} act={act} />
          </li>
        ))}
      </ul>
      {decided.length > 0 && (
        <details>
          <summary class="cursor-pointer text-sm font-semibold text-slate-700">{t('leader.decided', { count: decided.length })}</summary>
          <ul class="mt-2 flex flex-col gap-1 text-sm">
            {decided.map((a) => (
              <li key={a.id} data-testid="decided-application">
                <UserLink user={a.applicant.user} /> — {t(`appStatus.${a.status}`)}
                {a.reason ? ` (${a.reason})` : ''}
              </li>
            ))}
          </ul>
        </details>
      )}
    </section>
  );
}

function ApplicationCard({ study, application: a, busy, act }: SectionProps & { application: Application }) {
  const { t } = useI18n();
  const [reason, setReason] = useState('');
  const who = a.applicant;
  const reasonId = `reason-${a.id}`;
  return (
    <article data-testid="application" data-application-id={a.id} class="flex flex-col gap-2 rounded-md border border-slate-200 p-3">
      <div class="flex flex-wrap items-baseline justify-between gap-2">
        <h3 class="font-semibold" data-testid="applicant-name">
          <UserLink user={who.user} />
        </h3>
        <span class="text-sm text-slate-700" data-testid="applicant-rating">
          {ratingText(who.review_average, who.review_count)}
        </span>
      </div>
      {a.message ? (
        <blockquote class="whitespace-pre-wrap border-l-4 border-slate-200 pl-3 text-slate-800" data-testid="application-message">
          {a.message}
        </blockquote>
      ) : (
        <p class="text-sm text-slate-500">{t('leader.noMessage')}</p>
      )}
      {who.reviews.length > 0 && (
        <div>
          <h4 class="text-sm font-semibold text-slate-700">{t('leader.applicantReviews')}</h4>
          <ul class="flex flex-col gap-1 text-sm">
            {who.reviews.map((r) => (
              <li key={r.id}>
                <Stars rating={r.rating} /> {r.body} — <UserLink user={r.author} />
                {r.study_title ? ` · ${r.study_title}` : ''}
              </li>
            ))}
          </ul>
        </div>
      )}
      <div class="text-sm">
        <h4 class="font-semibold text-slate-700">{t('leader.completedStudies')}</h4>
        {who.completed_studies.length === 0 ? (
          <p class="text-slate-500">{t('profile.noCompleted')}</p>
        ) : (
          <ul class="flex flex-wrap gap-x-3">
            {who.completed_studies.map((s) => (
              <li key={s.id}>
                <StudyLink study={s} />
              </li>
            ))}
          </ul>
        )}
      </div>
      <div class="flex flex-col gap-1">
        <label for={reasonId} class="text-sm font-medium text-slate-800">
          {t('leader.reason')}
        </label>
        <input id={reasonId} type="text" value={reason} onInput={(e) => setReason(e.currentTarget.value)} class={inputClass} />
      </div>
      <div class="flex flex-wrap gap-2">
        <Button disabled={busy} onClick={() => act(() => api.decideApplication(study.id, a.id, true), t('leader.accepted', { name: who.user.display_name }))}>
          {t('leader.accept')}
        </Button>
        <Button
          variant="secondary"
          disabled={busy}
          onClick={() => act(() => api.decideApplication(study.id, a.id, false, reason.trim() || undefined), t('leader.rejected', { name: who.user.display_name }))}
        >
          {t('leader.reject')}
        </Button>
      </div>
    </article>
  );
}

function MembersSection({ study, members, busy, act }: SectionProps & { members: Member[] }) {
  const { t } = useI18n();
  const isLeader = study.my_role === 'leader';
  const me = useApp().user;
  const [confirmLeave, setConfirmLeave] = useState(false);
  return (
    <section aria-labelledby="members-h" class={sectionClass} data-testid="members">
      <h2 id="members-h" class="text-lg font-semibold">
        {t('members.title', { count: members.length })}
      </h2>
      <ul class="flex flex-col gap-2">
        {members.map((m) => (
          <li key={m.user.id} data-testid="member" class="flex flex-wrap items-center gap-3">
            <UserLink user={m.user} />
            {me && m.user.id !== me.id && <MessageLink user={m.user} />}
            {m.role === 'leader' && <span class="rounded bg-blue-100 px-1.5 text-xs font-semibold text-blue-900">{t('members.leader')}</span>}
            {isLeader && m.role === 'member' && <MemberAdmin study={study} member={m} busy={busy} act={act} />}
          </li>
        ))}
      </ul>
      {study.my_role === 'member' && (
        <div class="flex flex-wrap items-center gap-2">
          {!confirmLeave ? (
            <Button variant="secondary" disabled={busy} onClick={() => setConfirmLeave(true)}>
              {t('members.leave')}
            </Button>
          ) : (
            <>
              <span class="text-sm text-slate-800">{t('members.leaveConfirm')}</span>
              <Button disabled={busy} onClick={() => act(() => api.leaveStudy(study.id), t('members.left'))}>
                {t('members.leaveYes')}
              </Button>
              <Button variant="secondary" onClick={() => setConfirmLeave(false)}>
                {t('members.cancel')}
              </Button>
            </>
          )}
        </div>
      )}
    </section>
  );
}

function MemberAdmin({ study, member, busy, act }: SectionProps & { member: Member }) {
  const { t } = useI18n();
  const [ban, setBan] = useState(false);
  const banId = `ban-${member.user.id}`;
  const name = member.user.display_name;
  return (
    <span class="flex flex-wrap items-center gap-2">
      <span class="inline-flex items-center gap-1 text-sm">
        <input id={banId} type="checkbox" checked={ban} onChange={(e) => setBan(e.currentTarget.checked)} />
        <label for={banId}>{t('members.ban')}</label>
      </span>
      <Button variant="secondary" disabled={busy} onClick={() => act(() => api.removeMember(study.id, member.user.id, ban), t('members.removed', { name }))}>
        <span>{t('members.remove')}</span>
        <span class="sr-only"> {name}</span>
      </Button>
      <Button variant="secondary" disabled={busy} onClick={() => act(() => api.transferLeader(study.id, member.user.id), t('members.transferred', { name }))}>
        <span>{t('members.makeLeader')}</span>
        <span class="sr-only"> {name}</span>
      </Button>
    </span>
  );
}

function ReviewForm({ study, members, busy, act }: SectionProps & { members: Member[] }) {
  const { t } = useI18n();
  const app = useApp();
  const [reviewee, setReviewee] = useState('');
  const [rating, setRating] = useState('5');
  const [body, setBody] = useState('');
  const [existing, setExisting] = useState<api.Review | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  if (members.length === 0) return null;
  // Members review each other once the study is completed (the server decides; this only
  // spares a form that would be refused).
  if (study.status !== 'completed') {
    return (
      <section aria-labelledby="review-h" class={sectionClass} data-testid="review-form">
        <h2 id="review-h" class="text-lg font-semibold">
          {t('review.write')}
        </h2>
        <p class="text-sm text-slate-700" data-testid="review-not-yet">
          {t('review.notYet')}
        </p>
      </section>
    );
  }
  const target = reviewee || String(members[0].user.id);

  async function submit(e: Event) {
    e.preventDefault();
    setError(null);
    const input = { reviewee_id: Number(target), rating: Number(rating), body };
    const ok = await act(async () => {
      try {
        if (existing && existing.reviewee.id === input.reviewee_id) {
          await api.updateReview(existing.id, { rating: input.rating, body: input.body });
        } else {
          await api.createReview(study.id, input);
        }
      } catch (err) {
        const ae = toApiError(err);
        if (ae.code === 'review_exists' && app.user) {
          // Offer to update the review we already wrote.
          const profile = await api.getProfile(input.reviewee_id).catch(() => null);
          const mine = profile?.reviews.find((r) => r.study_id === study.id && r.author.id === app.user!.id) ?? null;
          setExisting(mine);
        }
        setError(ae);
        throw ae;
      }
    }, t('review.saved'));
    if (ok) {
      setBody('');
      setExisting(null);
    }
  }

  return (
    <section aria-labelledby="review-h" class={sectionClass} data-testid="review-form">
      <h2 id="review-h" class="text-lg font-semibold">
        {t('review.write')}
      </h2>
      <form class="flex flex-col gap-3" onSubmit={submit}>
        <div class="flex flex-wrap gap-4">
          <div class="flex flex-col gap-1">
            <label for="review-reviewee" class="text-sm font-medium text-slate-800">
              {t('review.reviewee')}
            </label>
            <select id="review-reviewee" value={target} onChange={(e) => setReviewee(e.currentTarget.value)} class={inputClass}>
              {members.map((m) => (
                <option key={m.user.id} value={String(m.user.id)}>
                  {m.user.display_name}
                </option>
              ))}
            </select>
          </div>
          <div class="flex flex-col gap-1">
            <label for="review-rating" class="text-sm font-medium text-slate-800">
              {t('review.rating')}
            </label>
            <select id="review-rating" value={rating} onChange={(e) => setRating(e.currentTarget.value)} class={inputClass}>
              {[5, 4, 3, 2, 1].map((n) => (
                <option key={n} value={String(n)}>
                  {t('review.stars', { rating: n })}
                </option>
              ))}
            </select>
          </div>
        </div>
        <div class="flex flex-col gap-1">
          <label for="review-body" class="text-sm font-medium text-slate-800">
            {t('review.body')}
          </label>
          <textarea id="review-body" rows={3} value={body} onInput={(e) => setBody(e.currentTarget.value)} class={inputClass} />
        </div>
        {error && existing && existing.reviewee.id === Number(target) && (
          <p class="text-sm text-slate-700">{t('review.willUpdate')}</p>
        )}
        <div>
          <Button type="submit" disabled={busy}>
            {existing && existing.reviewee.id === Number(target) ? t('review.update') : t('review.submit')}
          </Button>
        </div>
      </form>
    </section>
  );
}
