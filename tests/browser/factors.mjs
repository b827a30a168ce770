// Second factors from the account page, as a person sets them up: sign in, open
// /ui/account, set up an authenticator app (reading the key off the page, as one types
// it into an app), keep the recovery codes; open a page of the app that needs a second
// factor and be sent to confirm it; add a passkey with Chromium's virtual authenticator
// (the DevTools protocol's WebAuthn domain); sign out, sign in with the password and the
// passkey as the second step, then with the passkey alone.

import { env, main, newPage, look, expectText, check, text, totp } from './lib.mjs';

const BASE = env('BASE');
const EMAIL = env('EMAIL');
const PASSWORD = env('PASSWORD');

await main(async (browser) => {
  const page = await newPage(browser);
  // A platform authenticator that verifies the person (as a laptop's fingerprint reader).
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  await page.goto(`${BASE}/ui/account`);
  check(page.url().startsWith(`${BASE}/ui/login`), `not sent to sign in: ${page.url()}`);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForLoadState();
  check(page.url() === `${BASE}/ui/account`, `not on the account page: ${page.url()} ${await text(page)}`);
  await expectText(page, 'No second factor yet');
  await look(page, 'account');

  // The authenticator app: QR code, key, first code.
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  await page.waitForLoadState();
  await expectText(page, 'Scan the QR code');
  check(await page.locator('.qr svg').count() === 1, 'no QR code');
  const secret = (await page.locator('#totp-secret').innerText()).trim();
  check(/^[A-Z2-7]{16,}$/.test(secret), `no key on the page: ${secret}`);
  await look(page, 'totp-setup');
  await page.getByLabel('Code from the app').fill('000000' === totp(secret) ? '111111' : '000000');
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.waitForLoadState();
  await expectText(page, 'That code is wrong or was already used');
  check((await page.locator('#totp-secret').innerText()).trim() === secret, 'the key changed');
  const first = totp(secret);
  await page.getByLabel('Code from the app').fill(first);
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.waitForLoadState();
  await expectText(page, 'Your recovery codes');
  const codes = await page.locator('#recovery-codes code').allInnerTexts();
  check(codes.length === 10, `expected 10 recovery codes, got ${codes.length}`);
  await look(page, 'recovery-codes');
  await page.getByRole('link', { name: 'I have saved them' }).click();
  await page.waitForLoadState();
  await expectText(page, 'An authenticator app is set up');
  await expectText(page, 'Recovery codes left: 10');

  // New recovery codes need a recent second factor: this session signed in with a
  // password only, so the step-up page asks for one and comes back.
  await page.getByRole('button', { name: 'New recovery codes' }).click();
  await page.waitForLoadState();
  check(page.url().startsWith(`${BASE}/ui/mfa?acr=2`), `not asked to step up: ${page.url()}`);
  await expectText(page, 'Confirm it is you');
  await look(page, 'step-up');
  await page.getByLabel('Code').fill(codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForLoadState();
  check(page.url() === `${BASE}/ui/account`, `not back on the account page: ${page.url()}`);
  await expectText(page, 'Recovery codes left: 9');

  // A page of the app that needs a second factor: this session now has one.
  await page.goto(`${BASE}/billing/page`);
  check(page.url() === `${BASE}/billing/page`, `sent away from the billing page: ${page.url()}`);

  // A passkey, named.
  await page.goto(`${BASE}/ui/account`);
  await page.getByLabel('Name of the new passkey').fill('Work laptop');
  await Promise.all([
    page.waitForNavigation(),
    page.getByRole('button', { name: 'Add a passkey' }).click(),
  ]);
  await page.waitForLoadState();
  await expectText(page, 'Work laptop');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential, 'no discoverable passkey made');
  await look(page, 'account-passkey');

  // Sign out; a password sign-in's second step can be the passkey.
  await page.goto(`${BASE}/ui/logout`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForLoadState();
  await page.goto(`${BASE}/ui/login?rd=%2Fbilling%2Fpage`);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForLoadState();
  await expectText(page, 'Second step');
  await look(page, 'mfa-passkey');
  await Promise.all([
    page.waitForNavigation(),
    page.getByRole('button', { name: 'Use a passkey instead' }).click(),
  ]);
  check(page.url() === `${BASE}/billing/page`, `the passkey did not finish the sign-in: ${page.url()} ${await text(page)}`);

  // Sign out, then in with the passkey alone.
  await page.goto(`${BASE}/ui/logout`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForLoadState();
  await page.goto(`${BASE}/ui/login?rd=%2Fbilling%2Fpage`);
  await look(page, 'login-passkey');
  await Promise.all([
    page.waitForNavigation(),
    page.getByRole('button', { name: 'Sign in with a passkey' }).click(),
  ]);
  check(page.url() === `${BASE}/billing/page`, `not on the billing page: ${page.url()} ${await text(page)}`);
  // Two factors in one: the billing page needs no further step.
  check(!(await text(page)).includes('Confirm it is you'), 'a passkey sign-in was asked to step up');
  await page.goto(`${BASE}/ui/`);
  await expectText(page, EMAIL);
});
