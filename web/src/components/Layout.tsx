import type { ComponentChildren } from 'preact';
import { useEffect } from 'preact/hooks';
import { useI18n, type MessageKey } from '../i18n';
import { linkClick } from '../router';
import { Button } from './Button';

/** Page chrome: header with the app name and language toggle, then the page. */
export function Layout({ titleKey, children }: { titleKey: MessageKey; children: ComponentChildren }) {
  const { lang, t, setLang } = useI18n();
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
        <div class="mx-auto flex max-w-3xl items-center justify-between gap-4 px-4 py-3">
          <a
            href="/"
            onClick={linkClick}
            class="rounded text-lg font-bold text-blue-800 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600"
          >
            {t('app.name')}
          </a>
          <Button variant="secondary" onClick={() => setLang(lang === 'ko' ? 'en' : 'ko')}>
            <span class="sr-only">{t('lang.toggleLabel')} </span>
            <span data-testid="lang-toggle" lang={lang === 'ko' ? 'en' : 'ko'}>
              {t('lang.toggle')}
            </span>
          </Button>
        </div>
      </header>
      <main id="main" tabIndex={-1} class="mx-auto max-w-3xl px-4 py-8 focus:outline-none">
        {children}
      </main>
    </>
  );
}

/** A centered card for the auth forms. */
export function Card({ children }: { children: ComponentChildren }) {
  return <div class="mx-auto max-w-md rounded-xl border border-slate-200 bg-white p-6 shadow-sm">{children}</div>;
}
