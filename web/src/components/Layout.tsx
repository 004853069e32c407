import type { ComponentChildren } from 'preact';
import { useEffect } from 'preact/hooks';
import { useApp } from '../context';
import { useFlash } from '../flash';
import { useI18n, type MessageKey } from '../i18n';
import { linkClick, usePath } from '../router';
import { Notice } from './Alert';
import { Button } from './Button';
import { NotificationBell } from './NotificationBell';

function NavLink({ href, active, children }: { href: string; active: boolean; children: ComponentChildren }) {
  return (
    <a
      href={href}
      onClick={linkClick}
      aria-current={active ? 'page' : undefined}
      class={`rounded px-2 py-1 text-sm font-semibold focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600 ${
        active ? 'bg-blue-50 text-blue-900' : 'text-slate-700 hover:bg-slate-100'
      }`}
    >
      {children}
    </a>
  );
}

/**
 * Page chrome: header with the app name and language toggle, then the page.
 * `wide`: a page with a side column (the study page with its chat).
 */
export function Layout({ titleKey, wide, children }: { titleKey: MessageKey; wide?: boolean; children: ComponentChildren }) {
  const width = wide ? 'max-w-6xl' : 'max-w-4xl';
  const { lang, t, setLang } = useI18n();
  const app = useApp();
  const path = usePath();
  const flash = useFlash();
  useEffect(() => {
    document.title = `${t(titleKey)} · ${t('app.name')}`;
  }, [lang, titleKey]);
  return (
    <>
      <a
        href="#main"
        class="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:rounded focus:bg-white focus:px-3 focus:py-2"
      >
        {t('app.skipToContent')}
      </a>
      <header class="border-b border-slate-200 bg-white">
        <div class={`mx-auto flex ${width} flex-wrap items-center justify-between gap-x-4 gap-y-2 px-4 py-3`}>
          <a
            href="/"
            onClick={linkClick}
            class="rounded text-lg font-bold text-blue-800 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600"
          >
            {t('app.name')}
          </a>
          {/* On a phone the links take their own row(s) under the name and the buttons. */}
          {app.user && (
            <nav
              aria-label={t('nav.main')}
              class="order-last -mx-2 flex w-full flex-wrap items-center gap-1 sm:order-none sm:mx-0 sm:w-auto sm:flex-1"
            >
              <NavLink href="/studies" active={path === '/studies' || /^\/studies\/\d+/.test(path)}>
                {t('nav.studies')}
              </NavLink>
              <NavLink href="/me/studies" active={path === '/me/studies'}>
                {t('nav.myStudies')}
              </NavLink>
              <NavLink href="/notifications" active={path === '/notifications'}>
                {t('nav.notificationsPage')}
              </NavLink>
              <NavLink href="/messages" active={path === '/messages' || path.startsWith('/messages/')}>
                {t('nav.messages')}
                {app.dmUnread > 0 && (
                  <span data-testid="dm-unread" class="ml-1 rounded-full bg-red-600 px-1.5 text-xs text-white">
                    <span aria-hidden="true">{app.dmUnread}</span>
                    <span class="sr-only"> {t('dm.unreadTotal', { count: app.dmUnread })}</span>
                  </span>
                )}
              </NavLink>
            </nav>
          )}
          <div class="flex items-center gap-2">
            {app.user && <NotificationBell />}
            <Button variant="secondary" onClick={() => setLang(lang === 'ko' ? 'en' : 'ko')}>
              <span class="sr-only">{t('lang.toggleLabel')} </span>
              <span data-testid="lang-toggle" lang={lang === 'ko' ? 'en' : 'ko'}>
                {t('lang.toggle')}
              </span>
            </Button>
          </div>
        </div>
      </header>
      <main id="main" tabIndex={-1} class={`mx-auto ${width} px-4 py-8 focus:outline-none`}>
        {flash && (
          <div class="mb-6" data-testid="flash">
            <Notice>{t(flash.key, flash.params)}</Notice>
          </div>
        )}
        {children}
      </main>
    </>
  );
}

/** A centered card for the auth forms. */
export function Card({ children }: { children: ComponentChildren }) {
  return <div class="mx-auto max-w-md rounded-xl border border-slate-200 bg-white p-6 shadow-sm">{children}</div>;
}
