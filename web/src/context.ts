// App-wide state shared with pages: the signed-in user and the live
// connection. Later features (studies, chat, notifications) subscribe to
// `live` frames through this context.
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { User } from './api';
import type { DmInbox } from './dm';
import type { ConnState, LiveClient } from './live';

export type Notice = 'revoked' | 'loggedOut' | null;

export interface AppState {
  user: User | null;
  live: LiveClient | null;
  connState: ConnState;
  /** A one-off message for the login page (e.g. after the session was revoked). */
  notice: Notice;
  signedIn(user: User): void;
  signedOut(notice?: Notice): void;
  /** Unread notifications of the signed-in user (kept live from `notification` frames). */
  unread: number;
  /** Re-read the unread count from the server (after marking notifications read). */
  refreshUnread(): void;
  /** Direct messages: the inbox of the signed-in user and its total unread count. */
  dm: DmInbox | null;
  dmUnread: number;
}

export const AppContext = createContext<AppState | null>(null);

export function useApp(): AppState {
  const ctx = useContext(AppContext);
  if (!ctx) throw new Error('useApp() outside <AppContext.Provider>');
  return ctx;
}
