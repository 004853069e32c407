import type { AppNotification } from '../api';
import { useI18n } from '../i18n';
import { notificationText } from '../notifications';
import { linkClick } from '../router';

export interface Toast {
  key: number;
  /** A notification toast, or a plain `text` (e.g. a direct message) with an optional link. */
  notification?: AppNotification;
  text?: string;
  href?: string;
}

/** Live notification toasts, bottom right; each is a `role="status"` message. */
export function Toasts({ toasts, onDismiss }: { toasts: Toast[]; onDismiss: (key: number) => void }) {
  const { t } = useI18n();
  return (
    <div class="pointer-events-none fixed bottom-4 right-4 z-30 flex w-80 max-w-[90vw] flex-col gap-2">
      {toasts.map((toast) => (
        <div
          key={toast.key}
          role="status"
          data-testid="toast"
          class="pointer-events-auto flex items-start gap-2 rounded-lg border border-slate-300 bg-white p-3 text-sm text-slate-900 shadow-lg"
        >
          <span class="flex-1">
            {toast.text ?? (toast.notification ? notificationText(toast.notification) : '')}
            {toast.href && (
              <>
                {' '}
                <a href={toast.href} onClick={(e) => { linkClick(e); onDismiss(toast.key); }} class="font-semibold text-blue-800 underline">
                  {t('dm.openToast')}
                </a>
              </>
            )}
          </span>
          <button
            type="button"
            aria-label={t('toast.dismiss')}
            onClick={() => onDismiss(toast.key)}
            class="rounded px-1 text-slate-600 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-blue-600"
          >
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
