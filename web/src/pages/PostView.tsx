// One post (`/studies/:id/posts/:postId`): title, author, the server-rendered
// body (sanitized HTML; code blocks carry `hl-*` classes coloured by
// `/api/highlight.css`, linked from index.html), attachments with download
// links, and edit/delete for the author (delete also for the leader). Every
// member co-edits the body on the edit page: the author through "Edit post",
// everyone else through "Edit the body together".
import { useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, Post } from '../api';
import { ErrorAlert } from '../components/Alert';
import { AttachmentList } from '../components/Attachments';
import { ConfirmDelete } from '../components/ConfirmDelete';
import { Layout } from '../components/Layout';
import { BackLink, PageNotice } from '../components/PageNotice';
import { UserLink } from '../components/Study';
import { useApp } from '../context';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { useItemLoad } from '../itemLoad';
import { linkClick, navigate } from '../router';
import { leaveDeletedStudy, useStudyEvents } from '../studyLive';

export function PostViewPage({ studyId, postId }: { studyId: number; postId: number }) {
  const { t, lang } = useI18n();
  const me = useApp().user;
  const { load, reload, deleted, setDeleted } = useItemLoad(async () => {
    const [post, study] = await Promise.all([api.getPost(studyId, postId), api.getStudy(studyId)]);
    return { post, role: study.my_role, studyTitle: study.title };
  }, [studyId, postId]);
  const [removed, setRemoved] = useState(false);

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

  const toStudy = <BackLink href={`/studies/${studyId}`}>{t('task.backToStudy')}</BackLink>;
  if (removed || deleted || load.state !== 'ready') {
    return (
      <Layout titleKey="post.pageTitle">
        {removed ? (
          <PageNotice back={toStudy}>{t('study.removedNotice')}</PageNotice>
        ) : deleted ? (
          <PageNotice back={taskId ? <BackLink href={`/studies/${studyId}/tasks/${taskId}`}>{t('post.backToTask')}</BackLink> : toStudy}>
            {t('post.deletedNotice')}
          </PageNotice>
        ) : load.state === 'error' ? (
          <PageNotice error back={toStudy}>
            {load.error.code === 'not_found' ? t('post.notFound') : errorMessage(load.error)}
          </PageNotice>
        ) : (
          <p role="status">{t('app.loading')}</p>
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
          <BackLink href={`/studies/${studyId}/tasks/${post.task_id}`}>{t('post.backToTask')}</BackLink>
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
            {post.locked && (
              <>
                {' '}
                · <span data-testid="post-locked">{t('post.locked')}</span>
              </>
            )}
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
        {(isAuthor || role === 'leader' || role === 'member') && (
          <PostActions studyId={studyId} post={post} isAuthor={isAuthor} canDelete={isAuthor || role === 'leader'} />
        )}
      </article>
    </Layout>
  );
}

const actionLinkClass =
  'inline-flex items-center rounded-md border border-slate-300 bg-white px-4 py-2 text-sm font-semibold text-slate-800 shadow-sm hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600';

function PostActions({ studyId, post, isAuthor, canDelete }: { studyId: number; post: Post; isAuthor: boolean; canDelete: boolean }) {
  const { t } = useI18n();
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
        {/* The edit page co-edits the body: everyone in the study may; the title stays the author's. */}
        <a href={`/studies/${studyId}/posts/${post.id}/edit`} onClick={linkClick} class={actionLinkClass} data-testid="coedit-link">
          {isAuthor ? t('post.edit') : t('post.coedit')}
        </a>
        {canDelete && (
          <ConfirmDelete
            label={t('post.delete')}
            question={t('post.deleteConfirm')}
            yes={t('post.deleteYes')}
            busy={busy}
            onConfirm={() => void remove()}
          />
        )}
      </div>
      {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
    </div>
  );
}
