// Sign in with Apple, in a real browser: Apple answers with a form POST from its own site
// (here a stand-in on `localhost`, another site than Tollgate's 127.0.0.1), so Chromium
// itself decides whether the journey cookie travels on that cross-site POST. A person who
// cancels at Apple is told so and can start again.

import { env, main, newPage, look, expectText, check } from './lib.mjs';

const RP = env('RP_BASE');
const APPLE = env('APPLE_BASE');

await main(async (browser) => {
  const page = await newPage(browser);
  await page.goto(`${RP}/ui/login`);
  await look(page, 'login-apple');

  // Cancelled at Apple: a clear page, then a second attempt goes through.
  await page.getByRole('link', { name: 'Apple' }).click();
  await page.waitForURL(`${APPLE}/auth/authorize?**`);
  check(new URL(page.url()).searchParams.get('response_mode') === 'form_post', page.url());
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.waitForURL(`${RP}/auth/federated/apple/callback`);
  await expectText(page, 'Sign-in did not complete');
  await expectText(page, 'user_cancelled_authorize');
  await look(page, 'apple-cancelled');

  await page.goto(`${RP}/ui/login`);
  await page.getByRole('link', { name: 'Apple' }).click();
  await page.waitForURL(`${APPLE}/auth/authorize?**`);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL(`${RP}/ui/`);
  await expectText(page, `You are signed in as ${env('EMAIL')}`);
  await look(page, 'apple-signed-in');
});
