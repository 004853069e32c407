import type { Ref } from 'preact';

interface FieldProps {
  id: string;
  name: string;
  label: string;
  value: string;
  onInput: (value: string) => void;
  type?: 'text' | 'password';
  hint?: string;
  autoComplete?: string;
  invalid?: boolean;
  /** id of the error alert, linked through aria-describedby when invalid. */
  errorId?: string;
  inputRef?: Ref<HTMLInputElement>;
  autoFocus?: boolean;
  disabled?: boolean;
}

/** A labelled text input (`<label for>`), with an optional hint line. */
export function Field(props: FieldProps) {
  const hintId = props.hint ? `${props.id}-hint` : undefined;
  const describedBy = [hintId, props.invalid ? props.errorId : undefined].filter(Boolean).join(' ') || undefined;
  // Preact 11 types <input> per `type`, so the shared attributes are spread.
  const inputProps = {
    id: props.id,
    name: props.name,
    ref: props.inputRef,
    value: props.value,
    onInput: (e: Event) => props.onInput((e.currentTarget as HTMLInputElement).value),
    autoComplete: props.autoComplete,
    autoCapitalize: 'off' as const,
    spellcheck: false,
    autoFocus: props.autoFocus,
    disabled: props.disabled,
    'aria-invalid': props.invalid ? ('true' as const) : undefined,
    'aria-describedby': describedBy,
    class:
      'rounded-md border bg-white px-3 py-2 text-base shadow-sm ' +
      'focus-visible:border-blue-600 focus-visible:outline-2 focus-visible:outline-offset-1 focus-visible:outline-blue-600 ' +
      (props.invalid ? 'border-red-500' : 'border-slate-300'),
  };
  return (
    <div class="flex flex-col gap-1">
      <label for={props.id} class="text-sm font-medium text-slate-800">
        {props.label}
      </label>
      {props.type === 'password' ? <input type="password" {...inputProps} /> : <input type="text" {...inputProps} />}
      {props.hint && (
        <p id={hintId} class="text-xs text-slate-600">
          {props.hint}
        </p>
      )}
    </div>
  );
}

interface TextAreaFieldProps {
  id: string;
  label: string;
  value: string;
  onInput: (value: string) => void;
  rows: number;
  maxLength: number;
  /** The line under the box (`<id>-hint`). */
  hint: string;
  invalid?: boolean;
  /** id of the error alert, linked through aria-describedby when invalid. */
  errorId?: string;
  disabled?: boolean;
  spellcheck?: boolean;
  class: string;
}

/** A labelled textarea (`<label for>`) with a hint line. */
export function TextAreaField(props: TextAreaFieldProps) {
  const hintId = `${props.id}-hint`;
  return (
    <div class="flex flex-col gap-1">
      <label for={props.id} class="text-sm font-medium text-slate-800">
        {props.label}
      </label>
      <textarea
        id={props.id}
        rows={props.rows}
        maxLength={props.maxLength}
        value={props.value}
        disabled={props.disabled}
        spellcheck={props.spellcheck}
        onInput={(e) => props.onInput(e.currentTarget.value)}
        aria-invalid={props.invalid ? 'true' : undefined}
        aria-describedby={`${hintId}${props.invalid ? ` ${props.errorId}` : ''}`}
        class={props.class}
      />
      <p id={hintId} class="text-xs text-slate-600">
        {props.hint}
      </p>
    </div>
  );
}
