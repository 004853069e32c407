// Test 4: studies end to end with two users, against the real server.
// The leader creates a study through the form and keeps its page open; an
// applicant applies; the application shows up live in the leader's applicant
// panel; the leader accepts; the applicant sees the notification live (unread
// count + toast) and finds the study under "joined" in /me/studies. Also the
// list page: title search and tag filter.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { launchBrowser, newPage, randomLoginId, waitForPath } from './browser.mjs';
import { startServer } from './server.mjs';
import { isoDay, waitUntil } from './api.mjs';

// Expected English texts (source of truth: src/i18n.ts).
const EN = {
  studies: 'Studies',
  myStudies: 'My studies',
  newStudy: 'New study',
  create: 'Create study',
  search: 'Search titles',
  tagFilter: 'Filter by tags',
  applyMessage: 'Message to the leader',
  apply: 'Apply',
  accept: 'Accept',
  pendingState: 'Your application: Pending',
  noReviews: 'No reviews yet',
  capacityError: 'Capacity must be 2–100 members, including the leader.',
  accepted: (study) => `You were accepted into “${study}”.`,
  received: (name, study) => `${name} applied to “${study}”.`,
};

/** Live frames the leader would need to wait for (generous; all bounded). */
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
  await page.getByLabel('Login ID', { exact: true }).fill(randomLoginId('s'));
  await page.getByLabel('Display name', { exact: true }).fill(displayName);
  await page.getByLabel('Password', { exact: true }).fill('correct horse battery staple');
  await page.getByRole('button', { name: 'Sign up', exact: true }).click();
  await waitForPath(page, '/');
}

/** Record the JSON frames the page sends and receives on its live socket. */
function recordFrames(page) {
  const frames = { sent: [], received: [] };
  page.on('websocket', (ws) => {
    const parse = (payload) => {
      try {
        return JSON.parse(typeof payload === 'string' ? payload : payload.toString());
      } catch {
        return null;
      }
    };
    ws.on('framesent', (f) => frames.sent.push(parse(f.payload)));
    ws.on('framereceived', (f) => frames.received.push(parse(f.payload)));
  });
  return frames;
}

test('create, search, apply, accept live, notifications', { timeout: 240_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const word = `zebra${suffix}`;
  const title = `Rust ${word} reading group`;
  const tag = `tag${suffix}`;
  const leaderName = `Leader ${suffix}`;
  const applicantName = `Applicant ${suffix}`;
  const message = `Hi, I would like to join (${suffix}).`;

  // ---- leader: sign up, create a study through the form ----
  const { context: leaderCtx, page: leader } = await newPage(browser, server);
  const leaderFrames = recordFrames(leader);
  await signUp(leader, leaderName);
  await leader.getByRole('link', { name: EN.studies, exact: true }).click();
  await waitForPath(leader, '/studies');
  await leader.getByRole('link', { name: EN.newStudy, exact: true }).click();
  await waitForPath(leader, '/studies/new');

  await leader.getByLabel('Title', { exact: true }).fill(title);
  await leader.getByLabel('Description', { exact: true }).fill('# Plan\n\nRead **one chapter** a week.');
  const tagsInput = leader.getByLabel('Tags', { exact: true });
  await tagsInput.fill('rust');
  await tagsInput.press('Enter');
  await tagsInput.fill(`${tag},`);
  await leader.getByTestId('chip').filter({ hasText: tag }).waitFor();
  assert.equal(await leader.getByTestId('chip').count(), 2);
  // Capacity 1 passes the client's checks; the server refuses it with field=capacity,
  // which is shown next to the field and in role=alert.
  await leader.getByLabel('Capacity', { exact: true }).fill('1');
  await leader.getByLabel('Recruitment opens', { exact: true }).fill(isoDay(0));
  await leader.getByLabel('Recruitment closes', { exact: true }).fill(isoDay(14));
  await leader.getByLabel('Study starts', { exact: true }).fill(isoDay(15));
  await leader.getByLabel('Study ends', { exact: true }).fill(isoDay(60));
  await leader.getByRole('button', { name: EN.create, exact: true }).click();
  await leader.getByTestId('field-error-capacity').waitFor();
  assert.equal((await leader.getByTestId('field-error-capacity').textContent()).trim(), EN.capacityError);
  await leader.getByRole('alert').filter({ hasText: EN.capacityError }).waitFor();
  assert.equal(await leader.getByLabel('Capacity', { exact: true }).getAttribute('aria-invalid'), 'true');
  assert.equal(new URL(leader.url()).pathname, '/studies/new');
  await leader.getByLabel('Capacity', { exact: true }).fill('5');
  await leader.getByRole('button', { name: EN.create, exact: true }).click();

  await leader.waitForURL((url) => /^\/studies\/\d+$/.test(url.pathname));
  const studyId = Number(new URL(leader.url()).pathname.split('/').pop());
  assert.equal((await leader.getByTestId('study-title').textContent()).trim(), title);
  assert.equal(await leader.getByTestId('study-detail').getAttribute('data-role'), 'leader');
  // description_html from the server is rendered as HTML.
  assert.equal((await leader.locator('[data-testid="description"] strong').textContent()).trim(), 'one chapter');
  // Bookmark toggle.
  const bookmark = leader.getByTestId('bookmark');
  assert.equal(await bookmark.getAttribute('aria-pressed'), 'false');
  await bookmark.click();
  await leader.locator('[data-testid="bookmark"][aria-pressed="true"]').waitFor();

  // A second study (through the API) that the search and tag filter must exclude.
  const other = await leader.evaluate(async (body) => {
    const res = await fetch('/api/studies', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }, {
    title: `Other study ${suffix}`,
    description: 'Not this one.',
    tags: ['rust'],
    capacity: 3,
    recruit_opens_on: isoDay(0),
    recruit_closes_on: isoDay(7),
    starts_on: isoDay(8),
    ends_on: isoDay(30),
  });
  assert.equal(other.status, 201, JSON.stringify(other.body));

  // ---- list page: title search and tag filter ----
  await leader.getByRole('link', { name: EN.studies, exact: true }).click();
  await waitForPath(leader, '/studies');
  const cards = leader.getByTestId('study-card');
  const ourCard = cards.filter({ hasText: title });
  const otherCard = cards.filter({ hasText: `Other study ${suffix}` });
  await ourCard.waitFor();
  await otherCard.waitFor();

  await leader.getByLabel(EN.search, { exact: true }).fill(word);
  await otherCard.waitFor({ state: 'detached' });
  await ourCard.waitFor();
  assert.equal(await cards.count(), 1);
  assert.match(await ourCard.getByTestId('member-count').textContent(), /^1\/5$/);
  assert.ok((await ourCard.textContent()).includes(leaderName), 'card shows the leader name');

  await leader.getByLabel(EN.search, { exact: true }).fill('');
  await otherCard.waitFor();
  const tagFilter = leader.getByLabel(EN.tagFilter, { exact: true });
  await tagFilter.fill(tag);
  await tagFilter.press('Enter');
  await otherCard.waitFor({ state: 'detached' });
  await ourCard.waitFor();
  assert.equal(await cards.count(), 1);

  // ---- leader keeps the study page open from here on (no reload) ----
  await ourCard.getByRole('link', { name: title }).click();
  await waitForPath(leader, `/studies/${studyId}`);
  await leader.getByTestId('applicant-panel').waitFor();
  // The page subscribes to the study over the live socket.
  await waitUntil('study.watch to be sent', async () =>
    leaderFrames.sent.some((f) => f?.type === 'study.watch' && f.study_id === studyId),
  );
  await waitUntil(
    'the study.watch to be acknowledged',
    async () => leaderFrames.received.some((f) => f?.type === 'ack'),
  );
  assert.ok(
    !leaderFrames.received.some((f) => f?.type === 'error'),
    `no error frames: ${JSON.stringify(leaderFrames.received.filter((f) => f?.type === 'error'))}`,
  );
  const leaderUnreadBefore = Number(await leader.getByTestId('unread-count').textContent());
  const leaderNavigations = [];
  leader.on('framenavigated', (f) => f === leader.mainFrame() && leaderNavigations.push(f.url()));

  // ---- applicant: sign up and apply ----
  const { context: applicantCtx, page: applicant } = await newPage(browser, server);
  await signUp(applicant, applicantName);
  assert.equal((await applicant.getByTestId('unread-count').textContent()).trim(), '0');
  await applicant.goto(`/studies/${studyId}`);
  assert.equal(await applicant.getByTestId('study-detail').getAttribute('data-role'), 'none');
  await applicant.getByLabel(EN.applyMessage, { exact: true }).fill(message);
  await applicant.getByRole('button', { name: EN.apply, exact: true }).click();
  await applicant.locator('[data-testid="my-application"][data-status="pending"]').waitFor();
  assert.equal((await applicant.getByTestId('my-application').textContent()).trim(), EN.pendingState);
  const applicantNavigations = [];
  applicant.on('framenavigated', (f) => f === applicant.mainFrame() && applicantNavigations.push(f.url()));

  // ---- leader: the application appears live ----
  const application = leader.getByTestId('application').filter({ hasText: applicantName });
  await application.waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.ok((await application.textContent()).includes(message), 'application shows the message');
  assert.ok((await application.textContent()).includes(EN.noReviews), 'application shows the review summary');
  // The leader was notified too (live unread count).
  await waitUntil(
    'the leader unread count to grow',
    async () => Number(await leader.getByTestId('unread-count').textContent()) > leaderUnreadBefore,
    LIVE_TIMEOUT_MS,
  );
  await leader.getByRole('status').filter({ hasText: EN.received(applicantName, title) }).first().waitFor();

  await application.getByRole('button', { name: EN.accept, exact: true }).click();
  await application.waitFor({ state: 'detached' });
  await leader.getByTestId('member').filter({ hasText: applicantName }).waitFor();
  assert.match(await leader.getByTestId('member-count').textContent(), /^2\/5$/);
  assert.deepEqual(leaderNavigations, [], 'the leader page was never reloaded');

  // ---- applicant: live notification (count + toast), then /me/studies ----
  await waitUntil(
    'the applicant unread count to reach 1',
    async () => Number(await applicant.getByTestId('unread-count').textContent()) >= 1,
    LIVE_TIMEOUT_MS,
  );
  await applicant.getByRole('status').filter({ hasText: EN.accepted(title) }).first().waitFor();
  // The applicant's study page follows along (it watches the study too).
  await applicant.locator('[data-testid="study-detail"][data-role="member"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.deepEqual(applicantNavigations, [], 'the applicant page was never reloaded');

  await applicant.getByRole('link', { name: EN.myStudies, exact: true }).click();
  await waitForPath(applicant, '/me/studies');
  await applicant.getByTestId('joined').getByRole('link', { name: title }).waitFor();
  await applicant
    .locator('[data-testid="my-applications"] [data-testid="my-application"][data-status="accepted"]')
    .filter({ hasText: title })
    .waitFor();
  assert.equal(await applicant.getByTestId('leading').getByRole('link', { name: title }).count(), 0);

  await applicantCtx.close();
  await leaderCtx.close();
});
