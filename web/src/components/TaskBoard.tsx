// The study page's task board (members and the leader): filters
// (all/open/done/mine), the task list, a form for a new task, and per-task
// complete/reopen, edit and delete. The study page watches the study; the
// board applies `task_*` events to its list as they come (a created or deleted
// post is followed by `task_updated` with the new `post_count`, so post events
// need nothing here) and re-reads it after every `hello` and a `resync`.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { type ApiError, type Member, type Task, TASK_FILTERS, type TaskFilter } from '../api';
import { useApp } from '../context';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { linkClick } from '../router';
import { type ContentEvent, useStudyEvents } from '../studyLive';
import { upsertTask } from '../tasks';
import { ErrorAlert } from './Alert';
import { Button } from './Button';
import { TaskControls, TaskMeta, TaskStatusBadge } from './Task';
import { TaskForm } from './TaskForm';

const sectionClass = 'flex flex-col gap-3 rounded-lg border border-slate-200 bg-white p-4';

export function TaskBoard({ studyId, members }: { studyId: number; members: Member[] }) {
  const { t } = useI18n();
  const myId = useApp().user?.id ?? null;
  const [filter, setFilter] = useState<TaskFilter>('all');
  const [tasks, setTasks] = useState<Task[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<number | null>(null);
  const filterRef = useRef(filter);
  filterRef.current = filter;
  // Reads overlap with live events: only the newest read is applied, and a
  // read that was in flight while an event arrived is followed by another.
  const gen = useRef(0);
  const eventsSeen = useRef(0);

  const reload = useCallback(async () => {
    const mine = ++gen.current;
    const seenAtStart = eventsSeen.current;
    try {
      const items = await api.listTasks(studyId, filter);
      if (mine !== gen.current) return;
      setTasks(items);
      setLoaded(true);
      setError(null);
      if (eventsSeen.current !== seenAtStart) void reload();
    } catch (e) {
      if (mine === gen.current) setError(toApiError(e));
    }
  }, [studyId, filter]);

  useEffect(() => {
    setLoaded(false);
    void reload();
  }, [reload]);

  const put = (task: Task) => setTasks((list) => upsertTask(list, task, filterRef.current, myId));
  const drop = (id: number) => setTasks((list) => list.filter((x) => x.id !== id));

  useStudyEvents(
    studyId,
    {
      onEvent: (e: ContentEvent) => {
        if (e.kind === 'task_created' || e.kind === 'task_updated') put(e.task);
        else if (e.kind === 'task_deleted') drop(e.task_id);
        else return; // post events: the `task_updated` that follows carries the post count
        eventsSeen.current += 1;
      },
      onReconnect: () => void reload(),
      onMembersChanged: () => void reload(),
    },
    { watch: false },
  );

  return (
    <section aria-labelledby="tasks-h" class={sectionClass} data-testid="task-board">
      <div class="flex flex-wrap items-center justify-between gap-2">
        <h2 id="tasks-h" class="text-lg font-semibold">
          {t('tasks.title')}
        </h2>
        {!creating && <Button onClick={() => setCreating(true)}>{t('tasks.new')}</Button>}
      </div>

      {creating && (
        <div class="rounded-md border border-slate-200 p-3" data-testid="task-create">
          <h3 class="mb-2 font-semibold">{t('tasks.new')}</h3>
          <TaskForm
            members={members}
            task={null}
            onSubmit={async (input) => {
              put(await api.createTask(studyId, input));
              setCreating(false);
            }}
            onCancel={() => setCreating(false)}
          />
        </div>
      )}

      <div role="group" aria-label={t('tasks.filter')} class="flex flex-wrap gap-1">
        {TASK_FILTERS.map((f) => (
          <button
            key={f}
            type="button"
            aria-pressed={filter === f}
            data-testid={`task-filter-${f}`}
            onClick={() => setFilter(f)}
            class={`rounded-full border px-3 py-1 text-sm font-semibold focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600 ${
              filter === f ? 'border-blue-700 bg-blue-700 text-white' : 'border-slate-300 bg-white text-slate-800 hover:bg-slate-100'
            }`}
          >
            {t(`tasks.filter.${f}`)}
          </button>
        ))}
      </div>

      {error && (
        <div class="flex flex-col items-start gap-2">
          <ErrorAlert>{errorMessage(error)}</ErrorAlert>
          <Button variant="secondary" onClick={() => void reload()}>
            {t('error.retry')}
          </Button>
        </div>
      )}
      {!loaded && !error && <p role="status">{t('app.loading')}</p>}
      {loaded && tasks.length === 0 && (
        <p data-testid="tasks-empty" class="text-slate-600">
          {filter === 'all' ? t('tasks.empty') : t('tasks.emptyFilter')}
        </p>
      )}
      <ul class="flex flex-col gap-3" data-testid="task-list">
        {tasks.map((task) => (
          <li key={task.id}>
            {editing === task.id ? (
              <div class="rounded-md border border-slate-200 p-3">
                <TaskForm
                  members={members}
                  task={task}
                  onSubmit={async (_, changed) => {
                    put(await api.updateTask(studyId, task.id, changed));
                    setEditing(null);
                  }}
                  onCancel={() => setEditing(null)}
                />
              </div>
            ) : (
              <TaskCard task={task} members={members} onChanged={put} onDeleted={() => drop(task.id)} onEdit={() => setEditing(task.id)} />
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function TaskCard({
  task,
  members,
  onChanged,
  onDeleted,
  onEdit,
}: {
  task: Task;
  members: Member[];
  onChanged: (t: Task) => void;
  onDeleted: () => void;
  onEdit: () => void;
}) {
  return (
    <article data-testid="task" data-task-id={task.id} data-status={task.status} class="flex flex-col gap-2 rounded-md border border-slate-200 p-3">
      <div class="flex flex-wrap items-start justify-between gap-2">
        <h3 class="font-semibold">
          <a
            href={`/studies/${task.study_id}/tasks/${task.id}`}
            onClick={linkClick}
            data-testid="task-link"
            class={`text-blue-900 hover:underline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600 ${
              task.status === 'done' ? 'line-through decoration-slate-400' : ''
            }`}
          >
            {task.title}
          </a>
        </h3>
        <TaskStatusBadge task={task} />
      </div>
      <TaskMeta task={task} />
      <TaskControls task={task} members={members} onChanged={onChanged} onDeleted={onDeleted} onEdit={onEdit} />
    </article>
  );
}
