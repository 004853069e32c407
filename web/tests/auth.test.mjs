// Test 1: sign up, log out, log in again, wrong password — against the real server.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, newPage, randomLoginId, waitForConnState, waitForPath } from './browser.mjs';
import { startServer } from './server.mjs';

// Expected English texts (source of truth: src/i18n.ts).
const EN = {
  signupLink: 'Create an account',
  signupSubmit: 'Sign up',
  loginSubmit: 'Log in',
  logout: 'Log out',
  invalidCredentials: 'Wrong login ID or password.',
  loginIdTaken: 'That login ID is already taken.',
  connected: 'Connected',
};

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

test('sign up, log out, log in, wrong password', { timeout: 120_000 }, async () => {
  const { context, page } = await newPage(browser, server, { locale: 'en-US' });
  const loginId = randomLoginId();
  const displayName = `Tester ${loginId.slice(-4)}`;
  const password = 'correct horse battery staple';

  // Not logged in: / redirects to /login.
  await page.goto('/');
  await waitForPath(page, '/login');

  // Sign up through the UI.
  await page.getByRole('link', { name: EN.signupLink }).click();
  await waitForPath(page, '/signup');
  await page.getByLabel('Login ID', { exact: true }).fill(loginId);
  await page.getByLabel('Display name', { exact: true }).fill(displayName);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: EN.signupSubmit, exact: true }).click();

  await waitForPath(page, '/');
  assert.equal(await page.getByTestId('display-name').textContent(), displayName);
  assert.match(await page.getByRole('heading', { level: 1 }).textContent(), /^Welcome, /);
  await waitForConnState(page, 'connected');
  assert.equal((await page.getByTestId('conn-state').textContent()).trim(), EN.connected);

  // Log out.
  await page.getByRole('button', { name: EN.logout }).click();
  await waitForPath(page, '/login');
  assert.equal(await page.getByTestId('conn-state').count(), 0);
  const meStatus = await page.evaluate(async () => (await fetch('/api/auth/me')).status);
  assert.equal(meStatus, 401, 'session must be gone after logout');

  // Log in again with the same credentials, keyboard only (Enter submits the form).
  await page.getByLabel('Login ID', { exact: true }).fill(loginId);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Password', { exact: true }).press('Enter');
  await waitForPath(page, '/');
  assert.equal(await page.getByTestId('display-name').textContent(), displayName);
  await waitForConnState(page, 'connected');

  // The same login id cannot be signed up twice.
  await page.getByRole('button', { name: EN.logout }).click();
  await waitForPath(page, '/login');
  await page.goto('/signup');
  await page.getByLabel('Login ID', { exact: true }).fill(loginId);
  await page.getByLabel('Display name', { exact: true }).fill(`${displayName} 2`);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: EN.signupSubmit, exact: true }).click();
  await page.getByRole('alert').filter({ hasText: EN.loginIdTaken }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/signup');

  // A wrong password shows the localized invalid_credentials text.
  await page.goto('/login');
  await page.getByLabel('Login ID', { exact: true }).fill(loginId);
  await page.getByLabel('Password', { exact: true }).fill(`${password} nope`);
  await page.getByRole('button', { name: EN.loginSubmit, exact: true }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.equal((await alert.textContent()).trim(), EN.invalidCredentials);
  assert.equal(new URL(page.url()).pathname, '/login');

  await context.close();
});
