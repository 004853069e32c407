import { useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { AuthForm } from '../components/AuthForm';
import { useApp } from '../context';
import { type FieldName, useSubmit, validateSignup } from '../forms';
import { useI18n } from '../i18n';

export function SignupPage() {
  const { t } = useI18n();
  const app = useApp();
  const [loginId, setLoginId] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [password, setPassword] = useState('');
  const refs = {
    login_id: useRef<HTMLInputElement>(null),
    display_name: useRef<HTMLInputElement>(null),
    password: useRef<HTMLInputElement>(null),
  };
  const { busy, error, fail, run } = useSubmit((err) => {
    const field = err.field as FieldName | null;
    if (field && refs[field]) refs[field].current?.focus();
  });

  async function onSubmit(e: Event) {
    e.preventDefault();
    if (busy) return;
    const input = { login_id: loginId.trim(), display_name: displayName.trim(), password };
    const invalid = validateSignup(input);
    if (invalid) return fail(invalid);
    await run(async () => app.signedIn(await api.signup(input)));
  }

  return (
    <AuthForm
      form="signup"
      hints
      fields={[
        { name: 'login_id', value: loginId, onInput: setLoginId, autoComplete: 'username', inputRef: refs.login_id, autoFocus: true },
        { name: 'display_name', value: displayName, onInput: setDisplayName, autoComplete: 'nickname', inputRef: refs.display_name },
        { name: 'password', type: 'password', value: password, onInput: setPassword, autoComplete: 'new-password', inputRef: refs.password },
      ]}
      onSubmit={onSubmit}
      busy={busy}
      error={error}
      other={{ text: t('signup.haveAccount'), href: '/login', link: t('signup.toLogin') }}
    />
  );
}
