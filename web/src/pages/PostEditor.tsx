// Write a post (`/studies/:id/tasks/:taskId/posts/new`) or edit one
// (`/studies/:id/posts/:postId/edit`).
//
// A new post is a plain form: title, markdown body and attachments. On save the
// post is created first, then each chosen file is uploaded in turn (XHR, raw
// body, a progress bar per file). When every upload succeeded the post is
// shown; otherwise the editor stays (now editing the saved post) with each
// failure explained, and saving again retries them.
//
// Editing: the body is co-edited live by every member of the study
// (components/CoEdit.tsx, loaded on demand with CodeMirror and Yjs: edits are
// stored as they are typed, with no save button). The title and the
// attachments stay the author's, in the form above it, saved over HTTP. The
// page watches the study: the preview, the lock and (for others) the title
// follow `post_updated`; a deleted post or a removal shows a notice.
import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { ApiError, type FileInfo, type Post, POST_BODY_MAX, POST_TITLE_MAX } from '../api';
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
import { leaveDeletedStudy, useStudyEvents } from '../studyLive';
import { useUploadQueue } from '../uploadQueue';
import { inputClass } from './Studies';

/** How long finished progress bars stay visible before the post is shown. */
const DONE_PAUSE_MS = 600;

type Load = { state: 'loading' } | { state: 'error'; error: ApiError } | { state: 'ready'; taskId: number; taskTitle: string };

type CoEditModule = typeof import('../components/CoEdit');
type CoEditComponent = CoEditModule['CoEdit'];

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
  // Editing: the post as last read (preview, lock, title for others), my role, the study's title.
  const [post, setPost] = useState<Post | null>(null);
  const [isLeader, setIsLeader] = useState(false);
  const [studyTitle, setStudyTitle] = useState<string | null>(null);
  const [deleted, setDeleted] = useState(false);
  const [removed, setRemoved] = useState(false);
  const [coEdit, setCoEdit] = useState<{ C: CoEditComponent } | null>(null);
  const [coEditError, setCoEditError] = useState(false);
  const readSeq = useRef(0);

  useEffect(() => {
    let cancelled = false;
    const loadIt = async () => {
      if (postId !== null) {
        const [p, study] = await Promise.all([api.getPost(studyId, postId), api.getStudy(studyId)]);
        const task = await api.getTask(studyId, p.task_id);
        if (cancelled) return;
        setTitle(p.title);
        setBody(p.body);
        setFiles(p.attachments);
        setPost(p);
        setIsLeader(study.my_role === 'leader');
        setStudyTitle(study.title);
        setLoad({ state: 'ready', taskId: p.task_id, taskTitle: task.title });
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
  }, [studyId, taskId, postId]);

  // The co-editor (CodeMirror, Yjs) is its own chunk, fetched when an edit page opens.
  useEffect(() => {
    if (postId === null) return;
    let cancelled = false;
    import('../components/CoEdit').then(
      (m: CoEditModule) => {
        if (!cancelled) setCoEdit({ C: m.CoEdit });
      },
      () => {
        if (!cancelled) setCoEditError(true);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [postId]);

  /** Reads the post again (preview, lock, title); the newest read wins. */
  async function reread() {
    if (postId === null) return;
    const mine = ++readSeq.current;
    try {
      const p = await api.getPost(studyId, postId);
      if (mine === readSeq.current && alive.current) setPost(p);
    } catch (e) {
      if (mine === readSeq.current && toApiError(e).code === 'not_found') setDeleted(true);
    }
  }

  const editing = postId !== null;
  const taskOfPost = post?.task_id ?? null;
  useStudyEvents(
    studyId,
    {
      onEvent: (e) => {
        if (!editing) return;
        if (e.kind === 'post_updated' && e.post.id === postId) void reread();
        else if (e.kind === 'post_deleted' && e.post_id === postId) setDeleted(true);
        else if (e.kind === 'task_deleted' && e.task_id === taskOfPost) setDeleted(true);
      },
      onReconnect: () => void reread(),
      onRemoved: () => editing && setRemoved(true),
      onDeleted: () => editing && leaveDeletedStudy(studyTitle),
    },
    { watch: editing },
  );

  async function submit(e: Event) {
    e.preventDefault();
    if (busy || load.state !== 'ready') return;
    const input = { title: title.trim(), body };
    const missing = required({ title: input.title });
    if (missing) return setError(missing);
    setBusy(true);
    setError(null);
    try {
      // Editing sends the title only: the body is the co-edited document's.
      const post =
        savedId === null
          ? await api.createPost(studyId, load.taskId, input)
          : await api.updatePost(studyId, savedId, editing ? { title: input.title } : input);
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
  const toStudy = <BackLink href={`/studies/${studyId}`}>{t('task.backToStudy')}</BackLink>;
  if (removed || deleted) {
    return (
      <Layout titleKey="post.editTitle">
        {removed ? (
          <PageNotice back={toStudy}>{t('study.removedNotice')}</PageNotice>
        ) : (
          <PageNotice back={taskOfPost ? <BackLink href={`/studies/${studyId}/tasks/${taskOfPost}`}>{t('post.backToTask')}</BackLink> : toStudy}>
            {t('post.deletedNotice')}
          </PageNotice>
        )}
      </Layout>
    );
  }
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
  const isAuthor = !editing || (post !== null && me?.id === post.author.id);

  const form = (
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
      {/* Editing co-edits the body below; a new post (no document yet) writes it here. */}
      {!editing && (
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
      )}
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
      {editing && <p class="text-sm text-slate-600">{t('post.saveNoteCoedit')}</p>}
      <div class="flex flex-wrap items-center gap-3">
        <Button type="submit" disabled={busy}>
          {busy ? t('post.saving') : failed ? t('post.retryUploads') : savedId !== null ? t('post.save') : t('post.publish')}
        </Button>
        <a href={cancelHref} onClick={linkClick} class={linkClass}>
          {savedId !== null && postId === null ? t('post.viewSaved') : t('task.cancel')}
        </a>
      </div>
    </form>
  );

  const CoEdit = coEdit?.C;
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
          {editing && (
            <p>
              <BackLink href={`/studies/${studyId}/posts/${postId}`} testId="back-to-post">
                {t('post.backToPost')}
              </BackLink>
            </p>
          )}
        </div>
        {isAuthor ? (
          form
        ) : (
          post && (
            <section class="flex flex-col gap-1 rounded-lg border border-slate-200 bg-white p-4" aria-labelledby="post-title-h">
              <h2 id="post-title-h" class="text-xl font-semibold" data-testid="post-title">
                {post.title}
              </h2>
              <p class="text-sm text-slate-600">{t('post.titleByAuthor', { name: post.author.display_name })}</p>
            </section>
          )
        )}
        {editing &&
          post &&
          me &&
          (CoEdit ? (
            <CoEdit studyId={studyId} post={post} me={me} isLeader={isLeader} onPost={setPost} />
          ) : coEditError ? (
            <ErrorAlert>{t('coedit.loadFailed')}</ErrorAlert>
          ) : (
            <p role="status">{t('app.loading')}</p>
          ))}
      </div>
    </Layout>
  );
}
