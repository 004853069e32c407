import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, MyApplication, StudySummary } from '../api';
import { ErrorAlert } from '../components/Alert';
import { Layout } from '../components/Layout';
import { StatusBadge, StudyLink } from '../components/Study';
import { toApiError } from '../forms';
import { errorMessage, type MessageKey, useI18n } from '../i18n';

interface Data {
  leading: StudySummary[];
  joined: StudySummary[];
  applications: MyApplication[];
  bookmarks: StudySummary[];
}

export function StudyList({ testId, titleKey, items }: { testId: string; titleKey: MessageKey; items: StudySummary[] }) {
  const { t } = useI18n();
  const hid = `${testId}-h`;
  return (
    <section aria-labelledby={hid} data-testid={testId} class="flex flex-col gap-2">
      <h2 id={hid} class="text-lg font-semibold">
        {t(titleKey)}
      </h2>
      {items.length === 0 ? (
        <p class="text-slate-600">{t('my.none')}</p>
      ) : (
        <ul class="flex flex-col gap-2">
          {items.map((s) => (
            <li key={s.id} class="flex flex-wrap items-center gap-2">
              <StudyLink study={s} />
              <StatusBadge status={s.status} />
              <span class="text-sm text-slate-600">
                {s.member_count}/{s.capacity}
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function MyStudiesPage() {
  const { t } = useI18n();
  const [data, setData] = useState<Data | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    let cancelled = false;
    Promise.all([api.myStudies(), api.myBookmarks().catch(() => [] as StudySummary[])]).then(
      ([mine, bookmarks]) => !cancelled && setData({ ...mine, bookmarks }),
      (e) => !cancelled && setError(toApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, []);

  return (
    <Layout titleKey="my.title">
      <h1 class="mb-6 text-2xl font-bold">{t('my.title')}</h1>
      {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
      {!data && !error && <p role="status">{t('app.loading')}</p>}
      {data && (
        <div class="flex flex-col gap-8">
          <StudyList testId="leading" titleKey="my.leading" items={data.leading} />
          <StudyList testId="joined" titleKey="my.joined" items={data.joined} />
          <section aria-labelledby="my-applications-h" data-testid="my-applications" class="flex flex-col gap-2">
            <h2 id="my-applications-h" class="text-lg font-semibold">
              {t('my.applications')}
            </h2>
            {data.applications.length === 0 ? (
              <p class="text-slate-600">{t('my.none')}</p>
            ) : (
              <ul class="flex flex-col gap-2">
                {data.applications.map((a) => (
                  <li key={a.id} data-testid="my-application" data-status={a.status} class="flex flex-wrap items-center gap-2">
                    <StudyLink study={a.study} />
                    <span class="rounded bg-slate-100 px-2 py-0.5 text-xs font-semibold text-slate-800">{t(`appStatus.${a.status}`)}</span>
                    {a.reason && <span class="text-sm text-slate-600">{t('my.reason', { reason: a.reason })}</span>}
                  </li>
                ))}
              </ul>
            )}
          </section>
          <StudyList testId="bookmarks" titleKey="my.bookmarks" items={data.bookmarks} />
        </div>
      )}
    </Layout>
  );
}
