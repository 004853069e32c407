import { useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError } from '../api';
import { ErrorAlert } from '../components/Alert';
import { Button } from '../components/Button';
import { ConnIndicator } from '../components/ConnIndicator';
import { Layout } from '../components/Layout';
import { useApp } from '../context';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';

export function HomePage() {
  const { t } = useI18n();
  const app = useApp();
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const user = app.user;
  if (!user) return null;

  async function onLogout() {
    if (busy) return;
    setBusy(true);
    setError(null);
    // Close our socket first, so the server's 4001 close for this logout is
    // not mistaken for a revocation from elsewhere.
    app.live?.stop();
    try {
      await api.logout();
    } catch (err) {
      const e = toApiError(err);
      // Already logged out server-side: carry on as if it worked.
      if (e.status !== 401) {
        setError(e);
        setBusy(false);
        app.live?.start();
        return;
      }
    }
    app.signedOut('loggedOut');
  }

  return (
    <Layout titleKey="home.title">
      <div class="flex flex-col gap-6">
        <div class="flex flex-wrap items-start justify-between gap-4">
          <div>
            <h1 class="text-2xl font-bold">
              {t('home.welcome')}
              <span data-testid="display-name">{user.display_name}</span>
              {t('home.welcomeEnd')}
            </h1>
            <p class="mt-1 text-sm text-slate-600">{t('home.signedInAs', { login: user.login_id })}</p>
          </div>
          <Button variant="secondary" onClick={onLogout} disabled={busy}>
            {busy ? t('home.loggingOut') : t('home.logout')}
          </Button>
        </div>
        {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
        <section aria-labelledby="conn-heading" class="flex items-center gap-3">
          <h2 id="conn-heading" class="text-sm font-medium text-slate-700">
            {t('home.connection')}
          </h2>
          <ConnIndicator state={app.connState} />
        </section>
        <p class="rounded-lg border border-dashed border-slate-300 p-6 text-center text-slate-600">{t('home.empty')}</p>
      </div>
    </Layout>
  );
}
