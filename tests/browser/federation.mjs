// Signing in through another identity provider, in a real browser: the provider is a
// second Tollgate on another host (127.0.0.2, so each side keeps its own cookies, as two
// sites would). A person with an account only at the provider signs in and gets one here
// just in time; a person whose address already has an account here confirms the link with
// that account's password (a wrong one first).

import { env, main, newPage, look, expectText, check } from './lib.mjs';

const RP = env('RP_BASE');
const IDP = env('IDP_BASE');
const PASSWORD = env('PASSWORD');

/// From the sign-in page here, through the provider's sign-in and consent, back here.
async function throughProvider(page, email) {
  await page.goto(`${RP}/ui/login`);
  await page.getByRole('link', { name: 'Corp SSO' }).click();
  await page.waitForURL(`${IDP}/ui/login?**`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // Consent is asked once per person and application.
  await page.waitForURL((u) => u.href.startsWith(`${IDP}/ui/consent?`) || u.href.startsWith(RP));
  if (page.url().startsWith(IDP)) {
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${RP}/**`);
  }
}

await main(async (browser) => {
  // Alice has an account at the provider only.
  const alice = await newPage(browser);
  await alice.goto(`${RP}/ui/login`);
  await look(alice, 'login-providers');
  await throughProvider(alice, env('ALICE'));
  check(alice.url() === `${RP}/ui/`, `not at the start page: ${alice.url()}`);
  await expectText(alice, `You are signed in as ${env('ALICE')}`);

  // Dave's address has an account on both sides: he is asked for this side's password.
  const dave = await newPage(browser);
  await throughProvider(dave, env('DAVE'));
  await expectText(dave, 'Link your Corp SSO account');
  await look(dave, 'link');
  await dave.getByLabel(/^Password for/).fill('not the password at all');
  await dave.getByRole('button', { name: 'Link accounts' }).click();
  await dave.waitForLoadState();
  await expectText(dave, 'Link your Corp SSO account');
  await look(dave, 'link-error');
  await dave.getByLabel(/^Password for/).fill(PASSWORD);
  await dave.getByRole('button', { name: 'Link accounts' }).click();
  await dave.waitForURL(`${RP}/ui/`);
  await expectText(dave, `You are signed in as ${env('DAVE')}`);

  // Linked: the next sign-in through the provider goes straight in.
  const again = await newPage(browser);
  await throughProvider(again, env('DAVE'));
  check(again.url() === `${RP}/ui/`, `not signed in directly: ${again.url()}`);
});
