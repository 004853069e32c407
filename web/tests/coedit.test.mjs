// Co-editing a post's body, against the real server. Two members (A wrote the
// post, B did not) and the leader are set up over HTTP from node; each browser
// context gets its session cookie. Without reloads:
// - A and B open the post's edit page (B through "Edit the body together" on the
//   post page): the CodeMirror editor syncs over the app's one socket (binary
//   y-protocols frames beside the JSON ones); A types and B sees it, B types and
//   A sees it; each sees the other's remote caret with their name
//   (`.cm-ySelectionCaret` / `.cm-ySelectionInfo`) and both in the list of
//   editors; the server stores the text (`GET …/posts/{id}`) and the preview
//   (the server's `body_html`) follows it;
// - the history panel saves a named version, previews it, and restores it after
//   a confirmation: the restore reaches both editors live;
// - the leader locks the post: B's editor becomes read-only with a notice and
//   keystrokes change nothing, while the leader can still edit (B sees it);
//   unlocking makes B's editor writable again;
// - the leader removes B from the study: B's open editor page says so.
// Every page must respect the server's Content-Security-Policy (checked by
// browser.mjs): the remote carets are coloured through the CSSOM, not with
// inline style attributes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { launchBrowser, waitForPath } from './browser.mjs';
import { startServer } from './server.mjs';
import { api, waitUntil } from './api.mjs';

const LIVE_TIMEOUT_MS = 20_000;

// Expected English texts (source of truth: src/i18n.ts).
const EN = {
  coeditLink: 'Edit the body together',
  editPost: 'Edit post',
  saveVersion: 'Save version',
  versionName: 'Version name',
  preview: 'Preview',
  restore: 'Restore',
  restoreYes: 'Yes, restore',
  lock: 'Lock editing',
  unlock: 'Unlock editing',
  readOnly: 'The leader locked this post: you can read it but not edit it.',
  removed: /removed/i,
};

let server;
let browser;
let client;

before(async () => {
  server = await startServer();
  client = api(server);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const call = (...args) => client.call(...args);

/**
 * The text in a page's co-editor: CodeMirror's lines joined with newlines, without the
 * remote carets' widgets. (The editor lives in a shadow root, see src/coEditor.ts;
 * Playwright's locators pierce it, `querySelector` does not.)
 */
async function editorText(page) {
  return page.evaluate(() => {
    const host = document.querySelector('[data-testid="coedit-editor"] .cm-host');
    const root = host && host.shadowRoot;
    if (!root) return null;
    return [...root.querySelectorAll('.cm-content .cm-line')]
      .map((line) => {
        const copy = /** @type {Element} */ (line.cloneNode(true));
        copy.querySelectorAll('.cm-ySelectionCaret, .cm-widgetBuffer').forEach((el) => el.remove());
        return copy.textContent;
      })
      .join('\n');
  });
}

async function waitForText(page, what, pred, timeout = LIVE_TIMEOUT_MS) {
  let seen = '';
  await waitUntil(
    () => `${what} (editor shows ${JSON.stringify(seen)})`,
    async () => {
      seen = await editorText(page);
      return pred(seen);
    },
    timeout,
  );
  return seen;
}

/** Waits until the editor is writable and everything typed so far is stored. */
async function waitWritable(page) {
  await page.locator('[data-testid="coedit-editor"][data-readonly="false"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
}
async function waitSaved(page) {
  await page.locator('[data-testid="coedit-status"][data-state="saved"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
}

/** Types `text` at the end of the page's co-editor. */
async function typeAtEnd(page, text) {
  await page.locator('[data-testid="coedit-editor"] .cm-content').click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type(text);
}

/** The stored body, over HTTP. */
async function storedBody(who, studyId, postId) {
  const res = await call(who.session, 'GET', `/api/studies/${studyId}/posts/${postId}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.post.body;
}

test('two members co-edit a post body live, with cursors, versions, restore and the leader lock', { timeout: 240_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const leader = await client.signup(`Lead ${suffix}`, 'c');
  const a = await client.signup(`Ann ${suffix}`, 'c');
  const b = await client.signup(`Ben ${suffix}`, 'c');
  const studyId = await client.studyWith(leader, [a, b], `Co-edit ${suffix}`);
  const task = await call(leader.session, 'POST', `/api/studies/${studyId}/tasks`, { title: `Write notes ${suffix}` });
  assert.equal(task.status, 201, JSON.stringify(task.body));
  const created = await call(a.session, 'POST', `/api/studies/${studyId}/tasks/${task.body.task.id}/posts`, {
    title: `Shared notes ${suffix}`,
    body: 'Start.',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const postId = created.body.post.id;
  const editPath = `/studies/${studyId}/posts/${postId}/edit`;

  // ---- A (the author) opens the editor from the post page ----
  const { page: pa } = await client.pageFor(browser, a);
  // Every socket Ann's tab opens: a burst of typing must not cost a reconnect (close 4029).
  const annSockets = [];
  pa.on('websocket', (ws) => annSockets.push(ws.url()));
  await pa.goto(`/studies/${studyId}/posts/${postId}`);
  await pa.getByTestId('post-view').waitFor();
  await pa.getByRole('link', { name: EN.editPost, exact: true }).click();
  await waitForPath(pa, editPath);
  await waitWritable(pa);
  await waitSaved(pa);
  assert.equal(await editorText(pa), 'Start.');
  // The author keeps the title form (no body textarea: the body is co-edited).
  await pa.getByTestId('post-editor').waitFor();
  assert.equal(await pa.locator('#post-body').count(), 0, 'no plain body textarea when editing');

  // ---- B (a member, not the author) opens it through "Edit the body together" ----
  const { page: pb } = await client.pageFor(browser, b);
  await pb.goto(`/studies/${studyId}/posts/${postId}`);
  await pb.getByTestId('post-view').waitFor();
  assert.equal(await pb.getByRole('link', { name: EN.editPost, exact: true }).count(), 0, 'only the author has "Edit post"');
  await pb.getByRole('link', { name: EN.coeditLink, exact: true }).click();
  await waitForPath(pb, editPath);
  await waitWritable(pb);
  assert.equal(await pb.getByTestId('post-editor').count(), 0, 'the title form is the author’s');
  assert.equal(await pb.getByTestId('post-title').textContent(), `Shared notes ${suffix}`);
  assert.equal(await editorText(pb), 'Start.');
  await pa.evaluate(() => {
    /** @type {any} */ (window).__noReload = true;
  });
  await pb.evaluate(() => {
    /** @type {any} */ (window).__noReload = true;
  });

  // ---- A types, B sees it; B types, A sees it ----
  await typeAtEnd(pa, ' Hello from Ann.');
  await waitForText(pb, 'Ann’s text in Ben’s editor', (s) => s === 'Start. Hello from Ann.');
  await typeAtEnd(pb, '\nBen was here.');
  const both = 'Start. Hello from Ann.\nBen was here.';
  await waitForText(pa, 'Ben’s text in Ann’s editor', (s) => s === both);
  await waitSaved(pa);
  await waitSaved(pb);

  // ---- each sees the other's caret, named, and both in the list of editors ----
  const caretOf = (page, name) => page.locator('[data-testid="coedit-editor"] .cm-ySelectionCaret').filter({ has: page.locator('.cm-ySelectionInfo', { hasText: name }) });
  await caretOf(pa, `Ben ${suffix}`).waitFor({ timeout: LIVE_TIMEOUT_MS });
  await caretOf(pb, `Ann ${suffix}`).waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.equal(await pa.locator('.cm-ySelectionInfo').count(), 1, 'Ann sees one remote caret (her own is not drawn)');
  const caretColour = await caretOf(pa, `Ben ${suffix}`).evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.notEqual(caretColour, 'rgba(0, 0, 0, 0)', 'the caret has the user’s colour');
  for (const page of [pa, pb]) {
    const peers = page.getByTestId('coedit-peer');
    await waitUntil('two editors listed', async () => (await peers.count()) === 2);
  }
  await pb.getByTestId('coedit-peer').filter({ hasText: `Ann ${suffix}` }).waitFor();

  // ---- a burst of fast typing stays under the server's socket rate (updates are merged) ----
  const burst = ` ${'quick brown fox '.repeat(15).trim()}`;
  await typeAtEnd(pa, burst);
  await waitForText(pb, 'the burst at Ben', (s) => s === `${both}${burst}`);
  await waitSaved(pa);
  assert.equal(annSockets.length, 1, `Ann's tab kept its one socket: ${JSON.stringify(annSockets)}`);
  // Remove it again (Backspace is CodeMirror's, one character a key: select it with Shift instead).
  for (let i = 0; i < burst.length; i++) await pa.keyboard.press('Shift+ArrowLeft');
  await pa.keyboard.press('Backspace');
  await waitForText(pb, 'the burst gone at Ben', (s) => s === both);

  // ---- B loses the connection and keeps typing; both sides converge after the resync ----
  const { context: cb } = { context: pb.context() };
  await cb.setOffline(true);
  await pb.locator('[data-testid="coedit-status"][data-state="offline"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  await waitWritable(pb); // still editable: the edits go with the resync
  await typeAtEnd(pb, ' (offline)');
  await typeAtEnd(pa, ' Ann meanwhile.');
  await pb.waitForTimeout(300);
  assert.equal(await editorText(pa), `${both} Ann meanwhile.`, 'nothing of the offline edit reached Ann yet');
  await cb.setOffline(false);
  const merged = await waitForText(pa, 'the offline edit at Ann', (s) => s.includes('(offline)') && s.includes('Ann meanwhile.'));
  await waitForText(pb, 'the same text at Ben', (s) => s === merged);
  await waitSaved(pb);
  // Back to the text the rest of the test expects, by selecting all and retyping at Ann.
  await pa.locator('[data-testid="coedit-editor"] .cm-content').click();
  await pa.keyboard.press('Control+a');
  await pa.keyboard.type(both.split('\n')[0]);
  await pa.keyboard.press('Enter');
  await pa.keyboard.type(both.split('\n')[1]);
  await waitForText(pb, 'the retyped text at Ben', (s) => s === both);
  await waitSaved(pa);
  // B's caret is back at Ann after the reconnect.
  await pb.locator('[data-testid="coedit-editor"] .cm-content').click();
  await pb.keyboard.press('Control+End');
  await caretOf(pa, `Ben ${suffix}`).waitFor({ timeout: LIVE_TIMEOUT_MS });

  // ---- the server stored it, and the preview (server-rendered) follows ----
  await waitUntil('the stored body', async () => (await storedBody(a, studyId, postId)) === both, LIVE_TIMEOUT_MS);
  await pa.getByTestId('coedit-preview').getByText('Ben was here.').waitFor({ timeout: LIVE_TIMEOUT_MS });
  await pb.getByTestId('coedit-preview').getByText('Ben was here.').waitFor({ timeout: LIVE_TIMEOUT_MS });

  // ---- a named version, then more text, then restore the version ----
  const history = pa.getByTestId('history-panel');
  await history.getByLabel(EN.versionName, { exact: true }).fill('First draft');
  await history.getByRole('button', { name: EN.saveVersion, exact: true }).click();
  const draft = history.getByTestId('history-version').filter({ has: pa.getByTestId('history-version-name').getByText('First draft', { exact: true }) });
  await draft.waitFor({ timeout: LIVE_TIMEOUT_MS });
  const versions = await call(b.session, 'GET', `/api/studies/${studyId}/posts/${postId}/versions`);
  assert.equal(versions.status, 200);
  const named = versions.body.versions.find((v) => v.name === 'First draft');
  assert.ok(named, JSON.stringify(versions.body));
  assert.equal(named.chars, both.length);

  await typeAtEnd(pb, ' EXTRA');
  await waitForText(pa, 'the extra text at Ann', (s) => s.endsWith(' EXTRA'));
  await waitSaved(pb);
  await waitUntil('the extra text stored', async () => (await storedBody(a, studyId, postId)).endsWith(' EXTRA'), LIVE_TIMEOUT_MS);

  // The preview shows the version's text.
  await draft.getByRole('button', { name: EN.preview, exact: true }).click();
  const preview = pa.getByTestId('version-preview');
  await preview.getByText('Ben was here.').waitFor();
  assert.doesNotMatch(await preview.getByTestId('version-preview-body').textContent(), /EXTRA/);

  // Restoring asks first.
  await draft.getByRole('button', { name: EN.restore, exact: true }).click();
  assert.ok((await editorText(pa)).endsWith(' EXTRA'), 'nothing restored before the confirmation');
  await draft.getByRole('button', { name: EN.restoreYes, exact: true }).click();
  await waitForText(pa, 'the restored text at Ann', (s) => s === both);
  await waitForText(pb, 'the restored text at Ben', (s) => s === both);
  await waitUntil('the restored body stored', async () => (await storedBody(b, studyId, postId)) === both, LIVE_TIMEOUT_MS);

  // ---- the leader locks the post: B becomes read-only, the leader still writes ----
  const { page: pl } = await client.pageFor(browser, leader);
  await pl.goto(editPath);
  await waitWritable(pl);
  await waitForText(pl, 'the body at the leader', (s) => s === both);
  await pl.getByRole('button', { name: EN.lock, exact: true }).click();
  await pl.getByRole('button', { name: EN.unlock, exact: true }).waitFor();
  await pb.locator('[data-testid="coedit-editor"][data-readonly="true"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  await pb.getByTestId('coedit-readonly').getByText(EN.readOnly).waitFor();
  await pa.locator('[data-testid="coedit-editor"][data-readonly="true"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.equal(await pb.locator('[data-testid="coedit-editor"] .cm-content').getAttribute('contenteditable'), 'false');
  // Keystrokes change nothing.
  await pb.locator('[data-testid="coedit-editor"] .cm-content').click();
  await pb.keyboard.press('Control+End');
  await pb.keyboard.type('locked out');
  await pb.waitForTimeout(500);
  assert.equal(await editorText(pb), both, 'a read-only editor takes no typing');
  // Restoring is off for B as well.
  assert.ok(await pb.getByTestId('history-panel').getByRole('button', { name: EN.restore, exact: true }).first().isDisabled());
  // The leader may still edit; B sees it live.
  await typeAtEnd(pl, '\nLeader note.');
  await waitForText(pb, 'the leader’s text at Ben', (s) => s === `${both}\nLeader note.`);
  await waitSaved(pl);
  // The post page shows the lock.
  {
    const res = await call(b.session, 'GET', `/api/studies/${studyId}/posts/${postId}`);
    assert.equal(res.body.post.locked, true);
  }

  // ---- unlocking gives B the pen back ----
  await pl.getByRole('button', { name: EN.unlock, exact: true }).click();
  await waitWritable(pb);
  assert.equal(await pb.getByTestId('coedit-readonly').count(), 0);
  await typeAtEnd(pb, ' Back.');
  await waitForText(pl, 'Ben’s text after the unlock', (s) => s === `${both}\nLeader note. Back.`);
  await waitSaved(pb);
  assert.ok(await pa.evaluate(() => /** @type {any} */ (window).__noReload === true), 'Ann’s page was never reloaded');
  assert.equal(annSockets.length, 1, `Ann's tab never reconnected: ${JSON.stringify(annSockets)}`);
  assert.ok(await pb.evaluate(() => /** @type {any} */ (window).__noReload === true), 'Ben’s page was never reloaded');

  // ---- the leader removes B: B's open editor says so ----
  const removed = await call(leader.session, 'POST', `/api/studies/${studyId}/members/${b.user.id}/remove`, { ban: false });
  assert.ok(removed.status < 300, JSON.stringify(removed.body));
  await pb.getByRole('status').filter({ hasText: EN.removed }).first().waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.equal(await pb.getByTestId('coedit-editor').count(), 0, 'the editor is gone');
  // A's editor keeps working, and no longer lists B.
  await waitUntil('one editor left at Ann… plus the leader', async () => (await pa.getByTestId('coedit-peer').filter({ hasText: `Ben ${suffix}` }).count()) === 0, LIVE_TIMEOUT_MS);
});
