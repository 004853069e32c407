// The parts of a `useInfiniteList` list around its items: the error with a
// retry button, and the tail (the scroll sentinel, the loading status and a
// "Load more" button for keyboards).
import { errorMessage, useI18n } from '../i18n';
import type { InfiniteList } from '../infiniteList';
import { ErrorAlert } from './Alert';
import { Button } from './Button';

type ListState = Pick<InfiniteList<{ id: number }>, 'cursor' | 'loading' | 'error' | 'loadMore' | 'retry' | 'sentinel'>;

/** The last page failed to load: the error and a retry button. */
export function ListError({ list }: { list: ListState }) {
  const { t } = useI18n();
  if (!list.error) return null;
  return (
    <div class="flex flex-col items-start gap-2">
      <ErrorAlert>{errorMessage(list.error)}</ErrorAlert>
      <Button variant="secondary" onClick={list.retry}>
        {t('error.retry')}
      </Button>
    </div>
  );
}

/** Goes after the items. `roomy` pads the status and the button (a page's main list). */
export function ListTail({ list, loadMoreLabel, roomy }: { list: ListState; loadMoreLabel: string; roomy?: boolean }) {
  const { t } = useI18n();
  return (
    <>
      <div ref={list.sentinel} aria-hidden="true" class="h-1" />
      {list.loading && (
        <p role="status" class={roomy ? 'py-4 text-center text-slate-600' : 'py-2 text-center text-slate-600'}>
          {t('app.loading')}
        </p>
      )}
      {list.cursor && !list.loading && !list.error && (
        <div class={roomy ? 'flex justify-center py-4' : 'flex justify-center'}>
          <Button variant="secondary" onClick={list.loadMore}>
            {loadMoreLabel}
          </Button>
        </div>
      )}
    </>
  );
}
