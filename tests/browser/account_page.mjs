// The account page as its owner uses it: sign in, see this session and another one (a
// script's, signed in over the API), revoke the other and watch its token stop working
// at the gateway within a second; create an API key (shown once) and revoke it; read
// this month's AI usage after a metered call; ask for an email change; and delete the
// account, after which it cannot sign in.

import { env, main, newPage, look, expectText, check, mailedLink } from './lib.mjs';

const BASE = env('BASE');
const EMAIL = env('EMAIL');
const PASSWORD = env('PASSWORD');
const OTHER_TOKEN = env('OTHER_TOKEN');
const APP = env('APP_PAGE');
const MODEL = env('MODEL');
const OUTBOX = env('OUTBOX');

/// The status of a call to `path` with `token` (a script's request, not the browser's).
async function statusWith(path, token) {
  const r = await fetch(BASE + path, { headers: { authorization: `Bearer ${token}` }, redirect: 'manual' });
  return r.status;
}

await main(async (browser) => {
  const page = await newPage(browser);
  await page.goto(`${BASE}/ui/account`);
  check(page.url().startsWith(`${BASE}/ui/login?rd=`), `not sent to sign in: ${page.url()}`);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  check(page.url() === `${BASE}/ui/account`, `not on the account page: ${page.url()}`);
  await expectText(page, 'Where you are signed in');
  await look(page, 'account-overview');

  // Two sessions: this one (marked) and the script's.
  const rows = page.locator('#sessions tbody tr');
  check(await rows.count() === 2, `expected two sessions, found ${await rows.count()}`);
  check(await page.locator('#sessions tr[aria-current="true"]').count() === 1, 'this session is not marked');
  check(await statusWith(APP, OTHER_TOKEN) === 200, 'the other session does not work to begin with');
  await page.locator('#sessions tbody tr:not([aria-current]) button').click();
  await page.waitForLoadState();
  const revokedAt = Date.now();
  await expectText(page, 'That session is signed out.');
  let status = await statusWith(APP, OTHER_TOKEN);
  while (status !== 401 && Date.now() - revokedAt < 1000) {
    await new Promise((r) => setTimeout(r, 50));
    status = await statusWith(APP, OTHER_TOKEN);
  }
  check(status === 401, `the revoked session's token still works at the gateway (${status})`);
  check(await page.locator('#sessions tbody tr').count() === 1, 'the revoked session is still listed');
  await look(page, 'account-session-revoked');

  // An API key: a name, a scope the roles grant, a lifetime; shown once.
  await page.getByLabel('Name', { exact: true }).fill('deploy script');
  await page.getByLabel('docs:read').check();
  await page.getByLabel(/Lifetime in days/).fill('30');
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.waitForLoadState();
  await expectText(page, 'it is shown only this once');
  const key = (await page.locator('#new-key').innerText()).trim();
  check(key.startsWith('tg_'), `no key shown: ${key}`);
  await look(page, 'account-key-created');
  check(await statusWith('/auth/usage', key) === 200, 'the new key does not work');
  await page.getByRole('link', { name: 'I have saved them' }).click();
  await page.waitForLoadState();
  await expectText(page, 'deploy script');
  const keys = await page.locator('#keys').innerText();
  check(keys.includes('docs:read'), `the key's permission is not shown as such: ${keys}`);
  check(!(await page.content()).includes(key), 'the key is shown again');
  await page.getByRole('button', { name: 'Revoke the key deploy script' }).click();
  await page.waitForLoadState();
  await expectText(page, 'The key is revoked.');
  check(await statusWith('/auth/usage', key) === 401, 'the revoked key still works');

  // This month's AI usage, after the metered call the test made before.
  const spent = await page.locator('#usage-spent').innerText();
  check(/\$0\.\d*[1-9]/.test(spent) && spent.includes('of $5.00'), `no spend against the budget: ${spent}`);
  await expectText(page, MODEL);
  check(await page.locator('svg.chart rect.bar').count() >= 1, 'no daily chart');
  check((await page.locator('svg.chart').getAttribute('aria-label')) === 'Spend per day this month', 'the chart has no name');

  // An email change is confirmed from the new address.
  const newEmail = EMAIL.replace('@', '+new@');
  await page.getByLabel('New email address').fill(newEmail);
  await page.locator('#email-password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Change email' }).click();
  await page.waitForLoadState();
  await expectText(page, 'We sent a link to the new address');
  check((await mailedLink(OUTBOX, newEmail, BASE)).includes('/ui/confirm-email'), 'no confirmation link mailed');

  // A wrong current password is refused on the page, in words.
  await page.locator('#current-password').fill('not the password');
  await page.locator('#new-password').fill('a brand new passphrase');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.waitForLoadState();
  await expectText(page, 'The email or password is incorrect');
  await look(page, 'account-error');

  // Deleting the account: just signed in, so a confirmation is all it takes.
  await page.getByRole('link', { name: 'Delete my account' }).click();
  await page.waitForLoadState();
  check(page.url() === `${BASE}/ui/account/delete`, `not on the delete page: ${page.url()}`);
  await look(page, 'account-delete');
  await page.getByRole('button', { name: 'Delete my account' }).click();
  await page.waitForLoadState();
  await expectText(page, 'Your account is deleted');
  await look(page, 'account-deleted');
  const cookies = await page.context().cookies();
  check(!cookies.some((c) => c.name.includes('tg_at') && c.value), 'still holding a session cookie');
  await page.goto(`${BASE}/ui/login`);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  await expectText(page, 'The email or password is incorrect');
});
