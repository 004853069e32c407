// The message box of a chat room and of a direct conversation: a labelled textarea that sends
// on Enter (Shift+Enter for a new line; never mid-IME composition) and a Send button.
import { CHAT_BODY_MAX } from '../api';
import { useI18n } from '../i18n';
import { Button } from './Button';

export const chatInputClass =
  'rounded-md border border-slate-400 px-3 py-2 text-base focus-visible:outline-2 focus-visible:outline-offset-1 focus-visible:outline-blue-600';

/** The small buttons beside chat messages (retry, discard, load older, edit). */
export const chatSmallButton =
  'rounded border border-slate-300 bg-white px-2 py-0.5 text-xs font-semibold text-slate-800 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-blue-600 disabled:opacity-60';

export function Composer({
  id,
  label,
  body,
  onInput,
  onBlur,
  onSubmit,
}: {
  id: string;
  label: string;
  body: string;
  onInput: (value: string) => void;
  onBlur?: () => void;
  onSubmit: (e?: Event) => void;
}) {
  const { t } = useI18n();
  return (
    <form class="flex flex-col gap-2" onSubmit={onSubmit}>
      <label for={id} class="text-sm font-medium text-slate-800">
        {label}
      </label>
      <div class="flex items-end gap-2">
        <textarea
          id={id}
          rows={2}
          maxLength={CHAT_BODY_MAX}
          value={body}
          onInput={(e) => onInput(e.currentTarget.value)}
          onBlur={onBlur}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              onSubmit();
            }
          }}
          class={`${chatInputClass} flex-1`}
        />
        <Button type="submit" disabled={!body.trim()}>
          {t('chat.send')}
        </Button>
      </div>
    </form>
  );
}
