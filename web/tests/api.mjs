// Helpers the browser tests share for setting up over the HTTP API (node's fetch) and for
// waiting on the page: one place, so a change to signup or to the study form is made once.

import assert from 'node:assert/strict';
import { newPage, randomLoginId, STEP_TIMEOUT_MS } from './browser.mjs';

/** `YYYY-MM-DD`, `offsetDays` from today. */
export function isoDay(offsetDays) {
  return new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

/**
 * Polls `fn` until it returns something truthy; fails with `what` after `timeout`
 * (`what` may be a function, called then, to say what was seen last).
 */
export async function waitUntil(what, fn, timeout = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out after ${timeout} ms waiting for ${typeof what === 'function' ? what() : what}`);
}

/** Waits until `locator` matches exactly `n` elements; the failure names the last count seen. */
export async function waitForCount(locator, n, what) {
  let seen;
  await waitUntil(
    () => `${what} (${n} expected, ${seen} seen)`,
    async () => (seen = await locator.count()) === n,
  );
}

/** API calls against one running server, as signed-up users ({user, session}). */
export function api(server) {
  /** A JSON API call with a session cookie (state-changing calls need Origin). */
  async function call(session, method, path, body) {
    const headers = { Accept: 'application/json', Origin: server.url };
    if (session) headers.Cookie = `studyon_session=${session}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(server.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
  }

  async function signup(displayName, prefix = 'u') {
    const res = await call(null, 'POST', '/api/auth/signup', {
      login_id: randomLoginId(prefix),
      display_name: displayName,
      password: 'correct horse battery staple',
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('studyon_session='));
    assert.ok(cookie, 'signup sets the session cookie');
    return { user: res.body.user, session: cookie.split(';')[0].slice('studyon_session='.length) };
  }

  /** A study led by `leader` with `members` accepted into it; returns its id. */
  async function studyWith(leader, members, title, description = 'A study for tests.') {
    const created = await call(leader.session, 'POST', '/api/studies', {
      title,
      description,
      tags: ['test'],
      capacity: 5,
      recruit_opens_on: isoDay(0),
      recruit_closes_on: isoDay(10),
      starts_on: isoDay(11),
      ends_on: isoDay(40),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.study.id;
    for (const m of members) {
      const applied = await call(m.session, 'POST', `/api/studies/${id}/applications`, { message: 'hi' });
      assert.equal(applied.status, 201, JSON.stringify(applied.body));
      const decided = await call(
        leader.session,
        'POST',
        `/api/studies/${id}/applications/${applied.body.application.id}/decision`,
        { accept: true },
      );
      assert.ok(decided.status < 300, JSON.stringify(decided.body));
    }
    return id;
  }

  /** A browser page signed in as `who`. */
  async function pageFor(browser, who) {
    const { context, page } = await newPage(browser, server);
    await context.addCookies([{ name: 'studyon_session', value: who.session, url: server.url }]);
    return { context, page };
  }

  return { call, signup, studyWith, pageFor };
}
