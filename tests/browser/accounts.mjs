// A new person, the way they would go: create an account, confirm the address with the
// link from the mail, open a page of the app behind the gateway, get sent to sign in, come
// back to that page signed in, sign out. Then the forgotten password: ask for a reset
// link, choose a new password, see the old session end and the new password work.

import { env, main, newPage, look, expectText, check, mailedLink, text } from './lib.mjs';

const BASE = env('BASE');
const OUTBOX = env('OUTBOX');
const APP = env('APP_PAGE');
const stamp = Date.now().toString(36);
const EMAIL = `newcomer-${stamp}@example.com`;
const PASSWORD = 'a long passphrase for tests';
const NEW_PASSWORD = 'another long passphrase';

async function signIn(page, email, password) {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
}

await main(async (browser) => {
  const page = await newPage(browser);

  // The app's page needs a session: the gateway sends the browser to sign in.
  await page.goto(BASE + APP);
  check(page.url().startsWith(`${BASE}/ui/login?rd=`), `not sent to sign in: ${page.url()}`);
  await look(page, 'login');

  // Sign up, from the sign-in page.
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.waitForLoadState();
  check(page.url().startsWith(`${BASE}/ui/signup`), page.url());
  await look(page, 'signup');
  await page.getByLabel('Email').fill(EMAIL);
  // Too short is stopped by the browser itself (minlength); too common by the server.
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  check(page.url().startsWith(`${BASE}/ui/signup`), 'a too-short password was sent');
  await page.getByLabel('Password').fill('password');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForLoadState();
  await expectText(page, 'one of the most common');
  await look(page, 'signup-error');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForLoadState();
  await expectText(page, 'Check your inbox');
  await expectText(page, EMAIL);
  await look(page, 'signup-sent');

  // Signing in before confirming is refused (the configuration asks for verification).
  await page.goto(`${BASE}/ui/login`);
  await signIn(page, EMAIL, PASSWORD);
  await expectText(page, 'Verify your email address first');
  await look(page, 'login-unverified');

  // The link from the mail.
  const verify = await mailedLink(OUTBOX, EMAIL, `${BASE}/ui/verify?token=`);
  await page.goto(verify);
  await look(page, 'verify');
  await page.getByRole('button', { name: 'Confirm my address' }).click();
  await page.waitForLoadState();
  await expectText(page, 'Address confirmed');
  await look(page, 'verify-done');
  // A link works once.
  await page.goto(verify);
  await page.getByRole('button', { name: 'Confirm my address' }).click();
  await page.waitForLoadState();
  await expectText(page, 'This link does not work');
  await look(page, 'link-invalid');

  // Back to the app's page: sign in, and land on that page, signed in.
  await page.goto(BASE + APP);
  check(page.url().includes('/ui/login?rd='), page.url());
  await signIn(page, EMAIL, 'wrong password here');
  await expectText(page, 'The email or password is incorrect');
  await look(page, 'login-error');
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  check(page.url() === BASE + APP, `not back at the app's page: ${page.url()}`);
  // Chromium shows a JSON answer in a <pre> (with its own viewer controls around it).
  const echo = JSON.parse(await page.evaluate(
    () => (document.querySelector('pre') || document.body).textContent));
  check(echo.headers['x-tollgate-email'][0] === EMAIL, JSON.stringify(echo.headers));
  check(echo.headers['x-tollgate-email-verified'][0] === 'true', 'the address shows as unverified');

  // The landing page, then sign out.
  await page.goto(`${BASE}/ui/`);
  await expectText(page, `You are signed in as ${EMAIL}`);
  await look(page, 'home');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForLoadState();
  await expectText(page, 'You are signed out');
  await look(page, 'signed-out');
  await page.goto(BASE + APP);
  check(page.url().includes('/ui/login'), `still signed in: ${page.url()}`);

  // GET /ui/logout asks first.
  await page.goto(`${BASE}/ui/login`);
  await signIn(page, EMAIL, PASSWORD);
  await page.goto(`${BASE}/ui/logout`);
  await expectText(page, 'Sign out?');
  await look(page, 'logout');
  await page.getByRole('link', { name: 'Cancel' }).click();
  await page.waitForLoadState();
  await expectText(page, `You are signed in as ${EMAIL}`);

  // Forgotten password, from another browser; the first keeps its session until the reset.
  const other = await newPage(browser);
  await other.goto(`${BASE}/ui/login`);
  await other.getByRole('link', { name: 'Forgot password?' }).click();
  await other.waitForLoadState();
  await look(other, 'forgot');
  await other.getByLabel('Email').fill(EMAIL);
  await other.getByRole('button', { name: 'Send the link' }).click();
  await other.waitForLoadState();
  await expectText(other, 'we sent it a link');
  await look(other, 'forgot-sent');
  const reset = await mailedLink(OUTBOX, EMAIL, `${BASE}/ui/reset?token=`);
  await other.goto(reset);
  await look(other, 'reset');
  await other.getByLabel('New password', { exact: true }).fill('password');
  await other.getByRole('button', { name: 'Set the new password' }).click();
  await other.waitForLoadState();
  await expectText(other, 'one of the most common');
  await look(other, 'reset-error');
  await other.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await other.getByRole('button', { name: 'Set the new password' }).click();
  await other.waitForLoadState();
  await expectText(other, 'Password changed');
  await look(other, 'reset-done');

  // The first browser's session is gone; the old password no longer works, the new one does.
  await page.goto(`${BASE}/ui/`);
  check(page.url().startsWith(`${BASE}/ui/login`), `the old session survived the reset: ${page.url()}`);
  await signIn(page, EMAIL, PASSWORD);
  await expectText(page, 'The email or password is incorrect');
  await signIn(page, EMAIL, NEW_PASSWORD);
  check(page.url() === `${BASE}/ui/`, page.url());
  check((await text(page)).includes(EMAIL), 'not signed in with the new password');
});
