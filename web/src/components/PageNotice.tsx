// What a page shows in place of its content (removed from the study, the thing
// was deleted, it failed to load): a notice or an error, then a link back. It
// goes inside the page's own <Layout>, so switching between it and the page's
// content keeps the header as it is.
import type { ComponentChildren } from 'preact';
import { linkClick } from '../router';
import { ErrorAlert, Notice } from './Alert';
import { linkClass } from './Study';

/** An in-app link away from the page (back to the study, the task, the list). */
export function BackLink({ href, testId, children }: { href: string; testId?: string; children: ComponentChildren }) {
  return (
    <a href={href} onClick={linkClick} class={linkClass} data-testid={testId}>
      {children}
    </a>
  );
}

/** `children` as a notice (`role="status"`), or as an error (`role="alert"`) with `error`. */
export function PageNotice({ error, back, children }: { error?: boolean; back: ComponentChildren; children: ComponentChildren }) {
  return (
    <div class="flex flex-col items-start gap-4">
      {error ? <ErrorAlert>{children}</ErrorAlert> : <Notice>{children}</Notice>}
      {back}
    </div>
  );
}
