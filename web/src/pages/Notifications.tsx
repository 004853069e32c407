import { useCallback, useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, AppNotification } from '../api';
import { ErrorAlert } from '../components/Alert';
import { Button } from '../components/Button';
import { Layout } from '../components/Layout';
import { useApp } from '../context';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import type { AnyFrame } from '../live';
import { notificationPath, notificationText } from '../notifications';
import { navigate } from '../router';

export function NotificationsPage() {
  const { t, lang } = useI18n();
  const app = useApp();
  const [items, setItems] = useState<AppNotification[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  const fetchPage = useCallback(async (from: string | null) => {
    setLoading(true);
    setError(null);
    try {
      const page = await api.listNotifications(from);
      setItems((prev) => {
        if (from === null) return page.items;
        const seen = new Set(prev.map((n) => n.id));
        return [...prev, ...page.items.filter((n) => !seen.has(n.id))];
      });
      setCursor(page.next_cursor);
      setLoaded(true);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setLoading(false);
    }
  }, []);

  useEffect(() => {
    fetchPage(null);
  }, [fetchPage]);

  // New notifications arrive live at the top.
  useEffect(() => {
    if (!app.live) return;
    return app.live.on('notification', (f) => {
      const n = (f as AnyFrame).notification as AppNotification | undefined;
      if (n && typeof n === 'object') setItems((prev) => (prev.some((x) => x.id === n.id) ? prev : [n, ...prev]));
    });
  }, [app.live]);

  async function markOne(n: AppNotification) {
    try {
      await api.markRead(n.id);
      setItems((prev) => prev.map((x) => (x.id === n.id ? { ...x, read: true } : x)));
    } catch (e) {
      setError(toApiError(e));
    }
    app.refreshUnread();
  }

  async function markAll() {
    try {
      await api.markAllRead();
      setItems((prev) => prev.map((x) => ({ ...x, read: true })));
    } catch (e) {
      setError(toApiError(e));
    }
    app.refreshUnread();
  }

  async function open(n: AppNotification) {
    const path = notificationPath(n);
    if (!n.read) await markOne(n);
    if (path !== null) navigate(path);
  }

  return (
    <Layout titleKey="notif.title">
      <div class="mb-6 flex flex-wrap items-center justify-between gap-4">
        <h1 class="text-2xl font-bold">{t('notif.title')}</h1>
        <Button variant="secondary" onClick={markAll} disabled={!items.some((n) => !n.read)}>
          {t('notif.markAll')}
        </Button>
      </div>
      {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
      {loaded && items.length === 0 && (
        <p class="rounded-lg border border-dashed border-slate-300 p-6 text-center text-slate-600">{t('notif.empty')}</p>
      )}
      <ul class="flex flex-col gap-2" data-testid="notification-list">
        {items.map((n) => {
          const path = notificationPath(n);
          return (
            <li
              key={n.id}
              data-testid="notification"
              data-read={n.read ? 'true' : 'false'}
              class={`flex flex-wrap items-center gap-3 rounded-lg border p-3 ${
                n.read ? 'border-slate-200 bg-white text-slate-600' : 'border-blue-300 bg-blue-50 font-semibold text-slate-900'
              }`}
            >
              {!n.read && <span aria-hidden="true" class="inline-block h-2 w-2 rounded-full bg-blue-600" />}
              {!n.read && <span class="sr-only">{t('notif.unread')}</span>}
              {path !== null ? (
                <button
                  type="button"
                  onClick={() => open(n)}
                  class="flex-1 text-left underline-offset-2 hover:underline focus-visible:outline-2 focus-visible:outline-blue-600"
                >
                  {notificationText(n)}
                </button>
              ) : (
                <span class="flex-1">{notificationText(n)}</span>
              )}
              <time class="text-xs font-normal text-slate-500" dateTime={new Date(n.created_at).toISOString()}>
                {new Date(n.created_at).toLocaleString(lang)}
              </time>
              {!n.read && (
                <Button variant="secondary" onClick={() => markOne(n)}>
                  {t('notif.markRead')}
                </Button>
              )}
            </li>
          );
        })}
      </ul>
      {loading && <p role="status" class="py-4 text-center text-slate-600">{t('app.loading')}</p>}
      {cursor && !loading && (
        <div class="flex justify-center py-4">
          <Button variant="secondary" onClick={() => fetchPage(cursor)}>
            {t('notif.loadMore')}
          </Button>
        </div>
      )}
    </Layout>
  );
}
