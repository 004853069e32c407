import { useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError } from '../api';
import { ErrorAlert } from '../components/Alert';
import { Button } from '../components/Button';
import { Field } from '../components/Field';
import { Card, Layout } from '../components/Layout';
import { useApp } from '../context';
import { type FieldName, toApiError, validateSignup } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { linkClick } from '../router';

export function SignupPage() {
  const { t } = useI18n();
  const app = useApp();
  const [loginId, setLoginId] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const refs = {
    login_id: useRef<HTMLInputElement>(null),
    display_name: useRef<HTMLInputElement>(null),
    password: useRef<HTMLInputElement>(null),
  };

  function fail(err: ApiError) {
    setError(err);
    const field = err.field as FieldName | null;
    if (field && refs[field]) refs[field].current?.focus();
  }

  async function onSubmit(e: Event) {
    e.preventDefault();
    if (busy) return;
    const input = { login_id: loginId.trim(), display_name: displayName.trim(), password };
    const invalid = validateSignup(input);
    if (invalid) return fail(invalid);
    setBusy(true);
    setError(null);
    try {
      const user = await api.signup(input);
      app.signedIn(user);
    } catch (err) {
      fail(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  const invalidField = error?.field ?? null;
  return (
    <Layout titleKey="signup.title">
      <Card>
        <h1 class="mb-4 text-2xl font-bold">{t('signup.title')}</h1>
        <form class="flex flex-col gap-4" onSubmit={onSubmit} noValidate aria-busy={busy}>
          {error && <ErrorAlert id="signup-error">{errorMessage(error)}</ErrorAlert>}
          <Field
            id="signup-login-id"
            name="login_id"
            label={t('field.login_id')}
            hint={t('hint.login_id')}
            value={loginId}
            onInput={setLoginId}
            autoComplete="username"
            invalid={invalidField === 'login_id'}
            errorId="signup-error"
            inputRef={refs.login_id}
            autoFocus
          />
          <Field
            id="signup-display-name"
            name="display_name"
            label={t('field.display_name')}
            hint={t('hint.display_name')}
            value={displayName}
            onInput={setDisplayName}
            autoComplete="nickname"
            invalid={invalidField === 'display_name'}
            errorId="signup-error"
            inputRef={refs.display_name}
          />
          <Field
            id="signup-password"
            name="password"
            type="password"
            label={t('field.password')}
            hint={t('hint.password')}
            value={password}
            onInput={setPassword}
            autoComplete="new-password"
            invalid={invalidField === 'password'}
            errorId="signup-error"
            inputRef={refs.password}
          />
          <Button type="submit" disabled={busy}>
            {busy ? t('signup.submitting') : t('signup.submit')}
          </Button>
        </form>
        <p class="mt-4 text-sm text-slate-700">
          {t('signup.haveAccount')}{' '}
          <a href="/login" onClick={linkClick} class="font-semibold text-blue-800 underline focus-visible:outline-2 focus-visible:outline-blue-600">
            {t('signup.toLogin')}
          </a>
        </p>
      </Card>
    </Layout>
  );
}
