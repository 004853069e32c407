import { useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { Notice } from '../components/Alert';
import { AuthForm } from '../components/AuthForm';
import { useApp } from '../context';
import { required, useSubmit } from '../forms';
import { useI18n } from '../i18n';

export function LoginPage() {
  const { t } = useI18n();
  const app = useApp();
  const [loginId, setLoginId] = useState('');
  const [password, setPassword] = useState('');
  const loginRef = useRef<HTMLInputElement>(null);
  const passwordRef = useRef<HTMLInputElement>(null);
  const { busy, error, fail, run } = useSubmit((err) => {
    if (err.field === 'login_id') loginRef.current?.focus();
    else if (err.field === 'password' || err.code === 'invalid_credentials') passwordRef.current?.focus();
  });

  async function onSubmit(e: Event) {
    e.preventDefault();
    if (busy) return;
    const input = { login_id: loginId.trim(), password };
    const missing = required(input);
    if (missing) return fail(missing);
    await run(async () => app.signedIn(await api.login(input)));
  }

  return (
    <AuthForm
      form="login"
      fields={[
        { name: 'login_id', value: loginId, onInput: setLoginId, autoComplete: 'username', inputRef: loginRef, autoFocus: true },
        { name: 'password', type: 'password', value: password, onInput: setPassword, autoComplete: 'current-password', inputRef: passwordRef },
      ]}
      onSubmit={onSubmit}
      busy={busy}
      error={error}
      notice={app.notice && !error && <Notice>{t(`notice.${app.notice}`)}</Notice>}
      other={{ text: t('login.noAccount'), href: '/signup', link: t('login.toSignup') }}
    />
  );
}
