// Write a post (`/studies/:id/tasks/:taskId/posts/new`) or edit one
// (`/studies/:id/posts/:postId/edit`, author only): title, markdown body and
// attachments. On save the post is created/updated first, then each chosen
// file is uploaded in turn (XHR, raw body, a progress bar per file). When every
// upload succeeded the post is shown; otherwise the editor stays (now editing
// the saved post) with each failure explained, and saving again retries them.
import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import { ApiError, type FileInfo, POST_BODY_MAX, POST_TITLE_MAX } from '../api';
import { ErrorAlert, Notice } from '../components/Alert';
import { AttachmentList } from '../components/Attachments';
import { Button } from '../components/Button';
import { Field, TextAreaField } from '../components/Field';
import { Layout } from '../components/Layout';
import { BackLink, PageNotice } from '../components/PageNotice';
import { linkClass } from '../components/Study';
import { UploadPicker } from '../components/Uploads';
import { useApp } from '../context';
import { required, toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { linkClick, navigate } from '../router';
import { useUploadQueue } from '../uploadQueue';
import { inputClass } from './Studies';

/** How long finished progress bars stay visible before the post is shown. */
const DONE_PAUSE_MS = 600;

type Load = { state: 'loading' } | { state: 'error'; error: ApiError } | { state: 'ready'; taskId: number; taskTitle: string };

interface Props {
  studyId: number;
  /** New post: the task it belongs to. */
  taskId: number | null;
  /** Edit: the post. */
  postId: number | null;
}

export function PostEditorPage({ studyId, taskId, postId }: Props) {
  const { t } = useI18n();
  const me = useApp().user;
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [title, setTitle] = useState('');
  const [body, setBody] = useState('');
  const [files, setFiles] = useState<FileInfo[]>([]);
  const queue = useUploadQueue();
  const { uploads, alive } = queue;
  const [savedId, setSavedId] = useState<number | null>(postId);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  // Uploads were tried since the page opened (a file refused for its size is marked when chosen).
  const [attempted, setAttempted] = useState(false);

  useEffect(() => {
    let cancelled = false;
    const loadIt = async () => {
      if (postId !== null) {
        const post = await api.getPost(studyId, postId);
        if (me && post.author.id !== me.id) throw new ApiError(403, 'not_author', 'only the author can edit');
        const task = await api.getTask(studyId, post.task_id);
        if (cancelled) return;
        setTitle(post.title);
        setBody(post.body);
        setFiles(post.attachments);
        setLoad({ state: 'ready', taskId: post.task_id, taskTitle: task.title });
      } else if (taskId !== null) {
        const task = await api.getTask(studyId, taskId);
        if (!cancelled) setLoad({ state: 'ready', taskId, taskTitle: task.title });
      }
    };
    loadIt().catch((e) => {
      if (!cancelled) setLoad({ state: 'error', error: toApiError(e) });
    });
    return () => {
      cancelled = true;
    };
  }, [studyId, taskId, postId, me?.id]);

  async function submit(e: Event) {
    e.preventDefault();
    if (busy || load.state !== 'ready') return;
    const input = { title: title.trim(), body };
    const missing = required({ title: input.title });
    if (missing) return setError(missing);
    setBusy(true);
    setError(null);
    try {
      const post = savedId === null ? await api.createPost(studyId, load.taskId, input) : await api.updatePost(studyId, savedId, input);
      setSavedId(post.id);
      const allUploaded = await queue.uploadAll({ studyId, postId: post.id }, uploads, (info) => setFiles((prev) => [...prev, info]));
      setAttempted(true);
      if (!alive.current) return;
      if (allUploaded) {
        // Let the finished bars show for a moment, then open the post.
        setTimeout(() => {
          if (alive.current) navigate(`/studies/${studyId}/posts/${post.id}`, { replace: true });
        }, uploads.length ? DONE_PAUSE_MS : 0);
        return;
      }
    } catch (err) {
      setError(toApiError(err));
    }
    setBusy(false);
  }

  const heading = postId !== null ? t('post.editTitle') : t('post.newTitle');
  if (load.state !== 'ready') {
    return (
      <Layout titleKey={postId !== null ? 'post.editTitle' : 'post.newTitle'}>
        {load.state === 'loading' ? (
          <p role="status">{t('app.loading')}</p>
        ) : (
          <PageNotice error back={<BackLink href={`/studies/${studyId}`}>{t('task.backToStudy')}</BackLink>}>
            {errorMessage(load.error)}
          </PageNotice>
        )}
      </Layout>
    );
  }

  const failed = attempted && uploads.some((u) => u.state === 'error');
  const invalid = error?.field ?? null;
  const cancelHref = savedId !== null ? `/studies/${studyId}/posts/${savedId}` : `/studies/${studyId}/tasks/${load.taskId}`;

  return (
    <Layout titleKey={postId !== null ? 'post.editTitle' : 'post.newTitle'}>
      <div class="flex flex-col gap-6">
        <div class="flex flex-col gap-1">
          <h1 class="text-2xl font-bold">{heading}</h1>
          <p class="text-slate-700">
            {t('post.inTask')}{' '}
            <a href={`/studies/${studyId}/tasks/${load.taskId}`} onClick={linkClick} class={linkClass}>
              {load.taskTitle}
            </a>
          </p>
        </div>
        <form class="flex flex-col gap-4 rounded-lg border border-slate-200 bg-white p-4" onSubmit={submit} noValidate data-testid="post-editor">
          <Field
            id="post-title"
            name="title"
            label={t('post.field.title')}
            value={title}
            onInput={setTitle}
            hint={t('post.hint.title', { max: POST_TITLE_MAX })}
            invalid={invalid === 'title'}
            errorId="post-error"
            disabled={busy}
          />
          <TextAreaField
            id="post-body"
            label={t('post.field.body')}
            value={body}
            onInput={setBody}
            rows={14}
            maxLength={POST_BODY_MAX}
            hint={t('post.hint.body')}
            invalid={invalid === 'body'}
            errorId="post-error"
            disabled={busy}
            spellcheck={false}
            class={`${inputClass} font-mono text-sm`}
          />
          {files.length > 0 && (
            <div class="flex flex-col gap-1">
              <h2 class="text-sm font-medium text-slate-800">{t('post.attachments')}</h2>
              <AttachmentList studyId={studyId} files={files} onRemoved={(id) => setFiles((prev) => prev.filter((f) => f.id !== id))} />
            </div>
          )}
          <UploadPicker
            label={t('post.attach')}
            note={t('post.attachNote')}
            uploads={uploads}
            stored={files.length}
            disabled={busy}
            onAdd={queue.add}
            onRemove={queue.remove}
          />
          {error && <ErrorAlert id="post-error">{errorMessage(error, 'post')}</ErrorAlert>}
          {failed && !busy && <Notice>{t('post.uploadsFailed')}</Notice>}
          <div class="flex flex-wrap items-center gap-3">
            <Button type="submit" disabled={busy}>
              {busy ? t('post.saving') : failed ? t('post.retryUploads') : savedId !== null ? t('post.save') : t('post.publish')}
            </Button>
            <a href={cancelHref} onClick={linkClick} class={linkClass}>
              {savedId !== null && postId === null ? t('post.viewSaved') : t('task.cancel')}
            </a>
          </div>
        </form>
      </div>
    </Layout>
  );
}
