// Pieces shared by the task board and the task page: status badge, the
// due/assignee line and the complete/reopen/edit/delete controls.
import * as api from '../api';
import type { Member, Task } from '../api';
import { useApp } from '../context';
import { useSubmit } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { isOverdue } from '../tasks';
import { ErrorAlert } from './Alert';
import { Button } from './Button';
import { ConfirmDelete } from './ConfirmDelete';
import { UserLink } from './Study';

export function TaskStatusBadge({ task }: { task: Task }) {
  const { t } = useI18n();
  const done = task.status === 'done';
  return (
    <span
      data-testid="task-status"
      data-status={task.status}
      class={`inline-block rounded-full border px-2 py-0.5 text-xs font-semibold ${
        done ? 'border-emerald-300 bg-emerald-50 text-emerald-900' : 'border-sky-300 bg-sky-50 text-sky-900'
      }`}
    >
      {done ? t('task.status.done') : t('task.status.open')}
    </span>
  );
}

/** Due date, assignee, post count. */
export function TaskMeta({ task }: { task: Task }) {
  const { t } = useI18n();
  const overdue = isOverdue(task);
  return (
    <dl class="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 text-sm text-slate-700 sm:grid-cols-[auto_1fr_auto_1fr]">
      <dt class="text-slate-500">{t('task.due')}</dt>
      <dd data-testid="task-due" class={overdue ? 'font-semibold text-red-800' : undefined}>
        {task.due_on ?? t('task.noDue')}
        {overdue && ` (${t('task.overdue')})`}
      </dd>
      <dt class="text-slate-500">{t('task.assignee')}</dt>
      <dd data-testid="task-assignee">{task.assignee ? <UserLink user={task.assignee} /> : t('task.noAssignee')}</dd>
      <dt class="text-slate-500">{t('task.posts')}</dt>
      <dd data-testid="task-post-count">{task.post_count}</dd>
      <dt class="text-slate-500">{t('task.createdBy')}</dt>
      <dd>
        <UserLink user={task.created_by} />
      </dd>
    </dl>
  );
}

interface ControlsProps {
  task: Task;
  /** The study's members, to know who leads it. */
  members: Member[];
  onChanged: (task: Task) => void;
  onDeleted: () => void;
  onEdit: () => void;
}

/** Whether the signed-in user may delete the task: its creator or the study's leader (the
 * server decides; this only hides a button that would be refused). */
export function canDeleteTask(task: Task, members: Member[], me: number | undefined): boolean {
  if (me === undefined) return false;
  return task.created_by.id === me || members.some((m) => m.role === 'leader' && m.user.id === me);
}

/** Complete / reopen and edit (any member); delete (its creator and the leader), with a
 * confirmation step. */
export function TaskControls({ task, members, onChanged, onDeleted, onEdit }: ControlsProps) {
  const { t } = useI18n();
  const { user } = useApp();
  const mayDelete = canDeleteTask(task, members, user?.id);
  const { busy, error, run } = useSubmit();
  const toggle = () =>
    run(async () => onChanged(await api.updateTask(task.study_id, task.id, { status: task.status === 'done' ? 'open' : 'done' })));
  const remove = () =>
    run(async () => {
      await api.deleteTask(task.study_id, task.id);
      onDeleted();
    });

  return (
    <div class="flex flex-col gap-2">
      <div class="flex flex-wrap items-center gap-2">
        <Button variant={task.status === 'done' ? 'secondary' : 'primary'} disabled={busy} onClick={toggle}>
          {task.status === 'done' ? t('task.reopen') : t('task.complete')}
          <span class="sr-only">: {task.title}</span>
        </Button>
        <Button variant="secondary" disabled={busy} onClick={onEdit}>
          {t('task.edit')}
          <span class="sr-only">: {task.title}</span>
        </Button>
        {mayDelete && (
          <ConfirmDelete
            label={
              <>
                {t('task.delete')}
                <span class="sr-only">: {task.title}</span>
              </>
            }
            question={t('task.deleteConfirm')}
            yes={t('task.deleteYes')}
            busy={busy}
            disabled={busy}
            onConfirm={remove}
          />
        )}
      </div>
      {error && <ErrorAlert>{errorMessage(error, 'task')}</ErrorAlert>}
    </div>
  );
}
