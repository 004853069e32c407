import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, Profile } from '../api';
import { ErrorAlert } from '../components/Alert';
import { Layout } from '../components/Layout';
import { MessageLink, ratingText, Stars, StudyLink, UserLink } from '../components/Study';
import { useApp } from '../context';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';

export function ProfilePage({ id }: { id: number }) {
  const { t, lang } = useI18n();
  const me = useApp().user;
  const [profile, setProfile] = useState<Profile | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    let cancelled = false;
    api.getProfile(id).then(
      (p) => !cancelled && setProfile(p),
      (e) => !cancelled && setError(toApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [id]);

  return (
    <Layout titleKey="profile.title">
      {error && <ErrorAlert>{error.code === 'not_found' ? t('profile.notFound') : errorMessage(error)}</ErrorAlert>}
      {!profile && !error && <p role="status">{t('app.loading')}</p>}
      {profile && (
        <div class="flex flex-col gap-8">
          <header>
            <div class="flex flex-wrap items-center gap-3">
              <h1 class="text-2xl font-bold" data-testid="profile-name">
                {profile.user.display_name}
              </h1>
              {me && me.id !== profile.user.id && <MessageLink user={profile.user} />}
            </div>
            <p class="mt-1 text-slate-700" data-testid="profile-rating">
              {ratingText(profile.review_average, profile.review_count)}
            </p>
          </header>
          <section aria-labelledby="reviews-h" class="flex flex-col gap-3">
            <h2 id="reviews-h" class="text-lg font-semibold">
              {t('profile.reviews')}
            </h2>
            {profile.reviews.length === 0 ? (
              <p class="text-slate-600">{t('review.none')}</p>
            ) : (
              <ul class="flex flex-col gap-3">
                {profile.reviews.map((r) => (
                  <li key={r.id} data-testid="review" class="rounded-lg border border-slate-200 bg-white p-3">
                    <div class="flex flex-wrap items-center gap-2 text-sm">
                      <Stars rating={r.rating} />
                      <UserLink user={r.author} />
                      <span class="text-slate-500">·</span>
                      <StudyLink study={{ id: r.study_id, title: r.study_title }} />
                      <span class="text-slate-500">{new Date(r.created_at).toLocaleDateString(lang)}</span>
                    </div>
                    <p class="mt-1 whitespace-pre-wrap text-slate-800">{r.body}</p>
                  </li>
                ))}
              </ul>
            )}
          </section>
          <section aria-labelledby="completed-h" class="flex flex-col gap-2">
            <h2 id="completed-h" class="text-lg font-semibold">
              {t('profile.completed')}
            </h2>
            {profile.completed_studies.length === 0 ? (
              <p class="text-slate-600">{t('profile.noCompleted')}</p>
            ) : (
              <ul class="flex flex-col gap-1">
                {profile.completed_studies.map((s) => (
                  <li key={s.id}>
                    <StudyLink study={s} />
                  </li>
                ))}
              </ul>
            )}
          </section>
        </div>
      )}
    </Layout>
  );
}
