import { Layout } from '../components/Layout';
import { useI18n } from '../i18n';
import { linkClick } from '../router';

export function NotFoundPage() {
  const { t } = useI18n();
  return (
    <Layout titleKey="notFound.title">
      <h1 class="mb-2 text-2xl font-bold">{t('notFound.title')}</h1>
      <p class="mb-4 text-slate-700">{t('notFound.body')}</p>
      <a href="/" onClick={linkClick} class="font-semibold text-blue-800 underline focus-visible:outline-2 focus-visible:outline-blue-600">
        {t('notFound.home')}
      </a>
    </Layout>
  );
}
