import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { AppNotification } from '../api';
import { useApp } from '../context';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { notificationPath, notificationText } from '../notifications';
import { linkClick, navigate } from '../router';

/** Header bell: live unread count, and a dropdown of the latest notifications. */
export function NotificationBell() {
  const { t } = useI18n();
  const app = useApp();
  const [open, setOpen] = useState(false);
  const [items, setItems] = useState<AppNotification[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const root = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (!open) return;
    let cancelled = false;
    setError(null);
    api.listNotifications(null, 5).then(
      (page) => !cancelled && setItems(page.items),
      (e) => !cancelled && setError(errorMessage(toApiError(e))),
    );
    const onDoc = (e: MouseEvent) => {
      if (root.current && !root.current.contains(e.target as Node)) setOpen(false);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        setOpen(false);
        button.current?.focus();
      }
    };
    document.addEventListener('mousedown', onDoc);
    document.addEventListener('keydown', onKey);
    return () => {
      cancelled = true;
      document.removeEventListener('mousedown', onDoc);
      document.removeEventListener('keydown', onKey);
    };
  }, [open, app.unread]);

  async function openItem(n: AppNotification) {
    setOpen(false);
    if (!n.read) {
      try {
        await api.markRead(n.id);
      } catch {
        // Not fatal; the item simply stays unread.
      }
      app.refreshUnread();
    }
    navigate(notificationPath(n) ?? '/notifications');
  }

  return (
    <div class="relative" ref={root}>
      <button
        ref={button}
        type="button"
        data-testid="bell"
        aria-haspopup="true"
        aria-expanded={open}
        aria-controls="notif-menu"
        onClick={() => setOpen(!open)}
        class="inline-flex items-center gap-1 rounded-md border border-slate-300 bg-white px-3 py-2 text-sm font-semibold text-slate-800 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600"
      >
        <svg aria-hidden="true" viewBox="0 0 24 24" class="h-4 w-4" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
          <path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9" />
          <path d="M10.3 21a1.94 1.94 0 0 0 3.4 0" />
        </svg>
        <span class="sr-only">{t('nav.notifications')}</span>
        <span
          data-testid="unread-count"
          class={`min-w-5 rounded-full px-1.5 text-xs ${app.unread > 0 ? 'bg-red-600 text-white' : 'bg-slate-200 text-slate-700'}`}
        >
          {app.unread}
        </span>
        <span class="sr-only">{t('nav.unread')}</span>
      </button>
      {open && (
        <div
          id="notif-menu"
          class="absolute right-0 z-20 mt-2 w-80 max-w-[90vw] rounded-lg border border-slate-200 bg-white p-2 shadow-lg"
        >
          <h2 class="px-2 py-1 text-sm font-semibold text-slate-700">{t('notif.recent')}</h2>
          {error && <p class="px-2 text-sm text-red-800">{error}</p>}
          {items === null && !error && <p class="px-2 text-sm text-slate-600">{t('app.loading')}</p>}
          {items && items.length === 0 && <p class="px-2 text-sm text-slate-600">{t('notif.empty')}</p>}
          {items && items.length > 0 && (
            <ul class="flex flex-col">
              {items.map((n) => (
                <li key={n.id}>
                  <button
                    type="button"
                    onClick={() => openItem(n)}
                    class={`w-full rounded px-2 py-2 text-left text-sm hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-blue-600 ${n.read ? 'text-slate-600' : 'font-semibold text-slate-900'}`}
                  >
                    {!n.read && <span class="sr-only">{t('notif.unread')} </span>}
                    {notificationText(n)}
                  </button>
                </li>
              ))}
            </ul>
          )}
          <a
            href="/notifications"
            onClick={(e) => {
              setOpen(false);
              linkClick(e);
            }}
            class="mt-1 block rounded px-2 py-2 text-sm font-semibold text-blue-800 underline focus-visible:outline-2 focus-visible:outline-blue-600"
          >
            {t('notif.seeAll')}
          </a>
        </div>
      )}
    </div>
  );
}
