// One post (`/studies/:id/posts/:postId`): title, author, the server-rendered
// body (sanitized HTML; code blocks carry `hl-*` classes coloured by
// `/api/highlight.css`, linked from index.html), attachments with download
// links, and edit/delete for the author (delete also for the leader).
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, Post, StudyRole } from '../api';
import { ErrorAlert, Notice } from '../components/Alert';
import { AttachmentList } from '../components/Attachments';
import { Button } from '../components/Button';
import { Layout } from '../components/Layout';
import { linkClass, UserLink } from '../components/Study';
import { useApp } from '../context';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { linkClick, navigate } from '../router';
import { leaveDeletedStudy, useStudyEvents } from '../studyLive';

type Load = { state: 'loading' } | { state: 'error'; error: ApiError } | { state: 'ready'; post: Post; role: StudyRole; studyTitle: string };

export function PostViewPage({ studyId, postId }: { studyId: number; postId: number }) {
  const { t, lang } = useI18n();
  const me = useApp().user;
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [deleted, setDeleted] = useState(false);
  const [removed, setRemoved] = useState(false);
  const seq = useRef(0);
  const loaded = useRef(false);

  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const [post, study] = await Promise.all([api.getPost(studyId, postId), api.getStudy(studyId)]);
      if (mine !== seq.current) return;
      loaded.current = true;
      setLoad({ state: 'ready', post, role: study.my_role, studyTitle: study.title });
    } catch (e) {
      if (mine !== seq.current) return;
      const err = toApiError(e);
      // Shown before and gone now: it was deleted.
      if (err.code === 'not_found' && loaded.current) setDeleted(true);
      setLoad((prev) => (prev.state === 'ready' ? prev : { state: 'error', error: err }));
    }
  }, [studyId, postId]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const taskId = load.state === 'ready' ? load.post.task_id : null;
  useStudyEvents(
    studyId,
    {
      onEvent: (e) => {
        if (e.kind === 'post_updated' && e.post.id === postId) void reload();
        else if (e.kind === 'post_deleted' && e.post_id === postId) setDeleted(true);
        else if (e.kind === 'task_deleted' && e.task_id === taskId) setDeleted(true);
      },
      onReconnect: () => void reload(),
      onRemoved: () => setRemoved(true),
      onDeleted: () => leaveDeletedStudy(load.state === 'ready' ? load.studyTitle : null),
    },
    { watch: true },
  );

  if (removed) {
    return (
      <Layout titleKey="post.pageTitle">
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
      <Layout titleKey="post.pageTitle">
        <div class="flex flex-col items-start gap-4">
          <Notice>{t('post.deletedNotice')}</Notice>
          <a href={taskId ? `/studies/${studyId}/tasks/${taskId}` : `/studies/${studyId}`} onClick={linkClick} class={linkClass}>
            {taskId ? t('post.backToTask') : t('task.backToStudy')}
          </a>
        </div>
      </Layout>
    );
  }
  if (load.state !== 'ready') {
    return (
      <Layout titleKey="post.pageTitle">
        {load.state === 'loading' ? (
          <p role="status">{t('app.loading')}</p>
        ) : (
          <div class="flex flex-col items-start gap-4">
            <ErrorAlert>{load.error.code === 'not_found' ? t('post.notFound') : errorMessage(load.error)}</ErrorAlert>
            <a href={`/studies/${studyId}`} onClick={linkClick} class={linkClass}>
              {t('task.backToStudy')}
            </a>
          </div>
        )}
      </Layout>
    );
  }

  const { post, role } = load;
  const isAuthor = me?.id === post.author.id;
  const created = new Date(post.created_at);
  return (
    <Layout titleKey="post.pageTitle">
      <article class="flex flex-col gap-4" data-testid="post-view" data-post-id={post.id}>
        <nav aria-label={t('task.breadcrumb')}>
          <a href={`/studies/${studyId}/tasks/${post.task_id}`} onClick={linkClick} class={linkClass}>
            {t('post.backToTask')}
          </a>
        </nav>
        <header class="flex flex-col gap-1">
          <h1 class="text-2xl font-bold" data-testid="post-title">
            {post.title}
          </h1>
          <p class="text-sm text-slate-600">
            <span data-testid="post-author">
              <UserLink user={post.author} />
            </span>{' '}
            · <time dateTime={created.toISOString()}>{created.toLocaleString(lang)}</time>
            {/* Only edits move updated_at (attaching or removing files does not). */}
            {post.updated_at > post.created_at && (
              <>
                {' '}
                <span data-testid="post-edited" title={new Date(post.updated_at).toLocaleString(lang)}>
                  {t('post.edited')}
                </span>
              </>
            )}
          </p>
        </header>
        {/* body_html is sanitized by the server. */}
        <div
          class="markdown post-body rounded-lg border border-slate-200 bg-white p-4"
          data-testid="post-body"
          dangerouslySetInnerHTML={{ __html: post.body_html }}
        />
        {post.attachments.length > 0 && (
          <section aria-labelledby="att-h" class="flex flex-col gap-2">
            <h2 id="att-h" class="text-lg font-semibold">
              {t('post.attachmentsCount', { count: post.attachments.length })}
            </h2>
            <AttachmentList studyId={studyId} files={post.attachments} />
          </section>
        )}
        {(isAuthor || role === 'leader') && <PostActions studyId={studyId} post={post} isAuthor={isAuthor} />}
      </article>
    </Layout>
  );
}

function PostActions({ studyId, post, isAuthor }: { studyId: number; post: Post; isAuthor: boolean }) {
  const { t } = useI18n();
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function remove() {
    setBusy(true);
    setError(null);
    try {
      await api.deletePost(studyId, post.id);
      navigate(`/studies/${studyId}/tasks/${post.task_id}`);
    } catch (e) {
      setError(toApiError(e));
      setBusy(false);
    }
  }

  return (
    <div class="flex flex-col gap-2">
      <div class="flex flex-wrap items-center gap-2">
        {isAuthor && (
          <a
            href={`/studies/${studyId}/posts/${post.id}/edit`}
            onClick={linkClick}
            class="inline-flex items-center rounded-md border border-slate-300 bg-white px-4 py-2 text-sm font-semibold text-slate-800 shadow-sm hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600"
          >
            {t('post.edit')}
          </a>
        )}
        {!confirm ? (
          <Button variant="secondary" onClick={() => setConfirm(true)}>
            {t('post.delete')}
          </Button>
        ) : (
          <>
            <span class="text-sm text-slate-800">{t('post.deleteConfirm')}</span>
            <Button disabled={busy} onClick={() => void remove()}>
              {t('post.deleteYes')}
            </Button>
            <Button variant="secondary" onClick={() => setConfirm(false)}>
              {t('task.cancel')}
            </Button>
          </>
        )}
      </div>
      {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
    </div>
  );
}
