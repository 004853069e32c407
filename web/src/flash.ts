// A one-off notice for the page the app is sent to, e.g. "the study was
// deleted" after leaving a deleted study's page. It is shown at the top of
// that page (by `Layout`, `data-testid="flash"`) and dropped on the next
// navigation. It keeps the message key, not the text, so it follows the
// language toggle.
import { useEffect, useState } from 'preact/hooks';
import type { MessageKey } from './i18n';
import { currentPath, navigate, onNavigate } from './router';

export interface Flash {
  key: MessageKey;
  params?: Record<string, string | number>;
  /** The page it belongs to. */
  path: string;
}

let current: Flash | null = null;
const listeners = new Set<() => void>();

function emit(): void {
  for (const fn of [...listeners]) fn();
}

if (typeof window !== 'undefined') {
  onNavigate(() => {
    if (current && current.path !== currentPath()) {
      current = null;
      emit();
    }
  });
}

/** Go to `path` (replacing the current history entry) and show the notice there. */
export function goWithNotice(path: string, key: MessageKey, params?: Record<string, string | number>): void {
  current = { key, params, path };
  emit();
  navigate(path, { replace: true });
}

/** The notice for the current page, if any; re-renders the caller when it changes. */
export function useFlash(): Flash | null {
  const [, setTick] = useState(0);
  useEffect(() => {
    const fn = () => setTick((n) => n + 1);
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
    };
  }, []);
  return current && current.path === currentPath() ? current : null;
}
