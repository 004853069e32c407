// Test 7: tasks, posts and attachments, against the real server. A leader and
// an accepted member (set up over HTTP from node; the session cookie is handed
// to each browser context) keep their pages open without reloads:
// - the leader creates a task on the study page's board (due date, the member
//   as assignee); the member's open board shows it live, also under "Assigned
//   to me"; completing and reopening travel live both ways;
// - the leader opens the task, writes a post whose body has a ```rust block
//   and attaches 200 KB of random bytes named `노트 notes.bin`: the upload's
//   progress bar reaches 100 % ("done"), the post shows highlighted code
//   (hl-* spans whose colour, from /api/highlight.css, differs from the text
//   colour) and the attachment, whose download is byte-for-byte the upload;
//   the member's open task page receives the post live;
// - a second test pages 45 posts by infinite scroll (no repeats, newest
//   first), searches titles (Korean, case-insensitive), shows upload errors
//   (empty file, wrong declared type) in words, refuses a file over the
//   server's limit on the client (no request is made for it), and removes an
//   attachment while editing;
// - a third test covers the recruiting post's files on the study page (the
//   leader uploads with a progress bar, the member's open page lists the file
//   live and downloads it byte-for-byte, an oversized file is refused without
//   a request, the picker stops at `attachments_per_post`, `/api/limits` is
//   read once per session), post counts on the board coming from
//   `task_updated` alone (no re-read of the task list), and deleting the study:
//   the member's open study and task pages show a notice and leave.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { launchBrowser, STEP_TIMEOUT_MS, waitForConnState, waitForPath } from './browser.mjs';
import { startServer } from './server.mjs';
import { api, isoDay, waitForCount, waitUntil } from './api.mjs';

const LIVE_TIMEOUT_MS = 20_000;

// Expected English texts (source of truth: src/i18n.ts).
const EN = {
  newTask: 'New task',
  taskTitle: 'Task title',
  taskDescription: 'Task description',
  due: 'Due date (optional)',
  assignee: 'Assignee (optional)',
  addTask: 'Add task',
  editTask: /^Edit/,
  saveTask: 'Save task',
  markDone: /^Mark done/,
  reopen: /^Reopen/,
  writePost: 'Write a post',
  postTitle: 'Title',
  postBody: 'Body',
  publish: 'Publish',
  editPost: 'Edit post',
  deletePost: 'Delete post',
  savePost: 'Save post',
  remove: /^Remove/,
  searchPosts: 'Search post titles',
  emptyFile: 'This file is empty.',
  tooLarge: 'This file is too large.',
  typeMismatch: 'The file’s contents do not match its type.',
  uploadsFailed: 'The post was saved, but some files were not uploaded. Remove them or try again.',
  retryUploads: 'Save and retry uploads',
  edited: '(edited)',
  uploadFiles: 'Upload files',
  attachToStudy: 'Attach files to the recruiting post',
  deleteStudy: 'Delete study',
  deleteStudyYes: 'Yes, delete the study',
  deletedSelf: (title) => `The study “${title}” was deleted.`,
  deletedByLeader: (title) => `The study “${title}” was deleted by its leader.`,
  full: (max) => `This post has ${max} files, as many as it can have. Remove one to attach another.`,
};

let server;
let browser;

// A small per-file limit, so `payload_too_large` can be shown without sending 50 MiB.
const UPLOAD_MAX_BYTES = 1024 * 1024;

before(async () => {
  server = await startServer({ env: { STUDYON_UPLOAD_MAX_BYTES: String(UPLOAD_MAX_BYTES) } });
  client = api(server);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

let client;
const call = (...args) => client.call(...args);
const signup = (displayName) => client.signup(displayName, 't');
const pageFor = (who) => client.pageFor(browser, who);

const studyWith = (leader, members, title) => client.studyWith(leader, members, title, 'Tasks and posts.');

/** Marks the page's window; `stillSamePage` is false once it was reloaded. */
async function markPage(page) {
  await page.evaluate(() => {
    /** @type {any} */ (window).__noReload = true;
  });
}
async function stillSamePage(page) {
  return page.evaluate(() => /** @type {any} */ (window).__noReload === true);
}

/** Record every (state, progress) an upload bar shows, in the page, so no step is missed. */
async function recordUploadProgress(page) {
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.__uploads = [];
    const seen = (el) => {
      const entry = { state: el.getAttribute('data-state'), progress: Number(el.getAttribute('data-progress')) };
      const last = w.__uploads[w.__uploads.length - 1];
      if (!last || last.state !== entry.state || last.progress !== entry.progress) w.__uploads.push(entry);
    };
    document.querySelectorAll('[data-testid="upload-progress"]').forEach(seen);
    new MutationObserver((records) => {
      for (const r of records) {
        const el = /** @type {Element} */ (r.target);
        if (el.getAttribute && el.getAttribute('data-testid') === 'upload-progress') seen(el);
      }
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-state', 'data-progress'] });
  });
}

test('task board live, post with highlighted code and an attachment that downloads byte-for-byte', { timeout: 240_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const leader = await signup(`Lead ${suffix}`);
  const member = await signup(`Mem ${suffix}`);
  const id = await studyWith(leader, [member], `Tasks ${suffix}`);

  // ---- the member keeps the study page open ----
  const { page: mp } = await pageFor(member);
  await mp.goto(`/studies/${id}`);
  await waitForConnState(mp, 'connected');
  const mBoard = mp.getByTestId('task-board');
  await mBoard.getByTestId('tasks-empty').waitFor();
  await markPage(mp);

  // ---- the leader creates a task through the board's form ----
  const { page: lp } = await pageFor(leader);
  await lp.goto(`/studies/${id}`);
  await waitForConnState(lp, 'connected');
  const lBoard = lp.getByTestId('task-board');
  await lBoard.getByRole('button', { name: EN.newTask, exact: true }).click();
  const form = lBoard.getByTestId('task-create');
  const taskTitle = `Chapter 3 summary ${suffix}`;
  const due = isoDay(7);
  await form.getByLabel(EN.taskTitle, { exact: true }).fill(taskTitle);
  await form.getByLabel(EN.taskDescription, { exact: true }).fill('Read chapter 3 and **summarise** it.');
  await form.getByLabel(EN.due, { exact: true }).fill(due);
  await form.getByLabel(EN.assignee, { exact: true }).selectOption({ label: `Mem ${suffix}` });
  await form.getByRole('button', { name: EN.addTask, exact: true }).click();
  const lTask = lBoard.getByTestId('task').filter({ hasText: taskTitle });
  await lTask.waitFor();
  assert.equal(await lTask.getByTestId('task-due').textContent(), due);
  assert.equal((await lTask.getByTestId('task-assignee').textContent())?.trim(), `Mem ${suffix}`);
  const taskId = Number(await lTask.getAttribute('data-task-id'));
  const stored = await call(leader.session, 'GET', `/api/studies/${id}/tasks/${taskId}`);
  assert.equal(stored.status, 200);
  assert.equal(stored.body.task.assignee.id, member.user.id);
  assert.equal(stored.body.task.due_on, due);

  // ---- the member's home page lists it under their open tasks, with the study ----
  {
    const { page: home } = await pageFor(member);
    await home.goto('/');
    const mine = home.getByTestId('my-task').filter({ hasText: taskTitle });
    await mine.waitFor();
    assert.match(await mine.textContent(), new RegExp(`Tasks ${suffix}`));
    assert.equal((await mine.getByTestId('my-task-due').textContent()).trim(), `Due ${due}`);
    await home.getByTestId('home-studies').getByText(`Tasks ${suffix}`).waitFor();
    // A task given to the member while home is open joins the list live (in another
    // study, so the boards this test watches are not touched).
    const other = await studyWith(leader, [member], `Snacks ${suffix}`);
    const extra = await call(leader.session, 'POST', `/api/studies/${other}/tasks`, { title: `Bring snacks ${suffix}`, assignee_id: member.user.id });
    assert.equal(extra.status, 201);
    const snacks = home.getByTestId('my-task').filter({ hasText: `Bring snacks ${suffix}` });
    await snacks.waitFor({ timeout: LIVE_TIMEOUT_MS });
    // Marking it done from home takes it off the list.
    await snacks.getByRole('button', { name: /^Mark done/ }).click();
    await snacks.waitFor({ state: 'detached' });
    const after = await call(member.session, 'GET', `/api/studies/${other}/tasks/${extra.body.task.id}`);
    assert.equal(after.body.task.status, 'done');
    await mine.getByRole('link', { name: taskTitle }).click();
    await waitForPath(home, `/studies/${id}/tasks/${taskId}`);
    // The notification about it opens the task too.
    await home.goto('/notifications');
    await home.getByTestId('notification').filter({ hasText: `assigned you “${taskTitle}”` }).getByRole('button', { name: /assigned you/ }).click();
    await waitForPath(home, `/studies/${id}/tasks/${taskId}`);
    await home.close();
  }

  // ---- the member is told they were given it ----
  await mp
    .getByRole('status')
    .filter({ hasText: `Lead ${suffix} assigned you “${taskTitle}” in “Tasks ${suffix}”.` })
    .first()
    .waitFor({ timeout: LIVE_TIMEOUT_MS });

  // ---- the member's open board receives it live, also under "Assigned to me" ----
  const mTask = mBoard.getByTestId('task').filter({ hasText: taskTitle });
  await mTask.waitFor({ timeout: LIVE_TIMEOUT_MS });
  await mp.getByTestId('task-filter-mine').click();
  await mBoard.locator(`[data-testid="task"][data-task-id="${taskId}"]`).waitFor();
  assert.equal(await mBoard.getByTestId('task').count(), 1);

  // Completing and reopening travel live, both ways.
  await lTask.getByRole('button', { name: EN.markDone }).click();
  await mBoard.locator(`[data-testid="task"][data-task-id="${taskId}"][data-status="done"]`).waitFor({ timeout: LIVE_TIMEOUT_MS });
  await mTask.getByRole('button', { name: EN.reopen }).click();
  await lBoard.locator(`[data-testid="task"][data-task-id="${taskId}"][data-status="open"]`).waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.ok(await stillSamePage(mp), 'the member page was never reloaded');
  // Deleting is for the task's creator and the leader: the member's card has no button for it.
  assert.equal(await mTask.getByRole('button', { name: /^Delete/ }).count(), 0);
  assert.equal(await lTask.getByRole('button', { name: /^Delete/ }).count(), 1);

  // ---- an edit sends only what the form changed: a change made meanwhile is kept ----
  await lTask.getByRole('button', { name: EN.editTask }).click();
  const editForm = lBoard.locator('form').filter({ has: lp.getByRole('button', { name: EN.saveTask, exact: true }) });
  await editForm.getByLabel(EN.taskTitle, { exact: true }).fill(`${taskTitle} (revised)`);
  // While the leader's form is open, the member rewrites the description.
  const meanwhile = await call(member.session, 'PATCH', `/api/studies/${id}/tasks/${taskId}`, { description: 'Summarise chapters 3 and 4.' });
  assert.equal(meanwhile.status, 200, JSON.stringify(meanwhile.body));
  await editForm.getByRole('button', { name: EN.saveTask, exact: true }).click();
  await lBoard.getByTestId('task').filter({ hasText: `${taskTitle} (revised)` }).waitFor();
  const merged = (await call(leader.session, 'GET', `/api/studies/${id}/tasks/${taskId}`)).body.task;
  assert.equal(merged.title, `${taskTitle} (revised)`);
  assert.equal(merged.description, 'Summarise chapters 3 and 4.', "the leader's form did not put back the old description");
  await mBoard.getByTestId('task').filter({ hasText: `${taskTitle} (revised)` }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  // The rest of the test follows the task under its first title.
  assert.equal((await call(leader.session, 'PATCH', `/api/studies/${id}/tasks/${taskId}`, { title: taskTitle })).status, 200);
  await mBoard.locator(`[data-testid="task"][data-task-id="${taskId}"]`).filter({ hasText: taskTitle }).filter({ hasNotText: '(revised)' }).waitFor({ timeout: LIVE_TIMEOUT_MS });

  // ---- the member opens the task and keeps it open ----
  await mTask.getByTestId('task-link').click();
  await waitForPath(mp, `/studies/${id}/tasks/${taskId}`);
  await mp.getByTestId('posts-empty').waitFor();

  // ---- the leader writes a post with a code block and an attachment ----
  await lTask.getByTestId('task-link').click();
  await waitForPath(lp, `/studies/${id}/tasks/${taskId}`);
  assert.equal(await lp.getByTestId('task-title').textContent(), taskTitle);
  await lp.getByRole('link', { name: EN.writePost, exact: true }).click();
  await waitForPath(lp, `/studies/${id}/tasks/${taskId}/posts/new`);

  const postTitle = `Notes on ownership ${suffix}`;
  const body = ['Here is my summary.', '', '![chart](https://tracker.example/pixel.png)', '', '```rust', 'fn main() {', '    let s = String::from("hello");', '    println!("{}", s.len());', '}', '```', ''].join('\n');
  await lp.getByLabel(EN.postTitle, { exact: true }).fill(postTitle);
  await lp.getByLabel(EN.postBody, { exact: true }).fill(body);
  const bytes = randomBytes(200 * 1024);
  const fileName = '노트 notes.bin';
  await lp.getByTestId('file-input').setInputFiles({ name: fileName, mimeType: 'application/octet-stream', buffer: bytes });
  await lp.locator(`[data-testid="upload"][data-state="queued"]`).filter({ hasText: fileName }).waitFor();
  await recordUploadProgress(lp);
  await lp.getByRole('button', { name: EN.publish, exact: true }).click();
  await waitUntil('the post page', async () => /^\/studies\/\d+\/posts\/\d+$/.test(new URL(lp.url()).pathname), LIVE_TIMEOUT_MS);
  const postId = Number(new URL(lp.url()).pathname.split('/').pop());

  // The progress bar went through "uploading" and reached 100 % / done, never going back.
  const progress = await lp.evaluate(() => /** @type {any} */ (window).__uploads);
  assert.ok(progress.some((p) => p.state === 'uploading'), `uploading was shown: ${JSON.stringify(progress)}`);
  const last = progress[progress.length - 1];
  assert.deepEqual(last, { state: 'done', progress: 100 }, `the bar ends at done/100: ${JSON.stringify(progress)}`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i].progress >= progress[i - 1].progress, 'progress never goes back');

  // ---- the post: title, author, highlighted code, attachment ----
  await lp.getByTestId('post-view').waitFor();
  assert.equal(await lp.getByTestId('post-title').textContent(), postTitle);
  assert.equal((await lp.getByTestId('post-author').textContent())?.trim(), `Lead ${suffix}`);
  await lp.locator('[data-testid="post-body"] pre.hl-code code span[class*="hl-"]').first().waitFor();
  // An image from another site is shown as a link to it, never loaded.
  assert.equal(await lp.locator('[data-testid="post-body"] img').count(), 0);
  assert.equal(await lp.locator('[data-testid="post-body"] a[href="https://tracker.example/pixel.png"]').textContent(), 'chart');
  const colours = await lp.evaluate(() => {
    const bodyEl = document.querySelector('[data-testid="post-body"]');
    const pre = bodyEl.querySelector('pre.hl-code');
    const spans = [...pre.querySelectorAll('span')].filter((s) => [...s.classList].some((c) => c.startsWith('hl-')));
    const sheet = [...document.styleSheets].find((s) => s.href && new URL(s.href).pathname === '/api/highlight.css');
    return {
      text: getComputedStyle(bodyEl).color,
      pre: getComputedStyle(pre).color,
      spans: spans.map((s) => ({ cls: s.className, color: getComputedStyle(s).color, text: s.textContent })),
      sheetRules: sheet ? sheet.cssRules.length : -1,
    };
  });
  assert.ok(colours.sheetRules > 0, `/api/highlight.css is loaded as a stylesheet (${colours.sheetRules} rules)`);
  assert.ok(colours.spans.length > 0, 'the code block has hl-* spans');
  assert.ok(
    colours.spans.some((s) => s.color !== colours.text),
    `some hl-* span has a colour other than the text colour ${colours.text}: ${JSON.stringify(colours.spans.slice(0, 8))}`,
  );
  assert.ok(
    colours.spans.some((s) => s.color !== colours.pre),
    `tokens are coloured, not just the block (${colours.pre}): ${JSON.stringify(colours.spans.slice(0, 8))}`,
  );
  assert.ok(await lp.getByRole('link', { name: EN.editPost, exact: true }).isVisible(), 'the author may edit');
  // Attaching a file does not count as an edit.
  assert.equal(await lp.getByTestId('post-edited').count(), 0, 'a new post with a file is not "(edited)"');

  const link = lp.getByTestId('attachment-link');
  assert.equal(await link.textContent(), fileName);
  assert.equal(await link.getAttribute('download'), fileName);
  assert.equal(await lp.getByTestId('attachment-size').textContent(), '200 KB');

  // ---- the download is the upload, byte for byte ----
  const [download] = await Promise.all([lp.waitForEvent('download'), link.click()]);
  assert.equal(download.suggestedFilename(), fileName);
  const downloaded = await readFile(await download.path());
  assert.equal(downloaded.length, bytes.length);
  assert.ok(downloaded.equals(bytes), 'downloaded bytes equal the uploaded bytes');
  // The same over fetch with the page's session, plus the stored checksum.
  const fetched = await lp.evaluate(async (url) => {
    const res = await fetch(url);
    const buf = await res.arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', buf);
    return {
      status: res.status,
      disposition: res.headers.get('Content-Disposition'),
      sha256: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join(''),
    };
  }, await link.getAttribute('href'));
  const sha = createHash('sha256').update(bytes).digest('hex');
  assert.equal(fetched.status, 200);
  assert.equal(fetched.sha256, sha);
  assert.match(fetched.disposition ?? '', /attachment/);
  const apiPost = await call(leader.session, 'GET', `/api/studies/${id}/posts/${postId}`);
  assert.equal(apiPost.body.post.attachments.length, 1);
  assert.equal(apiPost.body.post.attachments[0].sha256, sha);
  assert.equal(apiPost.body.post.attachments[0].name, fileName);

  // ---- the member's open task page received the post live ----
  const mPost = mp.locator(`[data-testid="post-item"][data-post-id="${postId}"]`);
  await mPost.waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.match((await mPost.textContent()) ?? '', new RegExp(postTitle));
  await mp.locator('[data-testid="task-post-count"]', { hasText: '1' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.ok(await stillSamePage(mp), 'the member page was never reloaded');
  // The member (not the author, not the leader) may read but neither edit nor delete.
  await mPost.getByRole('link', { name: postTitle }).click();
  await waitForPath(mp, `/studies/${id}/posts/${postId}`);
  await mp.locator('[data-testid="post-body"] pre.hl-code span[class*="hl-"]').first().waitFor();
  assert.equal(await mp.getByTestId('attachment-link').textContent(), fileName);
  assert.equal(await mp.getByRole('link', { name: EN.editPost, exact: true }).count(), 0);
  assert.equal(await mp.getByRole('button', { name: EN.deletePost, exact: true }).count(), 0);
});

test('post list pages by cursor without repeats, searches titles; upload errors; removing an attachment', { timeout: 240_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const leader = await signup(`Lead2 ${suffix}`);
  const id = await studyWith(leader, [], `Posts ${suffix}`);
  const task = await call(leader.session, 'POST', `/api/studies/${id}/tasks`, { title: `Many posts ${suffix}` });
  assert.equal(task.status, 201, JSON.stringify(task.body));
  const taskId = task.body.task.id;

  // 45 posts; every fifth has a Korean title.
  const ids = [];
  for (let i = 1; i <= 45; i++) {
    const title = i % 5 === 0 ? `한글 제목 ${i}` : `Note ${i}`;
    const res = await call(leader.session, 'POST', `/api/studies/${id}/tasks/${taskId}/posts`, { title, body: `Post ${i}` });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    ids.push(res.body.post.id);
  }

  const { page } = await pageFor(leader);
  await page.goto(`/studies/${id}/tasks/${taskId}`);
  const items = page.getByTestId('post-item');
  await waitForCount(items, 20, 'the first page');
  // Scrolling to the sentinel loads the next pages, until the cursor runs out.
  await waitUntil(
    'all 45 posts by infinite scroll',
    async () => {
      await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
      return (await items.count()) === 45;
    },
    LIVE_TIMEOUT_MS,
  );
  await page.getByRole('button', { name: 'Load more posts' }).waitFor({ state: 'detached' });
  const shown = await page.$$eval('[data-testid="post-item"]', (els) => els.map((el) => Number(el.getAttribute('data-post-id'))));
  assert.equal(new Set(shown).size, 45, 'no post is shown twice');
  assert.deepEqual(shown, [...ids].reverse(), 'newest first');

  // Title search: Korean, and case-insensitive.
  const search = page.getByLabel(EN.searchPosts, { exact: true });
  await search.fill('한글');
  await waitUntil('the Korean titles', async () => {
    const titles = await page.$$eval('[data-testid="post-item"] a', (els) => els.map((el) => el.textContent));
    return titles.length === 9 && titles.every((t) => t.startsWith('한글 제목'));
  });
  await search.fill('NOTE 1');
  const expected = ['Note 19', 'Note 18', 'Note 17', 'Note 16', 'Note 14', 'Note 13', 'Note 12', 'Note 11', 'Note 1'];
  let titles = [];
  await waitUntil(`${expected.join(', ')} (case-insensitive), got ${JSON.stringify(titles)}`, async () => {
    titles = await page.$$eval('[data-testid="post-item"] a', (els) => els.map((el) => el.textContent));
    return JSON.stringify(titles) === JSON.stringify(expected);
  });

  // ---- upload errors are explained; the post is kept ----
  const posted = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname.endsWith('/attachments')) posted.push(new URL(r.url()).searchParams.get('name'));
  });
  await page.goto(`/studies/${id}/tasks/${taskId}/posts/new`);
  await page.getByLabel(EN.postTitle, { exact: true }).fill('With files');
  await page.getByLabel(EN.postBody, { exact: true }).fill('Some files.');
  await page.getByTestId('file-input').setInputFiles([
    { name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0) },
    { name: 'not-a-picture.png', mimeType: 'image/png', buffer: Buffer.from('plain text, not a PNG at all\n'.repeat(20)) },
    { name: 'big.bin', mimeType: 'application/octet-stream', buffer: randomBytes(UPLOAD_MAX_BYTES + 512 * 1024) },
    { name: 'ok.txt', mimeType: 'text/plain', buffer: Buffer.from('hello, attachments\n') },
  ]);
  await page.getByRole('button', { name: EN.publish, exact: true }).click();
  const row = (name) => page.locator(`[data-testid="upload"][data-name="${name}"]`);
  await row('empty.txt').locator('[data-state="error"]').waitFor();
  assert.equal(await row('empty.txt').getByTestId('upload-error').textContent(), EN.emptyFile);
  await row('not-a-picture.png').locator('[data-state="error"]').waitFor();
  assert.equal(await row('not-a-picture.png').getByTestId('upload-error').textContent(), EN.typeMismatch);
  await row('big.bin').locator('[data-state="error"]').waitFor();
  assert.equal(await row('big.bin').getByTestId('upload-error').textContent(), EN.tooLarge);
  await row('ok.txt').locator('[data-state="done"]').waitFor();
  // The oversized file was refused in the browser: it was never sent.
  assert.deepEqual(posted.sort(), ['empty.txt', 'not-a-picture.png', 'ok.txt'], `attachment POSTs: ${JSON.stringify(posted)}`);
  await page.getByText(EN.uploadsFailed).waitFor();
  // Drop the failed files; saving again opens the post with the one good file.
  await row('empty.txt').getByRole('button', { name: EN.remove }).click();
  await row('not-a-picture.png').getByRole('button', { name: EN.remove }).click();
  await row('big.bin').getByRole('button', { name: EN.remove }).click();
  await page.getByRole('button', { name: EN.savePost, exact: true }).click();
  await waitUntil('the post page', async () => /^\/studies\/\d+\/posts\/\d+$/.test(new URL(page.url()).pathname));
  await page.getByTestId('post-view').waitFor();
  assert.equal(await page.getByTestId('attachment-link').textContent(), 'ok.txt');
  const postId = Number(new URL(page.url()).pathname.split('/').pop());

  // ---- editing: remove the attachment ----
  await page.getByRole('link', { name: EN.editPost, exact: true }).click();
  await waitForPath(page, `/studies/${id}/posts/${postId}/edit`);
  const att = page.getByTestId('attachment').filter({ hasText: 'ok.txt' });
  await att.getByRole('button', { name: EN.remove }).click();
  await att.waitFor({ state: 'detached' });
  await page.getByRole('button', { name: EN.savePost, exact: true }).click();
  await waitForPath(page, `/studies/${id}/posts/${postId}`);
  await page.getByTestId('post-view').waitFor();
  assert.equal(await page.getByTestId('attachment').count(), 0);
  const stored = await call(leader.session, 'GET', `/api/studies/${id}/posts/${postId}`);
  assert.equal(stored.body.post.attachments.length, 0);
});

/** A raw-body upload from node (as the browser client sends it). */
async function uploadRaw(session, path, name, buffer, type = 'text/plain') {
  const res = await fetch(`${server.url}${path}?name=${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: { Accept: 'application/json', Origin: server.url, Cookie: `studyon_session=${session}`, 'Content-Type': type },
    body: buffer,
    signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Every request a page makes, as `METHOD path?query`. */
function recordRequests(page) {
  const seen = [];
  page.on('request', (r) => {
    const url = new URL(r.url());
    seen.push({ method: r.method(), path: url.pathname, name: url.searchParams.get('name') });
  });
  return seen;
}

test('recruiting-post files, limits from the server, post counts from task_updated, deleting the study', { timeout: 240_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const leader = await signup(`Lead3 ${suffix}`);
  const member = await signup(`Mem3 ${suffix}`);
  const studyTitle = `Files ${suffix}`;
  const id = await studyWith(leader, [member], studyTitle);
  const task = await call(leader.session, 'POST', `/api/studies/${id}/tasks`, { title: `Read ${suffix}` });
  assert.equal(task.status, 201, JSON.stringify(task.body));
  const taskId = task.body.task.id;
  const limits = await call(leader.session, 'GET', '/api/limits');
  assert.equal(limits.status, 200);
  assert.equal(limits.body.upload_max_bytes, UPLOAD_MAX_BYTES, 'the server runs with the small test limit');
  const perPost = limits.body.attachments_per_post;
  assert.ok(perPost >= 3, `attachments_per_post is ${perPost}`);

  // ---- the member keeps the study page open, and a second tab on the task ----
  const { page: mp } = await pageFor(member);
  const mRequests = recordRequests(mp);
  await mp.goto(`/studies/${id}`);
  await waitForConnState(mp, 'connected');
  const mBoard = mp.getByTestId('task-board');
  await mBoard.locator(`[data-testid="task"][data-task-id="${taskId}"]`).waitFor();
  assert.equal(await mp.getByTestId('study-files').count(), 0, 'no files section for members while there are none');
  await markPage(mp);
  const { page: mtp } = await pageFor(member);
  await mtp.goto(`/studies/${id}/tasks/${taskId}`);
  await mtp.getByTestId('posts-empty').waitFor();

  // ---- the leader attaches a file to the recruiting post ----
  const { page: lp } = await pageFor(leader);
  const lRequests = recordRequests(lp);
  await lp.goto(`/studies/${id}`);
  await waitForConnState(lp, 'connected');
  const lFiles = lp.getByTestId('study-files');
  await lFiles.getByText('No files are attached to the recruiting post yet.').waitFor();
  // The hint carries the server's limits, not a built-in 50 MiB.
  await lFiles.getByTestId('upload-hint').getByText(`Up to ${perPost} files, 1 MB each.`, { exact: false }).waitFor();
  const bytes = randomBytes(300 * 1024);
  const fileName = '모집 안내 guide.bin';
  const input = lFiles.getByLabel(EN.attachToStudy, { exact: true });
  await input.setInputFiles({ name: fileName, mimeType: 'application/octet-stream', buffer: bytes });
  await lFiles.locator('[data-testid="upload"][data-state="queued"]').filter({ hasText: fileName }).waitFor();
  await recordUploadProgress(lp);
  await lFiles.getByRole('button', { name: EN.uploadFiles, exact: true }).click();
  const lLink = lFiles.getByTestId('attachment-link').filter({ hasText: fileName });
  await lLink.waitFor({ timeout: LIVE_TIMEOUT_MS });
  const progress = await lp.evaluate(() => /** @type {any} */ (window).__uploads);
  assert.ok(progress.some((p) => p.state === 'uploading'), `uploading was shown: ${JSON.stringify(progress)}`);
  await waitUntil('the bar at done/100', async () => {
    const p = await lp.evaluate(() => /** @type {any} */ (window).__uploads);
    return JSON.stringify(p[p.length - 1]) === JSON.stringify({ state: 'done', progress: 100 });
  });
  const final = await lp.evaluate(() => /** @type {any} */ (window).__uploads);
  for (let i = 1; i < final.length; i++) assert.ok(final[i].progress >= final[i - 1].progress, `progress never goes back: ${JSON.stringify(final)}`);
  const studyPosts = lRequests.filter((r) => r.method === 'POST' && r.path === `/api/studies/${id}/attachments`);
  assert.deepEqual(
    studyPosts.map((r) => r.name),
    [fileName],
    'one raw POST to the study attachments route, with the name in ?name=',
  );
  // The finished bar gives way to the file list.
  await lFiles.getByTestId('upload').waitFor({ state: 'detached' });

  // ---- the member's open page lists it live; the download is the upload ----
  const mFiles = mp.getByTestId('study-files');
  const mLink = mFiles.getByTestId('attachment-link').filter({ hasText: fileName });
  await mLink.waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.equal(await mFiles.getByTestId('file-input').count(), 0, 'members get no file picker');
  assert.equal(await mFiles.getByRole('button', { name: EN.remove }).count(), 0, 'members cannot remove the leader’s files');
  const [download] = await Promise.all([mp.waitForEvent('download'), mLink.click()]);
  assert.equal(download.suggestedFilename(), fileName);
  const downloaded = await readFile(await download.path());
  assert.ok(downloaded.equals(bytes), 'the member downloads the uploaded bytes');
  const studyNow = await call(member.session, 'GET', `/api/studies/${id}`);
  assert.equal(studyNow.body.study.attachments.length, 1);
  assert.equal(studyNow.body.study.attachments[0].sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.ok(await stillSamePage(mp), 'the member page was never reloaded');

  // ---- a file over upload_max_bytes is refused in the browser; no request is made for it ----
  const bigName = 'too-big.bin';
  await input.setInputFiles([
    { name: bigName, mimeType: 'application/octet-stream', buffer: randomBytes(UPLOAD_MAX_BYTES + 1) },
    { name: 'small.txt', mimeType: 'text/plain', buffer: Buffer.from('a small file\n') },
  ]);
  const bigRow = lFiles.locator(`[data-testid="upload"][data-name="${bigName}"]`);
  await bigRow.locator('[data-testid="upload-progress"][data-state="error"]').waitFor();
  assert.equal(await bigRow.getByTestId('upload-error').textContent(), EN.tooLarge, 'refused as soon as it is chosen');
  await lFiles.getByRole('button', { name: EN.uploadFiles, exact: true }).click();
  await lFiles.getByTestId('attachment-link').filter({ hasText: 'small.txt' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.equal(await bigRow.getByTestId('upload-error').textContent(), EN.tooLarge, 'still refused after pressing upload');
  assert.equal(
    lRequests.filter((r) => r.name === bigName).length,
    0,
    `no request for the oversized file: ${JSON.stringify(lRequests.filter((r) => r.method === 'POST'))}`,
  );
  assert.deepEqual(
    lRequests.filter((r) => r.method === 'POST' && r.path.endsWith('/attachments')).map((r) => r.name),
    [fileName, 'small.txt'],
  );
  await bigRow.getByRole('button', { name: EN.remove }).click();
  await bigRow.waitFor({ state: 'detached' });

  // ---- the picker stops at attachments_per_post ----
  for (let i = 2; i < perPost; i++) {
    const res = await uploadRaw(leader.session, `/api/studies/${id}/attachments`, `fill-${i}.txt`, Buffer.from(`file ${i}\n`));
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }
  // The leader's page re-reads on study_attachments_changed.
  await waitUntil(`${perPost} files listed`, async () => (await lFiles.getByTestId('attachment').count()) === perPost, LIVE_TIMEOUT_MS);
  await lFiles.getByTestId('upload-full').getByText(EN.full(perPost)).waitFor();
  assert.ok(await input.isDisabled(), 'no more files are offered');
  await lFiles.getByTestId('attachment').filter({ hasText: 'fill-2.txt' }).getByRole('button', { name: EN.remove }).click();
  await waitUntil('one file removed', async () => (await lFiles.getByTestId('attachment').count()) === perPost - 1, LIVE_TIMEOUT_MS);
  await lFiles.getByTestId('upload-full').waitFor({ state: 'detached' });
  assert.ok(await input.isEnabled(), 'a freed slot can be used again');
  await waitUntil('the member sees the removal live', async () => (await mFiles.getByTestId('attachment').count()) === perPost - 1, LIVE_TIMEOUT_MS);

  // ---- limits are read once per session: the post editor (reached in-app) reuses them ----
  await lp.getByTestId('task-board').locator(`[data-task-id="${taskId}"] [data-testid="task-link"]`).click();
  await waitForPath(lp, `/studies/${id}/tasks/${taskId}`);
  await lp.getByRole('link', { name: EN.writePost, exact: true }).click();
  await waitForPath(lp, `/studies/${id}/tasks/${taskId}/posts/new`);
  await lp.getByTestId('upload-hint').getByText(`Up to ${perPost} files, 1 MB each.`, { exact: false }).waitFor();
  await lp.getByRole('link', { name: 'Cancel', exact: true }).click();
  await waitForPath(lp, `/studies/${id}/tasks/${taskId}`);
  await lp.getByTestId('back-to-study').click();
  await waitForPath(lp, `/studies/${id}`);
  await lFiles.waitFor();
  const limitReads = lRequests.filter((r) => r.method === 'GET' && r.path === '/api/limits');
  assert.equal(limitReads.length, 1, `GET /api/limits was read ${limitReads.length} times`);

  // ---- post counts on the open board come from task_updated alone ----
  const taskReads = () => mRequests.filter((r) => r.method === 'GET' && r.path === `/api/studies/${id}/tasks`).length;
  const readsBefore = taskReads();
  const mCount = mBoard.locator(`[data-testid="task"][data-task-id="${taskId}"] [data-testid="task-post-count"]`);
  assert.equal(await mCount.textContent(), '0');
  const post = await call(leader.session, 'POST', `/api/studies/${id}/tasks/${taskId}/posts`, { title: 'Counted', body: 'One post.' });
  assert.equal(post.status, 201, JSON.stringify(post.body));
  await mBoard.locator(`[data-testid="task"][data-task-id="${taskId}"] [data-testid="task-post-count"]`, { hasText: '1' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  await mtp.locator('[data-testid="task-post-count"]', { hasText: '1' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  const removed = await call(leader.session, 'DELETE', `/api/studies/${id}/posts/${post.body.post.id}`);
  assert.equal(removed.status, 204);
  await mBoard.locator(`[data-testid="task"][data-task-id="${taskId}"] [data-testid="task-post-count"]`, { hasText: '0' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(taskReads(), readsBefore, 'the board did not re-read the task list for post events');

  // ---- the leader deletes the study; the member's open pages show a notice and leave ----
  const fileUrl = studyNow.body.study.attachments[0].url;
  await lp.getByRole('button', { name: EN.deleteStudy, exact: true }).click();
  await lp.getByTestId('delete-study-confirm').waitFor();
  assert.equal((await call(leader.session, 'GET', `/api/studies/${id}`)).status, 200, 'nothing is deleted before confirming');
  await lp.getByRole('button', { name: EN.deleteStudyYes, exact: true }).click();
  await waitForPath(lp, '/me/studies');
  assert.equal((await lp.getByTestId('flash').textContent())?.trim(), EN.deletedSelf(studyTitle));

  await waitForPath(mp, '/me/studies', LIVE_TIMEOUT_MS);
  assert.equal((await mp.getByTestId('flash').textContent())?.trim(), EN.deletedByLeader(studyTitle));
  assert.ok(await stillSamePage(mp), 'the member left without a reload');
  await waitForPath(mtp, '/me/studies', LIVE_TIMEOUT_MS);
  assert.equal((await mtp.getByTestId('flash').textContent())?.trim(), EN.deletedByLeader(studyTitle));
  // My studies no longer lists it.
  await mp.getByTestId('joined').waitFor();
  assert.equal(await mp.getByTestId('joined').getByText(studyTitle).count(), 0);
  // The study and its files are gone.
  assert.equal((await call(member.session, 'GET', `/api/studies/${id}`)).status, 404);
  const gone = await fetch(server.url + fileUrl, { headers: { Cookie: `studyon_session=${member.session}` }, signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
  await gone.arrayBuffer();
  assert.equal(gone.status, 404, 'the file is gone with the study');
  // The notice belongs to that one page: it is gone after navigating on.
  await mp.getByRole('link', { name: 'Studies', exact: true }).first().click();
  await waitForPath(mp, '/studies');
  assert.equal(await mp.getByTestId('flash').count(), 0);
});

test('a member who leaves gives back their open tasks, live on the leader\'s board', { timeout: 120_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const leader = await signup(`Lead ${suffix}`);
  const member = await signup(`Quits ${suffix}`);
  const id = await studyWith(leader, [member], `Leaving ${suffix}`);
  const open = await call(leader.session, 'POST', `/api/studies/${id}/tasks`, { title: `open ${suffix}`, assignee_id: member.user.id });
  const done = await call(leader.session, 'POST', `/api/studies/${id}/tasks`, { title: `done ${suffix}`, assignee_id: member.user.id, status: 'done' });
  assert.equal(open.status, 201, JSON.stringify(open.body));
  assert.equal(done.status, 201, JSON.stringify(done.body));

  const { page } = await pageFor(leader);
  await page.goto(`/studies/${id}`);
  await waitForConnState(page, 'connected');
  const board = page.getByTestId('task-board');
  const assignee = (task) => board.locator(`[data-testid="task"][data-task-id="${task.body.task.id}"]`).getByTestId('task-assignee');
  await waitUntil('the board shows both assignees', async () => (await assignee(open).textContent())?.trim() === `Quits ${suffix}`);
  await markPage(page);

  const left = await call(member.session, 'POST', `/api/studies/${id}/leave`, {});
  assert.equal(left.status, 204, JSON.stringify(left.body));
  await waitUntil('the open task is unassigned live', async () => (await assignee(open).textContent())?.trim() === 'Nobody', LIVE_TIMEOUT_MS);
  assert.equal((await assignee(done).textContent())?.trim(), `Quits ${suffix}`, 'a done task keeps who did it');
  assert.ok(await stillSamePage(page), 'the leader page was never reloaded');
});
