// A minimal client-side router on top of the History API. The server serves
// index.html for every unknown non-API path, so any route can be loaded
// directly.
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set<() => void>();

function notify(): void {
  for (const fn of [...listeners]) fn();
}

if (typeof window !== 'undefined') window.addEventListener('popstate', notify);

export function currentPath(): string {
  return location.pathname || '/';
}

/** Go to `path`; `replace` swaps the history entry instead of pushing one. */
export function navigate(path: string, { replace = false } = {}): void {
  if (path === location.pathname + location.search) {
    if (!replace) return;
  }
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  notify();
}

/** Calls `fn` after every navigation (in-app or Back/Forward); returns the unsubscribe. */
export function onNavigate(fn: () => void): () => void {
  listeners.add(fn);
  return () => {
    listeners.delete(fn);
  };
}

/** The current path; re-renders the caller on navigation. */
export function usePath(): string {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const fn = () => setPath(currentPath());
    listeners.add(fn);
    fn();
    return () => {
      listeners.delete(fn);
    };
  }, []);
  return path;
}

/**
 * Click handler for in-app `<a href>` links: plain left clicks navigate
 * without a reload; modified clicks (new tab etc.) keep browser behaviour.
 */
export function linkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.currentTarget as HTMLAnchorElement | null;
  if (!a || a.origin !== location.origin || a.target) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
}
