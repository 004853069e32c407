import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import * as api from './api';
import type { ApiError, User } from './api';
import { ErrorAlert } from './components/Alert';
import { Button } from './components/Button';
import { Layout } from './components/Layout';
import { type Toast, Toasts } from './components/Toasts';
import { AppContext, type AppState, type Notice } from './context';
import { toApiError } from './forms';
import { errorMessage, useI18n } from './i18n';
import { resetLimits } from './limits';
import { type AnyFrame, type ConnState, LiveClient } from './live';
import type { AppNotification } from './api';
import { HomePage } from './pages/Home';
import { LoginPage } from './pages/Login';
import { DmInbox, dmMessageOf } from './dm';
import { ConversationPage, MessagesPage } from './pages/Messages';
import { MyStudiesPage } from './pages/MyStudies';
import { NotFoundPage } from './pages/NotFound';
import { NotificationsPage } from './pages/Notifications';
import { ProfilePage } from './pages/Profile';
import { SignupPage } from './pages/Signup';
import { StudiesPage } from './pages/Studies';
import { StudyDetailPage } from './pages/StudyDetail';
import { StudyFormPage } from './pages/StudyForm';
import { PostEditorPage } from './pages/PostEditor';
import { PostViewPage } from './pages/PostView';
import { TaskDetailPage } from './pages/TaskDetail';
import { navigate, usePath } from './router';

type Session = { status: 'loading' } | { status: 'error'; error: ApiError } | { status: 'ready'; user: User | null };

/** Routes that need a signed-in user, and the ones only for signed-out users. */
const PRIVATE = /^\/(?:$|studies(?:\/|$)|me\/|users\/|notifications$|messages(?:\/|$))/;
const GUEST_ONLY = new Set(['/login', '/signup']);

const TOAST_MS = 8_000;

export function App() {
  const { t } = useI18n();
  const path = usePath();
  const [session, setSession] = useState<Session>({ status: 'loading' });
  const [live, setLive] = useState<LiveClient | null>(null);
  const [connState, setConnState] = useState<ConnState>('offline');
  const [notice, setNotice] = useState<Notice>(null);
  const [unread, setUnread] = useState(0);
  const [toasts, setToasts] = useState<Toast[]>([]);
  const [dm, setDm] = useState<DmInbox | null>(null);
  const [dmUnread, setDmUnread] = useState(0);
  const pathRef = useRef(path);
  pathRef.current = path;

  const loadSession = useCallback(() => {
    setSession({ status: 'loading' });
    api.me().then(
      (user) => setSession({ status: 'ready', user }),
      (e) => setSession({ status: 'error', error: toApiError(e) }),
    );
  }, []);
  useEffect(loadSession, [loadSession]);

  const user = session.status === 'ready' ? session.user : null;

  const signedIn = useCallback((u: User) => {
    setNotice(null);
    setSession({ status: 'ready', user: u });
    navigate('/', { replace: true });
  }, []);
  const signedOut = useCallback((n: Notice = null) => {
    setNotice(n);
    setSession({ status: 'ready', user: null });
    navigate('/login', { replace: true });
  }, []);

  // One live connection per signed-in user; closed on logout / user change.
  const userId = user?.id ?? null;
  // Server limits are read once per session: a new session reads them again.
  useEffect(() => resetLimits, [userId]);
  useEffect(() => {
    if (userId === null) {
      setConnState('offline');
      return;
    }
    const client = new LiveClient({
      verifySession: async () => (await api.me()) !== null,
    });
    const offState = client.onState(setConnState);
    const offRevoked = client.onRevoked(() => signedOut('revoked'));
    setLive(client);
    client.start();
    return () => {
      offState();
      offRevoked();
      client.stop();
      setLive(null);
    };
  }, [userId, signedOut]);

  // Unread notifications: read once signed in and after every (re)connect,
  // bumped by each live `notification` frame, which also shows a toast.
  // A count read while a `notification` frame arrived may predate it: read again then.
  const notifFrames = useRef(0);
  const refreshUnread = useCallback(() => {
    if (userId === null) return;
    const read = (tries: number) => {
      const seen = notifFrames.current;
      api.unreadCount().then(
        (count) => {
          if (notifFrames.current !== seen && tries > 0) read(tries - 1);
          else setUnread(count);
        },
        () => {},
      );
    };
    read(3);
  }, [userId]);
  useEffect(() => {
    setUnread(0);
    setToasts([]);
    refreshUnread();
  }, [refreshUnread]);
  useEffect(() => {
    if (!live) return;
    let seq = 0;
    const offHello = live.on('hello', () => refreshUnread());
    const offResync = live.on('resync', (frame) => {
      if ((frame as AnyFrame).scope === 'user_session') refreshUnread();
    });
    const offNotif = live.on('notification', (frame) => {
      const n = (frame as AnyFrame).notification as AppNotification | undefined;
      if (!n || typeof n !== 'object') return;
      notifFrames.current += 1;
      if (!n.read) setUnread((c) => c + 1);
      const key = Date.now() * 1000 + (seq++ % 1000);
      setToasts((list) => [...list.slice(-3), { key, notification: n }]);
      setTimeout(() => setToasts((list) => list.filter((x) => x.key !== key)), TOAST_MS);
    });
    return () => {
      offHello();
      offResync();
      offNotif();
    };
  }, [live, refreshUnread]);
  // Direct messages: the inbox (total unread) and a toast for a message whose conversation is not open.
  useEffect(() => {
    if (!live || !user) return;
    const inbox = new DmInbox(live, user, setDmUnread);
    setDm(inbox);
    inbox.start();
    let seq = 0;
    const offMsg = live.on('dm.message', (frame) => {
      const d = dmMessageOf(frame as AnyFrame);
      if (!d || d.message.sender?.id === user.id) return;
      if (pathRef.current === `/messages/${d.with}` && document.visibilityState === 'visible') return;
      const key = Date.now() * 1000 + 500 + (seq++ % 500);
      const excerpt = d.message.body.length > 80 ? `${d.message.body.slice(0, 80)}…` : d.message.body;
      const text = t('dm.toast', { name: d.message.sender.display_name, body: excerpt });
      setToasts((list) => [...list.slice(-3), { key, text, href: `/messages/${d.with}` }]);
      setTimeout(() => setToasts((list) => list.filter((x) => x.key !== key)), TOAST_MS);
    });
    return () => {
      offMsg();
      inbox.stop();
      setDm(null);
      setDmUnread(0);
    };
  }, [live, user?.id]);

  const dismissToast = useCallback((key: number) => setToasts((list) => list.filter((x) => x.key !== key)), []);

  // Route guards.
  const ready = session.status === 'ready';
  const redirect = ready ? (!user && PRIVATE.test(path) ? '/login' : user && GUEST_ONLY.has(path) ? '/' : null) : null;
  useEffect(() => {
    if (redirect) navigate(redirect, { replace: true });
  }, [redirect]);

  const state: AppState = useMemo(
    () => ({ user, live, connState, notice, signedIn, signedOut, unread, refreshUnread, dm, dmUnread }),
    [user, live, connState, notice, signedIn, signedOut, unread, refreshUnread, dm, dmUnread],
  );

  let page;
  if (session.status === 'loading') {
    page = (
      <Layout titleKey="app.loading">
        <p role="status">{t('app.loading')}</p>
      </Layout>
    );
  } else if (session.status === 'error') {
    page = (
      <Layout titleKey="app.name">
        <div class="flex flex-col items-start gap-4">
          <ErrorAlert>{errorMessage(session.error)}</ErrorAlert>
          <Button onClick={loadSession}>{t('error.retry')}</Button>
        </div>
      </Layout>
    );
  } else if (redirect) {
    page = null;
  } else if (path === '/') {
    page = <HomePage />;
  } else if (path === '/login') {
    page = <LoginPage />;
  } else if (path === '/signup') {
    page = <SignupPage />;
  } else {
    page = privatePage(path);
  }

  return (
    <AppContext.Provider value={state}>
      {page}
      {user && <Toasts toasts={toasts} onDismiss={dismissToast} />}
    </AppContext.Provider>
  );
}

/** The signed-in pages with path parameters (`key` resets a page's state when its id changes). */
function privatePage(path: string) {
  let m: RegExpExecArray | null;
  if (path === '/studies') return <StudiesPage />;
  if (path === '/studies/new') return <StudyFormPage key="new" id={null} />;
  if ((m = /^\/studies\/(\d+)$/.exec(path))) return <StudyDetailPage key={m[1]} id={Number(m[1])} />;
  if ((m = /^\/studies\/(\d+)\/edit$/.exec(path))) return <StudyFormPage key={`edit-${m[1]}`} id={Number(m[1])} />;
  if ((m = /^\/studies\/(\d+)\/tasks\/(\d+)$/.exec(path)))
    return <TaskDetailPage key={`task-${m[1]}-${m[2]}`} studyId={Number(m[1])} taskId={Number(m[2])} />;
  if ((m = /^\/studies\/(\d+)\/tasks\/(\d+)\/posts\/new$/.exec(path)))
    return <PostEditorPage key={`new-post-${m[1]}-${m[2]}`} studyId={Number(m[1])} taskId={Number(m[2])} postId={null} />;
  if ((m = /^\/studies\/(\d+)\/posts\/(\d+)$/.exec(path)))
    return <PostViewPage key={`post-${m[1]}-${m[2]}`} studyId={Number(m[1])} postId={Number(m[2])} />;
  if ((m = /^\/studies\/(\d+)\/posts\/(\d+)\/edit$/.exec(path)))
    return <PostEditorPage key={`edit-post-${m[1]}-${m[2]}`} studyId={Number(m[1])} taskId={null} postId={Number(m[2])} />;
  if (path === '/me/studies') return <MyStudiesPage />;
  if ((m = /^\/users\/(\d+)$/.exec(path))) return <ProfilePage key={m[1]} id={Number(m[1])} />;
  if (path === '/notifications') return <NotificationsPage />;
  if (path === '/messages') return <MessagesPage />;
  if ((m = /^\/messages\/(\d+)$/.exec(path))) return <ConversationPage key={`dm-${m[1]}`} userId={Number(m[1])} />;
  return <NotFoundPage />;
}
