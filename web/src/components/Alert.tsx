import type { ComponentChildren } from 'preact';

/** An error message announced to assistive tech (`role="alert"`). */
export function ErrorAlert({ id, children }: { id?: string; children: ComponentChildren }) {
  return (
    <div
      id={id}
      role="alert"
      class="rounded-md border border-red-300 bg-red-50 px-3 py-2 text-sm text-red-800"
    >
      {children}
    </div>
  );
}

/** A non-urgent message (`role="status"`). */
export function Notice({ children }: { children: ComponentChildren }) {
  return (
    <div role="status" class="rounded-md border border-sky-300 bg-sky-50 px-3 py-2 text-sm text-sky-900">
      {children}
    </div>
  );
}
