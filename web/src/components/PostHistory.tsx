// A co-edited post body's version history (`…/posts/{id}/versions`): the
// versions newest first (time, name or "automatic", who edited), a preview of
// one (the server's sanitized `body_html`), restoring one after a confirmation
// (the restored text reaches every open editor as an ordinary edit), and
// taking a named version of the body as it is now.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { ApiError, type DocVersion, type DocVersionPreview, VERSION_NAME_MAX } from '../api';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { inputClass } from '../pages/Studies';
import { ErrorAlert, Notice } from './Alert';
import { Button } from './Button';
import { ConfirmDelete } from './ConfirmDelete';

interface Props {
  studyId: number;
  postId: number;
  /** Restoring is an edit: not while the body is read-only for this user. */
  readOnly: boolean;
  /** Changes when the post changed (its `version`): the list is read again. */
  refreshKey: number;
}

export function PostHistory({ studyId, postId, readOnly, refreshKey }: Props) {
  const { t, lang } = useI18n();
  const [versions, setVersions] = useState<DocVersion[] | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [preview, setPreview] = useState<DocVersionPreview | null>(null);
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const seq = useRef(0);

  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const list = await api.listVersions(studyId, postId);
      if (mine !== seq.current) return;
      setVersions(list);
      setLoadError(null);
    } catch (e) {
      if (mine === seq.current) setLoadError(toApiError(e));
    }
  }, [studyId, postId]);

  useEffect(() => {
    void reload();
  }, [reload, refreshKey]);

  const when = (ms: number) => new Date(ms).toLocaleString(lang);

  async function save(e: Event) {
    e.preventDefault();
    const trimmed = name.trim();
    if (busy) return;
    if (!trimmed) {
      setError(new ApiError(400, 'validation_failed', 'a version needs a name', 'name'));
      return;
    }
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const v = await api.takeVersion(studyId, postId, trimmed);
      setName('');
      setNotice(t('history.saved', { name: v.name ?? trimmed }));
      await reload();
    } catch (err) {
      setError(toApiError(err));
    }
    setBusy(false);
  }

  async function show(v: DocVersion) {
    setError(null);
    try {
      setPreview(await api.getVersion(studyId, postId, v.id));
    } catch (err) {
      setError(toApiError(err));
    }
  }

  async function restore(v: DocVersion) {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      await api.restoreVersion(studyId, postId, v.id);
      setNotice(t('history.restored', { when: when(v.created_at) }));
      setPreview(null);
      await reload();
    } catch (err) {
      setError(toApiError(err));
    }
    setBusy(false);
  }

  return (
    <section aria-labelledby="history-h" class="flex flex-col gap-3 rounded-lg border border-slate-200 bg-white p-4" data-testid="history-panel">
      <h2 id="history-h" class="text-lg font-semibold">
        {t('history.title')}
      </h2>
      <form class="flex flex-wrap items-end gap-2" onSubmit={save} noValidate data-testid="version-form">
        <div class="flex min-w-0 flex-1 flex-col gap-1">
          <label for="version-name" class="text-sm font-medium text-slate-800">
            {t('history.nameLabel')}
          </label>
          <input
            id="version-name"
            class={inputClass}
            value={name}
            maxLength={VERSION_NAME_MAX}
            onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)}
            disabled={busy}
            aria-describedby="version-name-hint"
          />
          <p id="version-name-hint" class="text-xs text-slate-600">
            {t('history.nameHint', { max: VERSION_NAME_MAX })}
          </p>
        </div>
        <Button type="submit" disabled={busy}>
          {t('history.save')}
        </Button>
      </form>
      {error && <ErrorAlert>{errorMessage(error, 'version')}</ErrorAlert>}
      {notice && <Notice>{notice}</Notice>}
      {loadError ? (
        <ErrorAlert>{errorMessage(loadError)}</ErrorAlert>
      ) : versions === null ? (
        <p role="status">{t('app.loading')}</p>
      ) : versions.length === 0 ? (
        <p class="text-sm text-slate-600" data-testid="history-empty">
          {t('history.empty')}
        </p>
      ) : (
        <ol class="flex flex-col divide-y divide-slate-200" data-testid="history-list">
          {versions.map((v) => (
            <li key={v.id} class="flex flex-col gap-1 py-2" data-testid="history-version" data-version-id={v.id}>
              <div class="flex flex-wrap items-baseline gap-x-2">
                <span class="font-medium" data-testid="history-version-name">
                  {v.name ?? t('history.automatic')}
                </span>
                <time class="text-sm text-slate-600" dateTime={new Date(v.created_at).toISOString()}>
                  {when(v.created_at)}
                </time>
                <span class="text-sm text-slate-600">{t('history.chars', { count: v.chars })}</span>
              </div>
              {(v.authors.length > 0 || v.created_by) && (
                <p class="text-sm text-slate-700" data-testid="history-version-authors">
                  {v.authors.length > 0 && t('history.authors', { names: v.authors.map((a) => a.display_name).join(', ') })}
                  {v.authors.length > 0 && v.created_by && ' · '}
                  {v.created_by && t('history.savedBy', { name: v.created_by.display_name })}
                </p>
              )}
              <div class="flex flex-wrap items-center gap-2">
                <Button variant="secondary" onClick={() => void show(v)}>
                  {t('history.preview')}
                </Button>
                <ConfirmDelete
                  label={t('history.restore')}
                  question={t('history.restoreConfirm')}
                  yes={t('history.restoreYes')}
                  busy={busy}
                  disabled={readOnly || busy}
                  onConfirm={() => void restore(v)}
                />
              </div>
            </li>
          ))}
        </ol>
      )}
      {preview && (
        <section aria-labelledby="version-preview-h" class="flex flex-col gap-2 rounded-md border border-slate-300 bg-slate-50 p-3" data-testid="version-preview">
          <div class="flex flex-wrap items-center justify-between gap-2">
            <h3 id="version-preview-h" class="font-semibold">
              {t('history.previewTitle', { name: preview.version.name ?? t('history.automatic'), when: when(preview.version.created_at) })}
            </h3>
            <Button variant="secondary" onClick={() => setPreview(null)}>
              {t('history.closePreview')}
            </Button>
          </div>
          {/* body_html is sanitized by the server. */}
          <div class="markdown post-body" data-testid="version-preview-body" dangerouslySetInnerHTML={{ __html: preview.body_html }} />
        </section>
      )}
    </section>
  );
}
