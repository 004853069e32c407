import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import * as api from './api';
import type { ApiError, User } from './api';
import { ErrorAlert } from './components/Alert';
import { Button } from './components/Button';
import { Layout } from './components/Layout';
import { AppContext, type AppState, type Notice } from './context';
import { toApiError } from './forms';
import { errorMessage, useI18n } from './i18n';
import { type ConnState, LiveClient } from './live';
import { HomePage } from './pages/Home';
import { LoginPage } from './pages/Login';
import { NotFoundPage } from './pages/NotFound';
import { SignupPage } from './pages/Signup';
import { navigate, usePath } from './router';

type Session = { status: 'loading' } | { status: 'error'; error: ApiError } | { status: 'ready'; user: User | null };

/** Routes that need a signed-in user, and the ones only for signed-out users. */
const PRIVATE = new Set(['/']);
const GUEST_ONLY = new Set(['/login', '/signup']);

export function App() {
  const { t } = useI18n();
  const path = usePath();
  const [session, setSession] = useState<Session>({ status: 'loading' });
  const [live, setLive] = useState<LiveClient | null>(null);
  const [connState, setConnState] = useState<ConnState>('offline');
  const [notice, setNotice] = useState<Notice>(null);

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

  // Route guards.
  const ready = session.status === 'ready';
  const redirect = ready ? (!user && PRIVATE.has(path) ? '/login' : user && GUEST_ONLY.has(path) ? '/' : null) : null;
  useEffect(() => {
    if (redirect) navigate(redirect, { replace: true });
  }, [redirect]);

  const state: AppState = useMemo(
    () => ({ user, live, connState, notice, signedIn, signedOut }),
    [user, live, connState, notice, signedIn, signedOut],
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
    page = <NotFoundPage />;
  }

  return <AppContext.Provider value={state}>{page}</AppContext.Provider>;
}
