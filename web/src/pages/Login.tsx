import { useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError } from '../api';
import { ErrorAlert, Notice } from '../components/Alert';
import { Button } from '../components/Button';
import { Field } from '../components/Field';
import { Card, Layout } from '../components/Layout';
import { useApp } from '../context';
import { required, toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { linkClick } from '../router';

export function LoginPage() {
  const { t } = useI18n();
  const app = useApp();
  const [loginId, setLoginId] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const loginRef = useRef<HTMLInputElement>(null);
  const passwordRef = useRef<HTMLInputElement>(null);

  function fail(err: ApiError) {
    setError(err);
    if (err.field === 'login_id') loginRef.current?.focus();
    else if (err.field === 'password' || err.code === 'invalid_credentials') passwordRef.current?.focus();
  }

  async function onSubmit(e: Event) {
    e.preventDefault();
    if (busy) return;
    const input = { login_id: loginId.trim(), password };
    const missing = required(input);
    if (missing) return fail(missing);
    setBusy(true);
    setError(null);
    try {
      const user = await api.login(input);
      app.signedIn(user);
    } catch (err) {
      fail(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  const invalidField = error?.field ?? null;
  return (
    <Layout titleKey="login.title">
      <Card>
        <h1 class="mb-4 text-2xl font-bold">{t('login.title')}</h1>
        <form class="flex flex-col gap-4" onSubmit={onSubmit} noValidate aria-busy={busy}>
          {app.notice && !error && <Notice>{t(`notice.${app.notice}`)}</Notice>}
          {error && <ErrorAlert id="login-error">{errorMessage(error)}</ErrorAlert>}
          <Field
            id="login-login-id"
            name="login_id"
            label={t('field.login_id')}
            value={loginId}
            onInput={setLoginId}
            autoComplete="username"
            invalid={invalidField === 'login_id'}
            errorId="login-error"
            inputRef={loginRef}
            autoFocus
          />
          <Field
            id="login-password"
            name="password"
            type="password"
            label={t('field.password')}
            value={password}
            onInput={setPassword}
            autoComplete="current-password"
            invalid={invalidField === 'password'}
            errorId="login-error"
            inputRef={passwordRef}
          />
          <Button type="submit" disabled={busy}>
            {busy ? t('login.submitting') : t('login.submit')}
          </Button>
        </form>
        <p class="mt-4 text-sm text-slate-700">
          {t('login.noAccount')}{' '}
          <a href="/signup" onClick={linkClick} class="font-semibold text-blue-800 underline focus-visible:outline-2 focus-visible:outline-blue-600">
            {t('login.toSignup')}
          </a>
        </p>
      </Card>
    </Layout>
  );
}
