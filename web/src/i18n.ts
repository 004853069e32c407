// Every user-visible string of the client lives in this file, in Korean and
// English. Components read them through `useI18n()` (or `t()` outside
// components). API error codes map to `error.<code>` keys; see
// `errorMessage()` for the fallback order.
import { useEffect, useState } from 'preact/hooks';

export type Lang = 'ko' | 'en';
export const LANGS: readonly Lang[] = ['ko', 'en'];

const en = {
  'app.name': 'StudyOn',
  'app.tagline': 'Study together, in real time.',
  'app.loading': 'Loading…',
  'app.skipToContent': 'Skip to content',

  'lang.toggle': '한국어',
  'lang.toggleLabel': 'Switch language to Korean',
  'lang.current': 'English',

  'nav.login': 'Log in',
  'nav.signup': 'Sign up',

  'field.login_id': 'Login ID',
  'field.display_name': 'Display name',
  'field.password': 'Password',
  'hint.login_id': '3–32 characters: lowercase letters, digits and _',
  'hint.display_name': '1–40 characters. Korean is fine.',
  'hint.password': 'At least 10 characters.',

  'signup.title': 'Create your account',
  'signup.submit': 'Sign up',
  'signup.submitting': 'Signing up…',
  'signup.haveAccount': 'Already have an account?',
  'signup.toLogin': 'Log in',

  'login.title': 'Log in',
  'login.submit': 'Log in',
  'login.submitting': 'Logging in…',
  'login.noAccount': 'New to StudyOn?',
  'login.toSignup': 'Create an account',

  'home.title': 'Home',
  'home.welcome': 'welcome, ',
  'home.welcomeEnd': '',
  'home.signedInAs': 'Signed in as {login}',
  'home.logout': 'Log out',
  'home.loggingOut': 'Logging out…',
  'home.connection': 'Live connection',
  'home.empty': 'Your study groups will show up here.',

  'conn.connecting': 'Connecting…',
  'conn.connected': 'Connected',
  'conn.reconnecting': 'Reconnecting…',
  'conn.offline': 'Offline',

  'notice.revoked': 'You have been logged out. Please log in again.',
  'notice.loggedOut': 'You have been logged out.',

  'notFound.title': 'Page not found',
  'notFound.body': 'There is nothing at this address.',
  'notFound.home': 'Go to the home page',

  'error.validation_failed': 'Please check your input.',
  'error.validation_failed.login_id':
    'Login ID must be 3–32 characters of lowercase letters, digits and _.',
  'error.validation_failed.display_name': 'Display name must be 1–40 characters.',
  'error.validation_failed.password': 'Password must be 10–256 bytes long.',
  'error.login_id_taken': 'That login ID is already taken.',
  'error.display_name_taken': 'That display name is already taken.',
  'error.invalid_credentials': 'Wrong login ID or password.',
  'error.rate_limited': 'Too many attempts. Please try again later.',
  'error.rate_limited.retry': 'Too many attempts. Please try again in {seconds} seconds.',
  'error.unauthenticated': 'Please log in.',
  'error.network': 'Cannot reach the server. Check your connection and try again.',
  'error.unknown': 'Something went wrong. Please try again.',
  'error.required': '{field} is required.',
  'error.retry': 'Try again',
} as const;

export type MessageKey = keyof typeof en;
type Dict = Record<MessageKey, string>;

const ko: Dict = {
  'app.name': 'StudyOn',
  'app.tagline': '함께, 실시간으로 공부해요.',
  'app.loading': '불러오는 중…',
  'app.skipToContent': '본문으로 건너뛰기',

  'lang.toggle': 'English',
  'lang.toggleLabel': '언어를 영어로 바꾸기',
  'lang.current': '한국어',

  'nav.login': '로그인',
  'nav.signup': '회원가입',

  'field.login_id': '아이디',
  'field.display_name': '표시 이름',
  'field.password': '비밀번호',
  'hint.login_id': '3–32자: 영문 소문자, 숫자, _',
  'hint.display_name': '1–40자. 한글도 됩니다.',
  'hint.password': '10자 이상.',

  'signup.title': '계정 만들기',
  'signup.submit': '가입하기',
  'signup.submitting': '가입하는 중…',
  'signup.haveAccount': '이미 계정이 있나요?',
  'signup.toLogin': '로그인',

  'login.title': '로그인',
  'login.submit': '로그인',
  'login.submitting': '로그인하는 중…',
  'login.noAccount': 'StudyOn이 처음인가요?',
  'login.toSignup': '계정 만들기',

  'home.title': '홈',
  'home.welcome': '',
  'home.welcomeEnd': '님, 환영합니다',
  'home.signedInAs': '{login} 계정으로 로그인됨',
  'home.logout': '로그아웃',
  'home.loggingOut': '로그아웃하는 중…',
  'home.connection': '실시간 연결',
  'home.empty': '스터디 그룹이 여기에 표시됩니다.',

  'conn.connecting': '연결 중…',
  'conn.connected': '연결됨',
  'conn.reconnecting': '다시 연결하는 중…',
  'conn.offline': '오프라인',

  'notice.revoked': '로그아웃되었습니다. 다시 로그인해 주세요.',
  'notice.loggedOut': '로그아웃했습니다.',

  'notFound.title': '페이지를 찾을 수 없습니다',
  'notFound.body': '이 주소에는 아무것도 없습니다.',
  'notFound.home': '홈으로 가기',

  'error.validation_failed': '입력한 내용을 확인해 주세요.',
  'error.validation_failed.login_id': '아이디는 영문 소문자, 숫자, _ 로 3–32자여야 합니다.',
  'error.validation_failed.display_name': '표시 이름은 1–40자여야 합니다.',
  'error.validation_failed.password': '비밀번호는 10–256바이트여야 합니다.',
  'error.login_id_taken': '이미 사용 중인 아이디입니다.',
  'error.display_name_taken': '이미 사용 중인 표시 이름입니다.',
  'error.invalid_credentials': '아이디 또는 비밀번호가 올바르지 않습니다.',
  'error.rate_limited': '시도가 너무 많습니다. 잠시 후 다시 시도해 주세요.',
  'error.rate_limited.retry': '시도가 너무 많습니다. {seconds}초 후에 다시 시도해 주세요.',
  'error.unauthenticated': '로그인해 주세요.',
  'error.network': '서버에 연결할 수 없습니다. 연결을 확인하고 다시 시도해 주세요.',
  'error.unknown': '문제가 생겼습니다. 다시 시도해 주세요.',
  'error.required': '{field}을(를) 입력해 주세요.',
  'error.retry': '다시 시도',
};

const DICTS: Record<Lang, Dict> = { en, ko };

const STORAGE_KEY = 'studyon.lang';

function detectLang(): Lang {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === 'ko' || saved === 'en') return saved;
  } catch {
    // localStorage may be unavailable (privacy mode); fall through.
  }
  const nav = typeof navigator !== 'undefined' ? navigator.language || '' : '';
  return nav.toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

let current: Lang = detectLang();
const listeners = new Set<(lang: Lang) => void>();

export function getLang(): Lang {
  return current;
}

export function setLang(lang: Lang): void {
  if (lang === current) return;
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // Not fatal: the choice just won't be remembered.
  }
  applyDocumentLang();
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn: (lang: Lang) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Keeps `<html lang>` in step with the chosen language. */
export function applyDocumentLang(): void {
  if (typeof document !== 'undefined') document.documentElement.lang = current;
}

export function hasKey(key: string): key is MessageKey {
  return Object.prototype.hasOwnProperty.call(en, key);
}

/** Translate `key`, replacing `{name}` placeholders from `params`. */
export function t(key: MessageKey, params?: Record<string, string | number>): string {
  let s = DICTS[current][key] ?? en[key];
  if (params) {
    for (const [k, v] of Object.entries(params)) s = s.split(`{${k}}`).join(String(v));
  }
  return s;
}

/** Re-renders the calling component when the language changes. */
export function useI18n() {
  const [lang, setState] = useState<Lang>(current);
  useEffect(() => onLangChange(setState), []);
  return { lang, t, setLang };
}

/**
 * The text to show for an API error: the localized text for its stable code
 * (and field, for validation errors), else the server's own message, else a
 * generic localized text.
 */
export function errorMessage(err: {
  code: string;
  message?: string;
  field?: string | null;
  retryAfter?: number | null;
}): string {
  if (err.code === 'required' && err.field && hasKey(`field.${err.field}`)) {
    return t('error.required', { field: t(`field.${err.field}` as MessageKey) });
  }
  if (err.code === 'rate_limited' && err.retryAfter && err.retryAfter > 0) {
    return t('error.rate_limited.retry', { seconds: err.retryAfter });
  }
  if (err.field) {
    const fieldKey = `error.${err.code}.${err.field}`;
    if (hasKey(fieldKey)) return t(fieldKey);
  }
  const key = `error.${err.code}`;
  if (hasKey(key)) return t(key);
  if (err.message) return err.message;
  return t('error.unknown');
}
