// One task (`/studies/:id/tasks/:taskId`): its details, controls and posts.
// Watches the study, so edits, completion, deletion and new posts by others
// show up live.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, Member, StudyDetail, Task } from '../api';
import { ErrorAlert, Notice } from '../components/Alert';
import { Layout } from '../components/Layout';
import { PostList } from '../components/PostList';
import { linkClass } from '../components/Study';
import { TaskControls, TaskMeta, TaskStatusBadge } from '../components/Task';
import { TaskForm } from '../components/TaskForm';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { linkClick, navigate } from '../router';
import { leaveDeletedStudy, useStudyEvents } from '../studyLive';

type Load =
  | { state: 'loading' }
  | { state: 'error'; error: ApiError }
  | { state: 'ready'; study: StudyDetail; task: Task; members: Member[] };

export function TaskDetailPage({ studyId, taskId }: { studyId: number; taskId: number }) {
  const { t } = useI18n();
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [deleted, setDeleted] = useState(false);
  const [removed, setRemoved] = useState(false);
  const [editing, setEditing] = useState(false);
  const seq = useRef(0);
  const loaded = useRef(false);

  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const [study, task, members] = await Promise.all([
        api.getStudy(studyId),
        api.getTask(studyId, taskId),
        api.listMembers(studyId).catch(() => [] as Member[]),
      ]);
      if (mine !== seq.current) return;
      loaded.current = true;
      setLoad({ state: 'ready', study, task, members });
    } catch (e) {
      if (mine !== seq.current) return;
      const err = toApiError(e);
      // Still showing the task and it is gone now: say so instead of a bare error.
      if (err.code === 'not_found' && loaded.current) setDeleted(true);
      setLoad((prev) => (prev.state === 'ready' ? prev : { state: 'error', error: err }));
    }
  }, [studyId, taskId]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const setTask = (task: Task) => setLoad((prev) => (prev.state === 'ready' ? { ...prev, task } : prev));

  useStudyEvents(
    studyId,
    {
      onEvent: (e) => {
        if ((e.kind === 'task_updated' || e.kind === 'task_created') && e.task.id === taskId) setTask(e.task);
        else if (e.kind === 'task_deleted' && e.task_id === taskId) setDeleted(true);
        // A new or deleted post is followed by `task_updated` with the new post count.
      },
      onReconnect: () => void reload(),
      onRemoved: () => setRemoved(true),
      onDeleted: () => leaveDeletedStudy(load.state === 'ready' ? load.study.title : null),
    },
    { watch: true },
  );

  const back = (
    <a href={`/studies/${studyId}`} onClick={linkClick} class={linkClass} data-testid="back-to-study">
      {load.state === 'ready' ? t('task.backTo', { study: load.study.title }) : t('task.backToStudy')}
    </a>
  );

  if (removed) {
    return (
      <Layout titleKey="task.pageTitle">
        <div class="flex flex-col items-start gap-4">
          <Notice>{t('study.removedNotice')}</Notice>
          <a href={`/studies/${studyId}`} onClick={linkClick} class={linkClass}>
            {t('task.backToStudy')}
          </a>
        </div>
      </Layout>
    );
  }
  if (deleted) {
    return (
      <Layout titleKey="task.pageTitle">
        <div class="flex flex-col items-start gap-4">
          <Notice>{t('task.deletedNotice')}</Notice>
          {back}
        </div>
      </Layout>
    );
  }
  if (load.state !== 'ready') {
    return (
      <Layout titleKey="task.pageTitle">
        {load.state === 'loading' ? (
          <p role="status">{t('app.loading')}</p>
        ) : (
          <div class="flex flex-col items-start gap-4">
            <ErrorAlert>{load.error.code === 'not_found' ? t('task.notFound') : errorMessage(load.error)}</ErrorAlert>
            {back}
          </div>
        )}
      </Layout>
    );
  }

  const { task, members } = load;
  return (
    <Layout titleKey="task.pageTitle">
      <div class="flex flex-col gap-6">
        <nav aria-label={t('task.breadcrumb')}>{back}</nav>
        <article class="flex flex-col gap-3 rounded-lg border border-slate-200 bg-white p-4" data-testid="task-detail" data-status={task.status}>
          <div class="flex flex-wrap items-start justify-between gap-2">
            <h1 class="text-2xl font-bold" data-testid="task-title">
              {task.title}
            </h1>
            <TaskStatusBadge task={task} />
          </div>
          <TaskMeta task={task} />
          {task.description_html && (
            // description_html is sanitized by the server.
            <div class="markdown" data-testid="task-description" dangerouslySetInnerHTML={{ __html: task.description_html }} />
          )}
          {editing ? (
            <TaskForm
              members={members}
              task={task}
              onSubmit={async (input) => {
                setTask(await api.updateTask(studyId, taskId, input));
                setEditing(false);
              }}
              onCancel={() => setEditing(false)}
            />
          ) : (
            <TaskControls task={task} onChanged={setTask} onDeleted={() => navigate(`/studies/${studyId}`)} onEdit={() => setEditing(true)} />
          )}
        </article>
        <PostList studyId={studyId} taskId={taskId} />
      </div>
    </Layout>
  );
}
