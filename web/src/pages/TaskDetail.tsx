// One task (`/studies/:id/tasks/:taskId`): its details, controls and posts.
// Watches the study, so edits, completion, deletion and new posts by others
// show up live.
import { useState } from 'preact/hooks';
import * as api from '../api';
import type { Member, Task } from '../api';
import { Layout } from '../components/Layout';
import { BackLink, PageNotice } from '../components/PageNotice';
import { PostList } from '../components/PostList';
import { TaskControls, TaskMeta, TaskStatusBadge } from '../components/Task';
import { TaskForm } from '../components/TaskForm';
import { errorMessage, useI18n } from '../i18n';
import { useItemLoad } from '../itemLoad';
import { navigate } from '../router';
import { leaveDeletedStudy, useStudyEvents } from '../studyLive';
import { newer } from '../tasks';

export function TaskDetailPage({ studyId, taskId }: { studyId: number; taskId: number }) {
  const { t } = useI18n();
  const { load, setLoad, reload, deleted, setDeleted } = useItemLoad(async () => {
    const [study, task, members] = await Promise.all([
      api.getStudy(studyId),
      api.getTask(studyId, taskId),
      api.listMembers(studyId).catch(() => [] as Member[]),
    ]);
    return { study, task, members };
  }, [studyId, taskId]);
  const [removed, setRemoved] = useState(false);
  const [editing, setEditing] = useState(false);

  const setTask = (task: Task) => setLoad((prev) => (prev.state === 'ready' ? { ...prev, task: newer(prev.task, task) } : prev));

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
    <BackLink href={`/studies/${studyId}`} testId="back-to-study">
      {load.state === 'ready' ? t('task.backTo', { study: load.study.title }) : t('task.backToStudy')}
    </BackLink>
  );

  if (removed || deleted || load.state !== 'ready') {
    return (
      <Layout titleKey="task.pageTitle">
        {removed ? (
          <PageNotice back={<BackLink href={`/studies/${studyId}`}>{t('task.backToStudy')}</BackLink>}>{t('study.removedNotice')}</PageNotice>
        ) : deleted ? (
          <PageNotice back={back}>{t('task.deletedNotice')}</PageNotice>
        ) : load.state === 'error' ? (
          <PageNotice error back={back}>
            {load.error.code === 'not_found' ? t('task.notFound') : errorMessage(load.error)}
          </PageNotice>
        ) : (
          <p role="status">{t('app.loading')}</p>
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
              onSubmit={async (_, changed) => {
                setTask(await api.updateTask(studyId, taskId, changed));
                setEditing(false);
              }}
              onCancel={() => setEditing(false)}
            />
          ) : (
            <TaskControls task={task} members={load.members} onChanged={setTask} onDeleted={() => navigate(`/studies/${studyId}`)} onEdit={() => setEditing(true)} />
          )}
        </article>
        <PostList studyId={studyId} taskId={taskId} />
      </div>
    </Layout>
  );
}
