// The admin console as an administrator uses it, and as anyone else finds it. The admin
// signs in (password, then the authenticator app's code), finds one user among 10,000 by
// the start of their address, disables them (their session stops working at the
// gateway), resets their second factors, reads both in the audit log, verifies the
// chain, registers an application and looks at roles and AI spend. A signed-in
// non-admin gets 403 on every console page, and on every console form posted from their
// own browser.

import { env, main, newPage, look, expectText, check, totp, text } from './lib.mjs';

const BASE = env('BASE');
const ADMIN = env('ADMIN_EMAIL');
const SECRET = env('ADMIN_TOTP_SECRET');
const SPENT = env('ADMIN_SPENT_CODE');
const PASSWORD = env('PASSWORD');
const TARGET = env('TARGET_EMAIL');
const TARGET_ID = env('TARGET_ID');
const TARGET_TOKEN = env('TARGET_TOKEN');
const PLAIN = env('PLAIN_EMAIL');
const APP = env('APP_PAGE');

async function signIn(page, email, secret) {
  await page.goto(`${BASE}/ui/admin/users`);
  check(page.url().startsWith(`${BASE}/ui/login?rd=`), `not sent to sign in: ${page.url()}`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  if (secret) {
    // A later code than the one the enrolment spent (codes are single use).
    let code = totp(secret);
    while (code === SPENT) {
      await new Promise((r) => setTimeout(r, 500));
      code = totp(secret);
    }
    await page.getByLabel('Code').fill(code);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForLoadState();
  }
}

async function statusWith(path, token) {
  const r = await fetch(BASE + path, { headers: { authorization: `Bearer ${token}` }, redirect: 'manual' });
  return r.status;
}

const PAGES = ['/ui/admin/users', `/ui/admin/users/${TARGET_ID}`, '/ui/admin/roles', '/ui/admin/clients',
  '/ui/admin/clients/anything', '/ui/admin/audit', '/ui/admin/spend', '/ui/admin/spend.csv'];
const FORMS = ['/ui/admin/users', ...['disable', 'enable', 'unlock', 'reset-password', 'reset-factors',
  'revoke-sessions', 'revoke-session', 'revoke-key', 'grant-role', 'revoke-role', 'delete']
  .map((a) => `/ui/admin/users/${TARGET_ID}/${a}`),
'/ui/admin/clients', '/ui/admin/clients/anything', '/ui/admin/clients/anything/secret',
'/ui/admin/clients/anything/delete', '/ui/admin/audit/verify'];

await main(async (browser) => {
  // Someone who is not an administrator.
  const plain = await newPage(browser);
  await signIn(plain, PLAIN);
  check(plain.url() === `${BASE}/ui/admin/users`, `not back at the console: ${plain.url()}`);
  await expectText(plain, 'The console is for administrators');
  await look(plain, 'console-forbidden');
  for (const path of PAGES) {
    const r = await plain.goto(BASE + path);
    check(r.status() === 403, `${path}: ${r.status()} for a non-admin`);
  }
  // Their own page gives them a valid form token; each console form, posted by their
  // browser with it, is refused all the same.
  await plain.goto(`${BASE}/ui/account`);
  for (const path of FORMS) {
    const [response] = await Promise.all([
      plain.waitForNavigation(),
      plain.evaluate(({ path, email }) => {
        const token = document.querySelector('input[name=csrf_token]').value;
        const form = document.createElement('form');
        form.method = 'post';
        form.action = path;
        for (const [name, value] of [['csrf_token', token], ['confirm', 'yes'], ['role', 'admin'],
          ['email', email], ['name', 'x'], ['id', 'x']]) {
          const input = document.createElement('input');
          input.type = 'hidden';
          input.name = name;
          input.value = value;
          form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
      }, { path, email: `x-${Date.now()}@example.com` }),
    ]);
    check(response.status() === 403, `${path}: ${response.status()} for a non-admin's form`);
    await plain.goto(`${BASE}/ui/account`);
  }
  check(await statusWith(APP, TARGET_TOKEN) === 200, 'a non-admin changed the target');

  // The administrator.
  const page = await newPage(browser);
  await signIn(page, ADMIN, SECRET);
  check(page.url() === `${BASE}/ui/admin/users`, `not on the console: ${page.url()}`);
  await expectText(page, 'Next page');
  await look(page, 'console-users');

  // One among 10,000, by the start of the address.
  await page.getByLabel('Email starts with').fill(TARGET.slice(0, 14).toUpperCase());
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForLoadState();
  check(await page.locator('#users tbody tr').count() === 1, `not one match: ${await text(page)}`);
  await look(page, 'console-users-found');
  await page.getByRole('link', { name: TARGET }).click();
  await page.waitForLoadState();
  check(page.url() === `${BASE}/ui/admin/users/${TARGET_ID}`, `not on the user's page: ${page.url()}`);
  await expectText(page, 'Authenticator app: yes');
  await look(page, 'console-user');

  // Disabled: their session dies at once.
  await page.getByRole('button', { name: 'Disable' }).click();
  await page.waitForLoadState();
  await expectText(page, 'The user is disabled and signed out everywhere.');
  const disabledAt = Date.now();
  let status = await statusWith(APP, TARGET_TOKEN);
  while (status !== 401 && Date.now() - disabledAt < 1000) {
    await new Promise((r) => setTimeout(r, 50));
    status = await statusWith(APP, TARGET_TOKEN);
  }
  check(status === 401, `the disabled user's token still works (${status})`);
  check((await page.locator('#user-state').innerText()).includes('disabled'), 'not shown as disabled');

  await page.getByRole('button', { name: 'Reset second factors' }).click();
  await page.waitForLoadState();
  await expectText(page, 'Every second factor is removed');
  await expectText(page, 'Authenticator app: no');
  await look(page, 'console-user-changed');

  // Both in the audit log, with the admin as actor; then the chain is verified.
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.waitForLoadState();
  await page.getByLabel('Subject').fill(TARGET);
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForLoadState();
  const log = await page.locator('#audit').innerText();
  check(log.includes('user.disabled') && log.includes('mfa.reset'), `entries missing: ${log}`);
  for (const event of ['user.disabled', 'mfa.reset']) {
    const row = log.split('\n').find((l) => l.includes(event));
    check(row.includes(`admin: ${ADMIN}`) && row.includes(TARGET), `not the admin on the target: ${row}`);
  }
  await look(page, 'console-audit');
  await page.getByRole('button', { name: 'Verify chain' }).click();
  await page.waitForLoadState();
  const verdict = await page.locator('#chain-result').innerText();
  check(verdict.includes('The log is intact'), `chain: ${verdict}`);
  await look(page, 'console-audit-verified');

  // Roles and their members; an application registered, its secret shown once.
  await page.getByRole('link', { name: 'Roles' }).click();
  await page.waitForLoadState();
  await expectText(page, ADMIN);
  await look(page, 'console-roles');
  await page.getByRole('link', { name: 'Applications' }).click();
  await page.waitForLoadState();
  await expectText(page, 'Self-registered agent');
  await expectText(page, 'public, registered itself');
  await page.getByLabel('Name').fill('Reporting');
  await page.getByLabel('Redirect URIs').fill('https://reports.example.com/callback');
  await page.getByRole('button', { name: 'Register an application' }).click();
  await page.waitForLoadState();
  const secret = (await page.locator('#client-secret').innerText()).trim();
  check(secret.length >= 32, `no secret shown: ${secret}`);
  await look(page, 'console-client-secret');
  await page.getByRole('link', { name: 'I have saved them' }).click();
  await page.waitForLoadState();
  await page.getByLabel('Redirect URIs').fill('https://reports.example.com/callback\nhttps://reports.example.com/again');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForLoadState();
  check((await page.getByLabel('Redirect URIs').inputValue()).includes('/again'), 'the edit was not kept');
  await look(page, 'console-client');

  // AI spend: the target's metered call, top spenders first, and the CSV.
  await page.getByRole('link', { name: 'AI spend' }).click();
  await page.waitForLoadState();
  await expectText(page, TARGET);
  check(await page.locator('svg.chart').count() === 1, 'no chart');
  await look(page, 'console-spend');
  const csv = await page.evaluate(async () => (await fetch(document.querySelector('#csv').href)).text());
  check(csv.startsWith('user,requests') && csv.includes(TARGET_ID), `CSV: ${csv}`);
  // Sorted the other way, per model.
  await page.getByLabel('Per', { exact: true }).selectOption('model');
  await page.getByLabel('Order').selectOption('group');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForLoadState();
  check((await page.locator('#spend caption').innerText()) === 'By user, model or day', 'not sorted by name');
  await expectText(page, 'openai · console-model');
});
