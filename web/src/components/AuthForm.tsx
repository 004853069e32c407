// The sign-in and sign-up pages' form: a card with the title, the form (an
// optional notice, the error, the fields, the submit button) and a line linking
// to the other page. Field ids, labels and hints follow the field names
// (`login-login-id`, `field.login_id`, `hint.login_id`); the error alert is
// `<form>-error`, and the field it names is marked invalid.
import type { ComponentChildren, Ref } from 'preact';
import type { ApiError } from '../api';
import type { FieldName } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { linkClick } from '../router';
import { ErrorAlert } from './Alert';
import { Button } from './Button';
import { Field } from './Field';
import { Card, Layout } from './Layout';

export interface AuthField {
  name: FieldName;
  type?: 'password';
  value: string;
  onInput: (value: string) => void;
  autoComplete: string;
  inputRef: Ref<HTMLInputElement>;
  autoFocus?: boolean;
}

interface AuthFormProps {
  form: 'login' | 'signup';
  fields: AuthField[];
  /** Show each field's hint (`hint.<name>`). */
  hints?: boolean;
  onSubmit: (e: Event) => void;
  busy: boolean;
  error: ApiError | null;
  /** Shown above the error. */
  notice?: ComponentChildren;
  /** "New to StudyOn?" and a link to the other page. */
  other: { text: string; href: string; link: string };
}

export function AuthForm({ form, fields, hints, onSubmit, busy, error, notice, other }: AuthFormProps) {
  const { t } = useI18n();
  const errorId = `${form}-error`;
  const invalidField = error?.field ?? null;
  return (
    <Layout titleKey={`${form}.title`}>
      <Card>
        <h1 class="mb-4 text-2xl font-bold">{t(`${form}.title`)}</h1>
        <form class="flex flex-col gap-4" onSubmit={onSubmit} noValidate aria-busy={busy}>
          {notice}
          {error && <ErrorAlert id={errorId}>{errorMessage(error)}</ErrorAlert>}
          {fields.map((f) => (
            <Field
              key={f.name}
              id={`${form}-${f.name.replace('_', '-')}`}
              name={f.name}
              type={f.type}
              label={t(`field.${f.name}`)}
              hint={hints ? t(`hint.${f.name}`) : undefined}
              value={f.value}
              onInput={f.onInput}
              autoComplete={f.autoComplete}
              invalid={invalidField === f.name}
              errorId={errorId}
              inputRef={f.inputRef}
              autoFocus={f.autoFocus}
            />
          ))}
          <Button type="submit" disabled={busy}>
            {busy ? t(`${form}.submitting`) : t(`${form}.submit`)}
          </Button>
        </form>
        <p class="mt-4 text-sm text-slate-700">
          {other.text}{' '}
          <a href={other.href} onClick={linkClick} class="font-semibold text-blue-800 underline focus-visible:outline-2 focus-visible:outline-blue-600">
            {other.link}
          </a>
        </p>
      </Card>
    </Layout>
  );
}
