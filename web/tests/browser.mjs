// Test helper: headless Debian Chromium through playwright-core (no browser
// download), plus small UI helpers shared by the browser tests.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after } from 'node:test';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.STUDYON_CHROMIUM || '/usr/bin/chromium';

/** Default bound for every single wait in the UI (ms). */
export const STEP_TIMEOUT_MS = 15_000;

export async function launchBrowser({ extraArgs = [] } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install chromium, or set STUDYON_CHROMIUM).`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 60_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      ...extraArgs,
    ],
  });
}

/**
 * Chromium for WebRTC tests: a fake camera (test pattern) and microphone (beeps), granted
 * without a prompt; peer connections may use loopback addresses and show real host
 * candidates instead of mDNS names, so media flows to the server on 127.0.0.1.
 */
export const MEDIA_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

export async function launchMediaBrowser() {
  return launchBrowser({ extraArgs: MEDIA_ARGS });
}

/**
 * A fresh context (own cookies and localStorage) and page for `server`.
 * Requests to anything but the test server are aborted.
 */
export async function newPage(browser, server, { locale = 'en-US' } = {}) {
  const context = await browser.newContext({ baseURL: server.url, locale });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const origin = new URL(server.url).origin;
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + '/') || url.startsWith('data:')) return route.continue();
    return route.abort();
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error('[page error]', err));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspViolations.push(`${page.url()}: ${msg.text()}`);
  });
  return { context, page };
}

/** Content-Security-Policy violations any page reported (the server's policy is strict). */
const cspViolations = [];

// Every test file that opens pages fails if one of them broke the page policy.
after(() => {
  if (cspViolations.length > 0) throw new Error(`CSP violations:\n${cspViolations.join('\n')}`);
});

/** A login id that is valid for the server (3–32 of [a-z0-9_]) and unique. */
export function randomLoginId(prefix = 'u') {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Wait until the path of the page is `pathname`. */
export async function waitForPath(page, pathname, timeout = STEP_TIMEOUT_MS) {
  await page.waitForURL((url) => url.pathname === pathname, { timeout });
}

export async function connState(page) {
  return page.getAttribute('[data-testid="conn-state"]', 'data-state');
}

/** Wait until the connection indicator shows `state`. */
export async function waitForConnState(page, state, timeout = STEP_TIMEOUT_MS) {
  await page.waitForSelector(`[data-testid="conn-state"][data-state="${state}"]`, { timeout });
}

/**
 * Record every value the indicator's data-state takes (in the page, so no
 * transient state is missed) into `window.__connStates`.
 */
export async function recordConnStates(page) {
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.__connStates = [];
    const seen = () => {
      const el = document.querySelector('[data-testid="conn-state"]');
      const s = el && el.getAttribute('data-state');
      if (s && w.__connStates[w.__connStates.length - 1] !== s) w.__connStates.push(s);
    };
    seen();
    new MutationObserver(seen).observe(document.body, {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: ['data-state'],
    });
  });
}

export async function recordedConnStates(page) {
  return page.evaluate(() => /** @type {any} */ (window).__connStates ?? []);
}
