// A "Delete" button that asks first: pressed, it gives way to the question,
// a button that deletes and "Cancel". Renders inline (into a row of buttons).
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { useI18n } from '../i18n';
import { Button } from './Button';

interface Props {
  /** The first button's content. */
  label: ComponentChildren;
  question: string;
  /** The button that deletes. */
  yes: string;
  /** A deletion (or another action of the caller) is under way: the delete button is disabled. */
  busy: boolean;
  /** Disables the first button. */
  disabled?: boolean;
  onConfirm: () => void;
}

export function ConfirmDelete({ label, question, yes, busy, disabled, onConfirm }: Props) {
  const { t } = useI18n();
  const [confirm, setConfirm] = useState(false);
  // One child that is either the button or the question: the pressed button is
  // replaced, not reused as the "yes" button (focus must not land on that).
  return (
    <>
      {!confirm ? (
        <Button variant="secondary" disabled={disabled} onClick={() => setConfirm(true)}>
          {label}
        </Button>
      ) : (
        <>
          <span class="text-sm text-slate-800">{question}</span>
          <Button disabled={busy} onClick={onConfirm}>
            {yes}
          </Button>
          <Button variant="secondary" onClick={() => setConfirm(false)}>
            {t('task.cancel')}
          </Button>
        </>
      )}
    </>
  );
}
