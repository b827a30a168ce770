// Signing in to an account with an authenticator app, as a person does: open a page of
// the app behind the gateway, get sent to sign in, give the password, then the code the
// app shows (a wrong one first), and land on that page. The code is computed here from
// the secret the account was enrolled with (RFC 6238, as the app would).

import { env, main, newPage, look, expectText, check, totp } from './lib.mjs';

const BASE = env('BASE');
const APP = env('APP_PAGE');
const EMAIL = env('EMAIL');
const PASSWORD = env('PASSWORD');
const SECRET = env('TOTP_SECRET');
const SPENT = env('SPENT_CODE');

await main(async (browser) => {
  const page = await newPage(browser);
  await page.goto(BASE + APP);
  check(page.url().startsWith(`${BASE}/ui/login?rd=`), `not sent to sign in: ${page.url()}`);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();

  // The second step, not yet a session.
  await expectText(page, 'Second step');
  await look(page, 'mfa');
  const cookies = await page.context().cookies();
  check(!cookies.some((c) => c.name.includes('tg_at')), 'a session before the second step');

  await page.getByLabel('Code').fill('000000' === SPENT ? '111111' : '000000');
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForLoadState();
  await expectText(page, 'That code is wrong or was already used');
  await look(page, 'mfa-error');

  // The code the app shows now (a later step than the one the enrolment spent).
  let code = totp(SECRET);
  while (code === SPENT) {
    await new Promise((r) => setTimeout(r, 500));
    code = totp(SECRET);
  }
  await page.getByLabel('Code').fill(code);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForLoadState();
  check(page.url() === BASE + APP, `not back on the app's page: ${page.url()}`);
  await page.goto(`${BASE}/ui/`);
  await expectText(page, EMAIL);
});
