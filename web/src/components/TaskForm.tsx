// Create or edit a task: title, markdown description, optional due date and
// optional assignee (one of the study's members).
import { useId, useState } from 'preact/hooks';
import { type Member, type Task, TASK_DESCRIPTION_MAX, TASK_TITLE_MAX, type TaskInput } from '../api';
import { required, useSubmit } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { changedTaskFields } from '../tasks';
import { inputClass } from '../pages/Studies';
import { ErrorAlert } from './Alert';
import { Button } from './Button';
import { Field, TextAreaField } from './Field';

interface TaskFormProps {
  members: Member[];
  /** The task being edited; null for a new one. */
  task: Task | null;
  /**
   * `input`: every field. `changed`: the fields that differ from the task as
   * it was when the form opened (live updates may change `task` meanwhile); an
   * edit sends only these, so it cannot put back what someone else changed.
   */
  onSubmit: (input: TaskInput, changed: Partial<TaskInput>) => Promise<unknown>;
  onCancel?: () => void;
}

export function TaskForm({ members, task, onSubmit, onCancel }: TaskFormProps) {
  const { t } = useI18n();
  const uid = useId();
  const id = (f: string) => `task-${uid}-${f}`;
  const [title, setTitle] = useState(task?.title ?? '');
  const [description, setDescription] = useState(task?.description ?? '');
  const [dueOn, setDueOn] = useState(task?.due_on ?? '');
  const [assignee, setAssignee] = useState(task?.assignee ? String(task.assignee.id) : '');
  const [opened] = useState(task);
  const { busy, error, fail, run } = useSubmit();

  async function submit(e: Event) {
    e.preventDefault();
    if (busy) return;
    const input: TaskInput = {
      title: title.trim(),
      description,
      due_on: dueOn || null,
      assignee_id: assignee ? Number(assignee) : null,
    };
    const missing = required({ title: input.title });
    if (missing) return fail(missing);
    await run(async () => {
      await onSubmit(input, opened ? changedTaskFields(opened, input) : input);
      if (!task) {
        setTitle('');
        setDescription('');
        setDueOn('');
        setAssignee('');
      }
    });
  }

  const invalid = error?.field ?? null;
  const errId = id('error');
  // A task may still name someone who has left; keep them selectable so an edit does not clear it silently.
  const options = members.map((m) => m.user);
  if (task?.assignee && !options.some((u) => u.id === task.assignee!.id)) options.push({ ...task.assignee, login_id: '' });

  return (
    <form class="flex flex-col gap-3" onSubmit={submit} data-testid="task-form" noValidate>
      <Field
        id={id('title')}
        name="title"
        label={t('task.field.title')}
        value={title}
        onInput={setTitle}
        hint={t('task.hint.title', { max: TASK_TITLE_MAX })}
        invalid={invalid === 'title'}
        errorId={errId}
      />
      <TextAreaField
        id={id('description')}
        label={t('task.field.description')}
        value={description}
        onInput={setDescription}
        rows={3}
        maxLength={TASK_DESCRIPTION_MAX}
        hint={t('hint.description')}
        invalid={invalid === 'description'}
        errorId={errId}
        class={inputClass}
      />
      <div class="flex flex-wrap gap-4">
        <div class="flex flex-col gap-1">
          <label for={id('due')} class="text-sm font-medium text-slate-800">
            {t('task.field.due_on')}
          </label>
          <input
            id={id('due')}
            type="date"
            value={dueOn}
            onInput={(e) => setDueOn(e.currentTarget.value)}
            aria-invalid={invalid === 'due_on' ? 'true' : undefined}
            aria-describedby={invalid === 'due_on' ? errId : undefined}
            class={inputClass}
          />
        </div>
        <div class="flex flex-col gap-1">
          <label for={id('assignee')} class="text-sm font-medium text-slate-800">
            {t('task.field.assignee')}
          </label>
          <select
            id={id('assignee')}
            value={assignee}
            onChange={(e) => setAssignee(e.currentTarget.value)}
            aria-invalid={invalid === 'assignee_id' ? 'true' : undefined}
            aria-describedby={invalid === 'assignee_id' ? errId : undefined}
            class={inputClass}
          >
            <option value="">{t('task.noAssignee')}</option>
            {options.map((u) => (
              <option key={u.id} value={String(u.id)}>
                {u.display_name}
              </option>
            ))}
          </select>
        </div>
      </div>
      {error && <ErrorAlert id={errId}>{errorMessage(error, 'task')}</ErrorAlert>}
      <div class="flex flex-wrap gap-2">
        <Button type="submit" disabled={busy}>
          {busy ? t('task.saving') : task ? t('task.save') : t('task.create')}
        </Button>
        {onCancel && (
          <Button variant="secondary" onClick={onCancel}>
            {t('task.cancel')}
          </Button>
        )}
      </div>
    </form>
  );
}
