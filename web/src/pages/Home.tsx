// Home: who is signed in, the live connection, and where to pick up: my open
// tasks across my studies (soonest due first) and the studies I lead or joined.
// Both are read when the page opens, after every reconnect, and when a
// `task_assigned` notification arrives.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, MyTask, StudySummary } from '../api';
import { ErrorAlert } from '../components/Alert';
import { Button } from '../components/Button';
import { ConnIndicator } from '../components/ConnIndicator';
import { Layout } from '../components/Layout';
import { linkClass } from '../components/Study';
import { useApp } from '../context';
import { toApiError, useSubmit } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { linkClick } from '../router';
import { isOverdue } from '../tasks';
import { StudyList } from './MyStudies';

interface Work {
  tasks: MyTask[];
  studies: StudySummary[];
}

function useWork(): { work: Work | null; error: ApiError | null; reload: () => Promise<void> } {
  const live = useApp().live;
  const [work, setWork] = useState<Work | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  // Reads can overlap (a reconnect and a notification); only the newest one is shown.
  const latest = useRef(0);
  const read = useCallback(async (mounted: () => boolean) => {
    const mine = ++latest.current;
    const isCurrent = () => mounted() && mine === latest.current;
    try {
      const [tasks, studies] = await Promise.all([api.myTasks(), api.myStudies()]);
      if (isCurrent()) {
        setWork({ tasks, studies: [...studies.leading, ...studies.joined] });
        setError(null);
      }
    } catch (e) {
      if (isCurrent()) setError(toApiError(e));
    }
  }, []);
  useEffect(() => {
    let mounted = true;
    void read(() => mounted);
    const offs = [
      live?.on('hello', () => void read(() => mounted)),
      // Someone gave me a task: it belongs in the list now.
      live?.on('notification', (f) => {
        const kind = (f as { notification?: { kind?: unknown } }).notification?.kind;
        if (kind === 'task_assigned') void read(() => mounted);
      }),
    ];
    return () => {
      mounted = false;
      for (const off of offs) off?.();
    };
  }, [live, read]);
  return { work, error, reload: () => read(() => true) };
}

/** One of my tasks, with "Mark done" right here (it then leaves the list). */
function MyTaskItem({ task, onDone }: { task: MyTask; onDone: () => Promise<void> }) {
  const { t } = useI18n();
  const { busy, error, run } = useSubmit();
  const overdue = isOverdue(task);
  return (
    <li data-testid="my-task" class="flex flex-wrap items-center gap-x-3 gap-y-1 rounded-md border border-slate-200 bg-white p-3">
      <a href={`/studies/${task.study_id}/tasks/${task.id}`} onClick={linkClick} class={`${linkClass} font-semibold`}>
        {task.title}
      </a>
      <span class="text-sm text-slate-600">{task.study_title}</span>
      <span data-testid="my-task-due" class={`text-sm ${overdue ? 'font-semibold text-red-800' : 'text-slate-700'}`}>
        {task.due_on ? t('home.dueOn', { date: task.due_on }) : t('task.noDue')}
        {overdue && ` (${t('task.overdue')})`}
      </span>
      <Button
        variant="secondary"
        disabled={busy}
        onClick={() =>
          run(async () => {
            await api.updateTask(task.study_id, task.id, { status: 'done' });
            await onDone();
          })
        }
      >
        {t('task.complete')}
        <span class="sr-only">: {task.title}</span>
      </Button>
      {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
    </li>
  );
}

function MyTasks({ tasks, onDone }: { tasks: MyTask[]; onDone: () => Promise<void> }) {
  const { t } = useI18n();
  return (
    <section aria-labelledby="my-tasks-h" data-testid="my-tasks" class="flex flex-col gap-2">
      <h2 id="my-tasks-h" class="text-lg font-semibold">
        {t('home.myTasks')}
      </h2>
      {tasks.length === 0 ? (
        <p class="text-slate-600">{t('home.noTasks')}</p>
      ) : (
        <ul class="flex flex-col gap-2">
          {tasks.map((task) => (
            <MyTaskItem key={task.id} task={task} onDone={onDone} />
          ))}
        </ul>
      )}
    </section>
  );
}

export function HomePage() {
  const { t } = useI18n();
  const app = useApp();
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const { work, error: workError, reload } = useWork();
  const user = app.user;
  if (!user) return null;

  async function onLogout() {
    if (busy) return;
    setBusy(true);
    setError(null);
    // Close our socket first, so the server's 4001 close for this logout is
    // not mistaken for a revocation from elsewhere.
    app.live?.stop();
    try {
      await api.logout();
    } catch (err) {
      const e = toApiError(err);
      // Already logged out server-side: carry on as if it worked.
      if (e.status !== 401) {
        setError(e);
        setBusy(false);
        app.live?.start();
        return;
      }
    }
    app.signedOut('loggedOut');
  }

  return (
    <Layout titleKey="home.title">
      <div class="flex flex-col gap-6">
        <div class="flex flex-wrap items-start justify-between gap-4">
          <div>
            <h1 class="text-2xl font-bold">
              {t('home.welcome')}
              <span data-testid="display-name">{user.display_name}</span>
              {t('home.welcomeEnd')}
            </h1>
            <p class="mt-1 text-sm text-slate-600">{t('home.signedInAs', { login: user.login_id })}</p>
          </div>
          <Button variant="secondary" onClick={onLogout} disabled={busy}>
            {busy ? t('home.loggingOut') : t('home.logout')}
          </Button>
        </div>
        {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
        <section aria-labelledby="conn-heading" class="flex items-center gap-3">
          <h2 id="conn-heading" class="text-sm font-medium text-slate-700">
            {t('home.connection')}
          </h2>
          <ConnIndicator state={app.connState} />
        </section>
        {workError && <ErrorAlert>{errorMessage(workError)}</ErrorAlert>}
        {!work && !workError && <p role="status">{t('app.loading')}</p>}
        {work && <MyTasks tasks={work.tasks} onDone={reload} />}
        {work &&
          (work.studies.length ? (
            <StudyList testId="home-studies" titleKey="home.myStudies" items={work.studies} />
          ) : (
            <p data-testid="home-empty" class="rounded-lg border border-dashed border-slate-300 p-6 text-center text-slate-600">
              {t('home.empty')}{' '}
              <a href="/studies" onClick={linkClick} class={linkClass}>
                {t('home.findStudy')}
              </a>
            </p>
          ))}
      </div>
    </Layout>
  );
}
