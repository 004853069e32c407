// The co-edited body of a post (the post editor's edit mode; loaded on demand,
// with CodeMirror and Yjs): the live editor bound to the post's document over
// the app's socket (`DocSync`), who else is editing, the saved state, the
// server's rendering of the body beside it, the leader's lock, and the
// version history.
import { useEffect, useRef, useState } from 'preact/hooks';
import * as Y from 'yjs';
import * as api from '../api';
import type { ApiError, Post, User } from '../api';
import { createCoEditor, userColors, type AwarenessUser } from '../coEditor';
import { useApp } from '../context';
import { DIVERGING_ERRORS, DocSync, type DocSyncState, isWritable } from '../docSync';
import { toApiError } from '../forms';
import { errorMessage, hasKey, type MessageKey, useI18n } from '../i18n';
import { ErrorAlert, Notice } from './Alert';
import { Button } from './Button';
import { PostHistory } from './PostHistory';

interface Props {
  studyId: number;
  post: Post;
  me: User;
  isLeader: boolean;
  /** The leader locked or unlocked the post here. */
  onPost: (post: Post) => void;
}

interface Peer {
  key: string;
  name: string;
  color: string;
  self: boolean;
}

type Status = 'offline' | 'connecting' | 'saving' | 'saved' | 'denied';

function statusOf(s: DocSyncState | null, connected: boolean): Status {
  if (!s) return 'connecting';
  if (s.denied) return 'denied';
  if (!connected) return 'offline';
  if (!s.open || !s.synced || s.scope === 'unknown') return 'connecting';
  return s.unsaved > 0 ? 'saving' : 'saved';
}

function peersOf(sync: DocSync): Peer[] {
  const seen = new Map<string, Peer>();
  const me = sync.doc.clientID;
  for (const [client, state] of sync.awareness.getStates()) {
    const user = (state.user ?? null) as Partial<AwarenessUser> | null;
    if (!user || typeof user.name !== 'string') continue;
    // One entry per person, however many tabs they have open.
    const key = typeof user.id === 'number' ? `u${user.id}` : `c${client}`;
    const self = client === me;
    const prev = seen.get(key);
    if (!prev || self) seen.set(key, { key, name: user.name, color: typeof user.color === 'string' ? user.color : '#30bced', self: self || !!prev?.self });
  }
  return [...seen.values()].sort((a, b) => Number(b.self) - Number(a.self) || a.name.localeCompare(b.name));
}

export function CoEdit({ studyId, post, me, isLeader, onPost }: Props) {
  const { t } = useI18n();
  const { live, connState } = useApp();
  const host = useRef<HTMLDivElement>(null);
  const [sync, setSync] = useState<DocSync | null>(null);
  const [state, setState] = useState<DocSyncState | null>(null);
  const [peers, setPeers] = useState<Peer[]>([]);
  // A fresh document after the server refused an edit (our copy no longer matches its copy).
  const [generation, setGeneration] = useState(0);
  const [refused, setRefused] = useState<string | null>(null);
  const [lockBusy, setLockBusy] = useState(false);
  const [lockError, setLockError] = useState<ApiError | null>(null);

  useEffect(() => {
    const el = host.current;
    if (!live || !el) return;
    const doc = new Y.Doc();
    const user: AwarenessUser = { name: me.display_name, ...userColors(me.id), id: me.id };
    const s = new DocSync(live, post.id, { doc, localState: { user } });
    const editor = createCoEditor(el, {
      ytext: doc.getText('body'),
      awareness: s.awareness,
      readOnly: true,
      label: t('coedit.editorLabel'),
      placeholder: t('coedit.placeholder'),
    });
    setSync(s);
    setState(s.state);
    setPeers(peersOf(s));
    const onAwareness = () => setPeers(peersOf(s));
    s.awareness.on('change', onAwareness);
    const offs = [
      s.onChange((next) => {
        setState(next);
        editor.setReadOnly(!s.writable);
      }),
      s.onError((err) => {
        setRefused(err.code);
        if (DIVERGING_ERRORS.has(err.code)) setGeneration((g) => g + 1);
      }),
    ];
    editor.setReadOnly(!s.writable);
    return () => {
      for (const off of offs) off();
      s.awareness.off('change', onAwareness);
      editor.destroy();
      s.destroy();
      doc.destroy();
    };
    // (The editor's label keeps the language of the moment it was made.)
  }, [live, post.id, me.id, me.display_name, generation]);

  async function toggleLock() {
    setLockBusy(true);
    setLockError(null);
    try {
      onPost(await api.lockPost(studyId, post.id, !post.locked));
    } catch (e) {
      setLockError(toApiError(e));
    }
    setLockBusy(false);
  }

  const status = statusOf(state, connState === 'connected');
  const readOnly = state?.scope === 'readonly';
  const writable = !!sync && !!state && isWritable(state);
  const denied = state?.denied ?? null;
  const deniedKey = `coedit.denied.${denied}`;

  return (
    <div class="flex flex-col gap-4" data-testid="coedit" data-generation={generation}>
      <section aria-labelledby="coedit-h" class="flex flex-col gap-3 rounded-lg border border-slate-200 bg-white p-4">
        <div class="flex flex-wrap items-center justify-between gap-2">
          <h2 id="coedit-h" class="text-lg font-semibold">
            {t('coedit.title')}
          </h2>
          <div class="flex flex-wrap items-center gap-3">
            <span class="text-sm text-slate-700" data-testid="coedit-status" data-state={status}>
              {t(`coedit.status.${status}` as MessageKey)}
            </span>
            {isLeader && (
              <Button variant="secondary" disabled={lockBusy} onClick={() => void toggleLock()} testId="lock-toggle" pressed={post.locked}>
                {post.locked ? t('coedit.unlock') : t('coedit.lock')}
              </Button>
            )}
          </div>
        </div>
        <p class="text-sm text-slate-600">{t('coedit.hint')}</p>
        {peers.length > 0 && (
          <ul class="flex flex-wrap items-center gap-2 text-sm" aria-label={t('coedit.peers')} data-testid="coedit-peers">
            {peers.map((p) => (
              <li key={p.key} class="inline-flex items-center gap-1 rounded-full border border-slate-200 px-2 py-0.5" data-testid="coedit-peer" data-self={p.self ? 'true' : 'false'}>
                <span aria-hidden="true" class="inline-block h-2.5 w-2.5 rounded-full" style={{ backgroundColor: p.color }} />
                {p.self ? t('coedit.you', { name: p.name }) : p.name}
              </li>
            ))}
          </ul>
        )}
        {lockError && <ErrorAlert>{errorMessage(lockError)}</ErrorAlert>}
        {denied ? (
          <div data-testid="coedit-denied">
            <ErrorAlert>{hasKey(deniedKey) ? t(deniedKey) : t('coedit.denied.other', { reason: denied })}</ErrorAlert>
          </div>
        ) : readOnly ? (
          <div data-testid="coedit-readonly">
            <Notice>{t('coedit.readOnly')}</Notice>
          </div>
        ) : (
          post.locked &&
          isLeader && (
            <div data-testid="coedit-locked-leader">
              <Notice>{t('coedit.lockedLeader')}</Notice>
            </div>
          )
        )}
        {refused && !denied && (
          <div data-testid="coedit-refused" data-code={refused}>
            <ErrorAlert>{hasKey(`coedit.refused.${refused}`) ? t(`coedit.refused.${refused}` as MessageKey) : errorMessage({ code: refused })}</ErrorAlert>
          </div>
        )}
        <div class="grid gap-4 lg:grid-cols-2">
          <div class="flex min-w-0 flex-col gap-1">
            <span class="text-sm font-medium text-slate-800">{t('post.field.body')}</span>
            <div
              ref={host}
              class="min-w-0 overflow-hidden rounded-md border border-slate-300"
              data-testid="coedit-editor"
              data-readonly={writable ? 'false' : 'true'}
            />
          </div>
          <div class="flex min-w-0 flex-col gap-1">
            <span class="text-sm font-medium text-slate-800">{t('coedit.preview')}</span>
            {/* body_html is sanitized by the server; it follows the stored text about 2 s after edits. */}
            <div
              class="markdown post-body min-h-40 rounded-md border border-slate-200 bg-slate-50 p-3"
              data-testid="coedit-preview"
              dangerouslySetInnerHTML={{ __html: post.body_html }}
            />
          </div>
        </div>
      </section>
      <PostHistory studyId={studyId} postId={post.id} readOnly={readOnly || !!denied} refreshKey={post.version} />
    </div>
  );
}
