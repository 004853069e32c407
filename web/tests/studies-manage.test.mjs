// Test 5: managing a study, against the real server. Three users; every page
// that should update live stays open without reloads:
// - list page: tag filter + infinite scroll (sentinel) past the first page;
// - leader rejects one applicant with a reason (the applicant sees it live),
//   accepts another, changes the status (the member sees it live);
// - once the study is completed, the member reviews the leader (the leader's profile shows it);
// - the leader removes the member with a ban (the member's open page shows
//   the removal notice and falls back to role "none");
// - notifications page: localized items, mark one read, mark all read.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { launchBrowser, newPage, randomLoginId, waitForPath } from './browser.mjs';
import { startServer } from './server.mjs';
import { isoDay, waitForCount, waitUntil } from './api.mjs';

const LIVE_TIMEOUT_MS = 20_000;

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function signUp(page, displayName) {
  await page.goto('/signup');
  await page.getByLabel('Login ID', { exact: true }).fill(randomLoginId('m'));
  await page.getByLabel('Display name', { exact: true }).fill(displayName);
  await page.getByLabel('Password', { exact: true }).fill('correct horse battery staple');
  await page.getByRole('button', { name: 'Sign up', exact: true }).click();
  await waitForPath(page, '/');
  return page.evaluate(async () => (await (await fetch('/api/auth/me')).json()).user);
}

/** A JSON API call from inside the page (same origin, the page's cookies). */
async function api(page, method, url, body) {
  return page.evaluate(
    async ([method, url, body]) => {
      const res = await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    [method, url, body],
  );
}

function studyBody(title, tags) {
  return {
    title,
    description: `About ${title}.`,
    tags,
    capacity: 4,
    recruit_opens_on: isoDay(0),
    recruit_closes_on: isoDay(10),
    starts_on: isoDay(11),
    ends_on: isoDay(40),
  };
}

/**
 * Records the study list's page loads on `page`. `check()` fails when a load
 * used a cursor that no earlier answer to the same query handed out: a cursor
 * from another query (say, from before the filter changed) reads the new query
 * from the old position and appends items that are not its next page.
 */
function watchListCursors(page) {
  // In the order the browser saw them: a sent request or a received answer.
  const events = [];
  const isList = (r) => new URL(r.url()).pathname === '/api/studies' && r.method() === 'GET';
  const queryOf = (url) => {
    const u = new URL(url);
    u.searchParams.delete('cursor');
    u.searchParams.sort();
    return u.search;
  };
  page.on('request', (req) => {
    if (isList(req)) events.push({ sent: queryOf(req.url()), cursor: new URL(req.url()).searchParams.get('cursor') });
  });
  page.on('response', (res) => {
    if (isList(res.request())) events.push({ answered: queryOf(res.url()), body: res.json().catch(() => null) });
  });
  return {
    async check() {
      const issued = new Set();
      const strays = [];
      for (const e of events) {
        if (e.answered !== undefined) {
          const body = await e.body;
          if (body?.next_cursor) issued.add(`${e.answered} ${body.next_cursor}`);
        } else if (e.cursor && !issued.has(`${e.sent} ${e.cursor}`)) {
          strays.push(e.sent);
        }
      }
      assert.deepEqual(strays, [], 'page loads with a cursor no earlier answer to that query gave');
    },
  };
}

const unread = async (page) => Number((await page.getByTestId('unread-count').textContent()).trim());

test('manage a study: reject, accept, status, review, remove, notifications', { timeout: 240_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const title = `Managed ${suffix}`;
  const bulkTag = `bulk${suffix}`;

  const { context: ctxA, page: leader } = await newPage(browser, server);
  const { context: ctxB, page: member } = await newPage(browser, server);
  const { context: ctxC, page: rejected } = await newPage(browser, server);
  const leaderUser = await signUp(leader, `Lead ${suffix}`);
  await signUp(member, `Mem ${suffix}`);
  await signUp(rejected, `Rej ${suffix}`);

  // ---- infinite scroll: 23 studies with one tag; the first page has 20 ----
  for (let i = 0; i < 23; i++) {
    const r = await api(leader, 'POST', '/api/studies', studyBody(`Bulk ${suffix} #${i}`, [bulkTag]));
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  const cursors = watchListCursors(leader);
  await leader.goto('/studies');
  const tagFilter = leader.getByLabel('Filter by tags', { exact: true });
  await tagFilter.fill(bulkTag);
  await tagFilter.press('Enter');
  const cards = leader.getByTestId('study-card');
  await leader.getByTestId('study-card').filter({ hasText: `Bulk ${suffix} #22` }).waitFor();
  await waitForCount(cards, 20, 'the first page');
  await cards.nth(19).scrollIntoViewIfNeeded();
  await leader.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await waitForCount(cards, 23, 'the second page via the sentinel');
  await leader.getByTestId('study-card').filter({ hasText: `Bulk ${suffix} #0` }).waitFor();
  assert.equal(await leader.getByRole('button', { name: 'Load more', exact: true }).count(), 0);
  // The filter lives in the address, so a reload keeps it.
  assert.equal(new URL(leader.url()).searchParams.get('tag'), bulkTag);
  await leader.reload();
  await leader.getByTestId('chip').filter({ hasText: bulkTag }).waitFor();
  await waitForCount(cards, 20, 'the filtered first page after reload');
  await leader.getByRole('button', { name: 'Load more', exact: true }).waitFor();
  await cursors.check();

  // ---- the study under test; every page below stays open ----
  const created = await api(leader, 'POST', '/api/studies', studyBody(title, ['manage']));
  assert.equal(created.status, 201);
  const id = created.body.study.id;
  await leader.goto(`/studies/${id}`);
  await leader.getByTestId('applicant-panel').waitFor();

  await member.goto(`/studies/${id}`);
  await rejected.goto(`/studies/${id}`);
  for (const [page, msg] of [
    [member, 'Please take me'],
    [rejected, 'Me too'],
  ]) {
    await page.getByLabel('Message to the leader', { exact: true }).fill(msg);
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.locator('[data-testid="my-application"][data-status="pending"]').waitFor();
  }

  // Reject one with a reason; that applicant sees it live.
  const rejApp = leader.getByTestId('application').filter({ hasText: `Rej ${suffix}` });
  await rejApp.waitFor({ timeout: LIVE_TIMEOUT_MS });
  await rejApp.getByLabel(/^Reason/).fill('Full of beginners already');
  await rejApp.getByRole('button', { name: 'Reject', exact: true }).click();
  await rejApp.waitFor({ state: 'detached' });
  await rejected
    .getByRole('status')
    .filter({ hasText: `Your application to “${title}” was rejected: Full of beginners already` })
    .first()
    .waitFor({ timeout: LIVE_TIMEOUT_MS });
  await rejected.locator('[data-testid="my-application"][data-status="rejected"]').waitFor({ timeout: LIVE_TIMEOUT_MS });

  // Accept the other.
  const memApp = leader.getByTestId('application').filter({ hasText: `Mem ${suffix}` });
  await memApp.waitFor({ timeout: LIVE_TIMEOUT_MS });
  await memApp.getByRole('button', { name: 'Accept', exact: true }).click();
  await memApp.waitFor({ state: 'detached' });
  await member.locator('[data-testid="study-detail"][data-role="member"]').waitFor({ timeout: LIVE_TIMEOUT_MS });

  // Status change: the member's page follows, and the member is notified.
  await leader.getByRole('button', { name: 'Mark as In progress', exact: true }).click();
  await leader.locator('[data-testid="study-status"][data-status="in_progress"]').waitFor();
  await member.locator('[data-testid="study-status"][data-status="in_progress"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  await member.getByRole('status').filter({ hasText: `“${title}” is now In progress.` }).first().waitFor({ timeout: LIVE_TIMEOUT_MS });

  // Reviews open once the study is completed: the member is told so, then the leader
  // completes it and the member's page follows.
  await member.getByTestId('review-not-yet').waitFor();
  await leader.getByRole('button', { name: 'Mark as Completed', exact: true }).click();
  await member.locator('[data-testid="study-status"][data-status="completed"]').waitFor({ timeout: LIVE_TIMEOUT_MS });

  // The member reviews the leader; the leader gets a live notification.
  const leaderUnread = await unread(leader);
  await member.getByLabel('Member', { exact: true }).selectOption(String(leaderUser.id));
  await member.getByLabel('Rating', { exact: true }).selectOption('4');
  await member.getByLabel('Review', { exact: true }).fill('Clear plans, kind feedback.');
  await member.getByRole('button', { name: 'Post review', exact: true }).click();
  await member.getByRole('status').filter({ hasText: 'Your review was saved.' }).waitFor();
  await waitUntil('the leader unread count to grow', async () => (await unread(leader)) > leaderUnread, LIVE_TIMEOUT_MS);
  await leader.getByRole('status').filter({ hasText: `Mem ${suffix} reviewed you (4/5) in “${title}”.` }).first().waitFor();

  // The review is on the leader's profile (reached through the name link).
  await member.getByTestId('members').getByRole('link', { name: `Lead ${suffix}` }).click();
  await waitForPath(member, `/users/${leaderUser.id}`);
  await member.getByTestId('review').filter({ hasText: 'Clear plans, kind feedback.' }).waitFor();
  assert.match(await member.getByTestId('profile-rating').textContent(), /4\.0/);
  await member.goBack();
  await waitForPath(member, `/studies/${id}`);
  await member.locator('[data-testid="study-detail"][data-role="member"]').waitFor();

  // Remove the member with a ban: their open page shows the notice and role none.
  const row = leader.getByTestId('member').filter({ hasText: `Mem ${suffix}` });
  await row.getByLabel('Ban from re-applying', { exact: true }).check();
  await row.getByRole('button', { name: /^Remove/ }).click();
  await row.waitFor({ state: 'detached' });
  await member.getByRole('status').filter({ hasText: 'You were removed from this study.' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  await member.locator('[data-testid="study-detail"][data-role="none"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  await member
    .getByRole('status')
    .filter({ hasText: `You were removed from “${title}” and cannot apply again.` })
    .first()
    .waitFor({ timeout: LIVE_TIMEOUT_MS });

  // ---- notifications page (member): accepted, status, removed ----
  await waitUntil('the member unread count', async () => (await unread(member)) >= 3, LIVE_TIMEOUT_MS);
  await member.getByRole('link', { name: 'Notifications', exact: true }).click();
  await waitForPath(member, '/notifications');
  const items = member.getByTestId('notification');
  await items.filter({ hasText: `You were accepted into “${title}”.` }).waitFor();
  assert.ok((await items.count()) >= 3);
  const before = await unread(member);
  const first = member.locator('[data-testid="notification"][data-read="false"]').first();
  await first.getByRole('button', { name: 'Mark read', exact: true }).click();
  await waitUntil('one fewer unread', async () => (await unread(member)) === before - 1);
  await member.getByRole('button', { name: 'Mark all read', exact: true }).click();
  await waitUntil('no unread', async () => (await unread(member)) === 0);
  assert.equal(await member.locator('[data-testid="notification"][data-read="false"]').count(), 0);

  // The bell dropdown lists recent notifications and links to the page.
  await member.getByTestId('bell').click();
  await member.locator('#notif-menu').getByText(`You were removed from “${title}” and cannot apply again.`).waitFor();
  await member.keyboard.press('Escape');
  await member.locator('#notif-menu').waitFor({ state: 'detached' });

  // /me/studies: the member no longer has it under joined; the rejected user sees the reason.
  await member.getByRole('link', { name: 'My studies', exact: true }).click();
  await member.getByTestId('joined').waitFor();
  assert.equal(await member.getByTestId('joined').getByRole('link', { name: title }).count(), 0);
  await rejected.getByRole('link', { name: 'My studies', exact: true }).click();
  await rejected
    .locator('[data-testid="my-application"][data-status="rejected"]')
    .filter({ hasText: 'Full of beginners already' })
    .waitFor();

  await ctxC.close();
  await ctxB.close();
  await ctxA.close();
});

test('the study page watches again after a reconnect', { timeout: 120_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const { context: ctxA, page: leader } = await newPage(browser, server);
  const sent = [];
  leader.on('websocket', (ws) =>
    ws.on('framesent', (f) => {
      try {
        sent.push(JSON.parse(String(f.payload)));
      } catch {
        // not JSON
      }
    }),
  );
  await signUp(leader, `Lead2 ${suffix}`);
  const created = await api(leader, 'POST', '/api/studies', studyBody(`Reconnect ${suffix}`, []));
  assert.equal(created.status, 201);
  const id = created.body.study.id;
  await leader.goto(`/studies/${id}`);
  await leader.getByTestId('applicant-panel').waitFor();
  const watches = () => sent.filter((f) => f?.type === 'study.watch' && f.study_id === id).length;
  await waitUntil('the first study.watch', async () => watches() >= 1);
  const before = watches();

  await server.restart();
  await waitUntil('study.watch again after the reconnect', async () => watches() > before, 30_000);

  // Events still arrive: a new application shows up without a reload.
  const { context: ctxB, page: applicant } = await newPage(browser, server);
  await signUp(applicant, `App2 ${suffix}`);
  const applied = await api(applicant, 'POST', `/api/studies/${id}/applications`, { message: 'after restart' });
  assert.equal(applied.status, 201, JSON.stringify(applied.body));
  await leader.getByTestId('application').filter({ hasText: `App2 ${suffix}` }).waitFor({ timeout: LIVE_TIMEOUT_MS });

  await ctxB.close();
  await ctxA.close();
});
