import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { ApiError, type StudyField, type StudyInput } from '../api';
import { ErrorAlert } from '../components/Alert';
import { Button } from '../components/Button';
import { Layout } from '../components/Layout';
import { Chips, linkClass } from '../components/Study';
import { toApiError } from '../forms';
import { errorMessage, type MessageKey, useI18n } from '../i18n';
import { linkClick, navigate } from '../router';
import { inputClass, parseTags } from './Studies';

type Values = Omit<StudyInput, 'capacity' | 'tags'> & { capacity: string };

const EMPTY: Values = {
  title: '',
  description: '',
  capacity: '4',
  recruit_opens_on: '',
  recruit_closes_on: '',
  starts_on: '',
  ends_on: '',
};

const DATE_FIELDS = ['recruit_opens_on', 'recruit_closes_on', 'starts_on', 'ends_on'] as const;

function fieldError(field: StudyField): ApiError {
  return new ApiError(400, 'required', '', field);
}

/** Create (`id === null`) or edit a study. */
export function StudyFormPage({ id }: { id: number | null }) {
  const { t } = useI18n();
  const [values, setValues] = useState<Values>(EMPTY);
  const [tags, setTags] = useState<string[]>([]);
  const [tagText, setTagText] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [loading, setLoading] = useState(id !== null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const refs = useRef<Partial<Record<StudyField, HTMLElement | null>>>({});

  useEffect(() => {
    if (id === null) return;
    let cancelled = false;
    api.getStudy(id).then(
      (s) => {
        if (cancelled) return;
        setValues({
          title: s.title,
          description: s.description,
          capacity: String(s.capacity),
          recruit_opens_on: s.recruit_opens_on,
          recruit_closes_on: s.recruit_closes_on,
          starts_on: s.starts_on,
          ends_on: s.ends_on,
        });
        setTags(s.tags);
        if (s.my_role !== 'leader') setLoadError(new ApiError(403, 'leader_only', 'only the leader can edit'));
        setLoading(false);
      },
      (e) => {
        if (cancelled) return;
        setLoadError(toApiError(e));
        setLoading(false);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [id]);

  const set = (k: keyof Values) => (e: Event) =>
    setValues((v) => ({ ...v, [k]: (e.currentTarget as HTMLInputElement).value }));

  function addTags(text: string) {
    const add = parseTags(text);
    if (add.length) setTags((prev) => [...prev, ...add.filter((x) => !prev.includes(x))]);
    setTagText('');
  }

  function fail(err: ApiError) {
    setError(err);
    const field = err.field as StudyField | null;
    if (field) {
      refs.current[field]?.focus();
    }
  }

  async function onSubmit(e: Event) {
    e.preventDefault();
    if (busy) return;
    const allTags = [...tags, ...parseTags(tagText).filter((x) => !tags.includes(x))];
    if (tagText.trim()) {
      setTags(allTags);
      setTagText('');
    }
    const input: StudyInput = {
      title: values.title.trim(),
      description: values.description,
      tags: allTags,
      capacity: Number(values.capacity),
      recruit_opens_on: values.recruit_opens_on,
      recruit_closes_on: values.recruit_closes_on,
      starts_on: values.starts_on,
      ends_on: values.ends_on,
    };
    // Light client-side checks; the server stays the authority.
    if (!input.title) return fail(fieldError('title'));
    if (!values.capacity.trim()) return fail(fieldError('capacity'));
    if (!Number.isInteger(input.capacity)) return fail(new ApiError(400, 'validation_failed', '', 'capacity'));
    for (const f of DATE_FIELDS) if (!input[f]) return fail(fieldError(f));
    setBusy(true);
    setError(null);
    try {
      const study = id === null ? await api.createStudy(input) : await api.updateStudy(id, input);
      navigate(`/studies/${study.id}`);
    } catch (err) {
      fail(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  const titleKey: MessageKey = id === null ? 'studyForm.createTitle' : 'studyForm.editTitle';
  const invalid = error?.field ?? null;
  const errId = (f: StudyField) => `study-${f}-error`;
  const FieldError = ({ field }: { field: StudyField }) =>
    invalid === field && error ? (
      <p id={errId(field)} data-testid={`field-error-${field}`} class="text-sm font-medium text-red-800">
        {errorMessage(error)}
      </p>
    ) : null;
  const aria = (f: StudyField, hint?: string) => ({
    'aria-invalid': invalid === f ? ('true' as const) : undefined,
    'aria-describedby': [hint, invalid === f ? errId(f) : undefined].filter(Boolean).join(' ') || undefined,
  });
  const cls = (f: StudyField) => `${inputClass} ${invalid === f ? 'border-red-500' : ''}`;
  const label = (f: StudyField) => (
    <label for={`study-${f}`} class="text-sm font-medium text-slate-800">
      {t(`field.${f}` as MessageKey)}
    </label>
  );

  if (loading || loadError) {
    return (
      <Layout titleKey={titleKey}>
        {loadError ? <ErrorAlert>{errorMessage(loadError)}</ErrorAlert> : <p role="status">{t('app.loading')}</p>}
      </Layout>
    );
  }

  return (
    <Layout titleKey={titleKey}>
      <h1 class="mb-6 text-2xl font-bold">{t(titleKey)}</h1>
      <form class="flex flex-col gap-5" onSubmit={onSubmit} noValidate aria-busy={busy}>
        {error && <ErrorAlert id="study-form-error">{errorMessage(error)}</ErrorAlert>}
        <div class="flex flex-col gap-1">
          {label('title')}
          <input
            id="study-title"
            type="text"
            name="title"
            value={values.title}
            onInput={set('title')}
            ref={(el) => {
              refs.current.title = el;
            }}
            class={cls('title')}
            {...aria('title')}
          />
          <FieldError field="title" />
        </div>
        <div class="flex flex-col gap-1">
          {label('description')}
          <textarea
            id="study-description"
            name="description"
            rows={8}
            value={values.description}
            onInput={set('description')}
            ref={(el) => {
              refs.current.description = el;
            }}
            class={`${cls('description')} font-mono text-sm`}
            {...aria('description', 'study-description-hint')}
          />
          <p id="study-description-hint" class="text-xs text-slate-600">
            {t('hint.description')}
          </p>
          <FieldError field="description" />
        </div>
        <div class="flex flex-col gap-2">
          {label('tags')}
          <input
            id="study-tags"
            type="text"
            name="tags"
            value={tagText}
            onInput={(e) => {
              const v = e.currentTarget.value;
              if (v.includes(',')) addTags(v);
              else setTagText(v);
            }}
            onKeyDown={(e) => {
              if (e.key === 'Enter') {
                e.preventDefault();
                addTags(tagText);
              } else if (e.key === 'Backspace' && !tagText && tags.length) {
                setTags(tags.slice(0, -1));
              }
            }}
            onBlur={() => tagText.trim() && addTags(tagText)}
            ref={(el) => {
              refs.current.tags = el;
            }}
            class={cls('tags')}
            {...aria('tags', 'study-tags-hint')}
          />
          <p id="study-tags-hint" class="text-xs text-slate-600">
            {t('hint.tags')}
          </p>
          <Chips items={tags} onRemove={(tag) => setTags(tags.filter((x) => x !== tag))} removeLabel={(tag) => t('tags.remove', { tag })} />
          <FieldError field="tags" />
        </div>
        <div class="flex flex-col gap-1">
          {label('capacity')}
          <input
            id="study-capacity"
            type="number"
            name="capacity"
            min={2}
            inputMode="numeric"
            value={values.capacity}
            onInput={set('capacity')}
            ref={(el) => {
              refs.current.capacity = el;
            }}
            class={`${cls('capacity')} w-32`}
            {...aria('capacity', 'study-capacity-hint')}
          />
          <p id="study-capacity-hint" class="text-xs text-slate-600">
            {t('hint.capacity')}
          </p>
          <FieldError field="capacity" />
        </div>
        <div class="grid gap-4 sm:grid-cols-2">
          {DATE_FIELDS.map((f) => (
            <div key={f} class="flex flex-col gap-1">
              {label(f)}
              <input
                id={`study-${f}`}
                type="date"
                name={f}
                value={values[f]}
                onInput={set(f)}
                ref={(el) => {
                  refs.current[f] = el;
                }}
                class={cls(f)}
                {...aria(f)}
              />
              <FieldError field={f} />
            </div>
          ))}
        </div>
        <div class="flex flex-wrap items-center gap-4">
          <Button type="submit" disabled={busy}>
            {busy ? t('studyForm.saving') : id === null ? t('studyForm.create') : t('studyForm.save')}
          </Button>
          <a href={id === null ? '/studies' : `/studies/${id}`} onClick={linkClick} class={linkClass}>
            {t('studyForm.cancel')}
          </a>
        </div>
      </form>
    </Layout>
  );
}
