// Test 3: Korean UI by default for a Korean browser, Korean display names,
// and the ko/en toggle (remembered across reloads).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, newPage, randomLoginId, waitForConnState, waitForPath } from './browser.mjs';
import { startServer } from './server.mjs';

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

test('Korean display name and language toggle', { timeout: 120_000 }, async () => {
  const { context, page } = await newPage(browser, server, { locale: 'ko-KR' });
  const displayName = '김철수';

  await page.goto('/signup');
  // navigator.language is ko-KR, so the UI starts in Korean.
  await page.getByRole('heading', { name: '계정 만들기' }).waitFor();
  assert.equal(await page.getAttribute('html', 'lang'), 'ko');

  await page.getByLabel('아이디', { exact: true }).fill(randomLoginId('ko'));
  await page.getByLabel('표시 이름', { exact: true }).fill(displayName);
  await page.getByLabel('비밀번호', { exact: true }).fill('비밀번호는열글자이상입니다');
  await page.getByRole('button', { name: '가입하기', exact: true }).click();

  await waitForPath(page, '/');
  assert.equal(await page.getByTestId('display-name').textContent(), displayName);
  assert.equal((await page.getByRole('heading', { level: 1 }).textContent()).trim(), '김철수님, 환영합니다');
  await waitForConnState(page, 'connected');
  assert.equal((await page.getByTestId('conn-state').textContent()).trim(), '연결됨');
  await page.getByRole('button', { name: '로그아웃' }).waitFor();

  // Switch to English.
  await page.getByTestId('lang-toggle').click();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
  assert.equal((await page.getByTestId('conn-state').textContent()).trim(), 'Connected');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  assert.equal(await page.getByTestId('display-name').textContent(), displayName);

  // The choice is remembered across a reload, over navigator.language.
  await page.reload();
  await waitForConnState(page, 'connected');
  await page.getByRole('button', { name: 'Log out' }).waitFor();
  assert.equal((await page.getByTestId('conn-state').textContent()).trim(), 'Connected');

  // And back to Korean.
  await page.getByTestId('lang-toggle').click();
  await page.getByRole('button', { name: '로그아웃' }).waitFor();

  // The study pages are localized too.
  await page.getByRole('link', { name: '스터디', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: '스터디' }).waitFor();
  await page.getByLabel('제목 검색', { exact: true }).waitFor();
  await page.getByRole('link', { name: '새 스터디', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: '새 스터디' }).waitFor();
  await page.getByLabel('모집 마감일', { exact: true }).waitFor();

  await context.close();
});
