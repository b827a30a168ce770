// Forms posted from another site are refused, in a real browser with its own headers.
//
// A page on another host (127.0.0.2, served here) carries forms aimed at Tollgate: a
// sign-in with the attacker's credentials (login CSRF, which would put the person in the
// attacker's account) and a sign-out. The person is signed in at Tollgate and presses the
// buttons; Tollgate refuses both, and the person stays signed in as themselves. Then the
// same server opened under another name (localhost for 127.0.0.1): the refusal says which
// address to use and which setting the administrator would change.

import { createServer } from 'node:http';
import { env, main, newPage, look, expectText, check, text } from './lib.mjs';

const BASE = env('BASE');
const EMAIL = env('EMAIL');
const PASSWORD = env('PASSWORD');
const ATTACKER_EMAIL = env('ATTACKER_EMAIL');
const EVIL = `http://127.0.0.2:${env('EVIL_PORT')}`;

const evil = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html lang="en"><head><title>Win a prize</title></head><body><main>
<h1>Win a prize</h1>
<form method="post" action="${BASE}/ui/login">
  <input type="hidden" name="email" value="${ATTACKER_EMAIL}">
  <input type="hidden" name="password" value="${PASSWORD}">
  <input type="hidden" name="csrf_token" value="guessed">
  <button>Claim</button>
</form>
<form method="post" action="${BASE}/ui/logout">
  <input type="hidden" name="csrf_token" value="guessed">
  <button>Claim again</button>
</form>
</main></body></html>`);
});
await new Promise((ok) => evil.listen(Number(env('EVIL_PORT')), '127.0.0.2', ok));

async function signedInAs(page, email) {
  await page.goto(`${BASE}/ui/`);
  check(page.url() === `${BASE}/ui/`, `not signed in: ${page.url()}`);
  await expectText(page, `You are signed in as ${email}`);
}

try {
  await main(async (browser) => {
    const page = await newPage(browser);
    await page.goto(`${BASE}/ui/login`);
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${BASE}/ui/`);

    // Login CSRF: refused, and the person is still themselves.
    await page.goto(`${EVIL}/`);
    await page.getByRole('button', { name: 'Claim', exact: true }).click();
    await page.waitForURL(`${BASE}/ui/login`);
    await expectText(page, 'did not come from this site');
    // Nothing the other site posted is shown back.
    check(!(await text(page)).includes(ATTACKER_EMAIL), 'the refusal repeats the posted address');
    check(await page.getByLabel('Email').inputValue() === '', 'the posted address is filled in');
    await look(page, 'csrf-refused');
    await signedInAs(page, EMAIL);

    // Forced sign-out: refused too.
    await page.goto(`${EVIL}/`);
    await page.getByRole('button', { name: 'Claim again' }).click();
    await page.waitForURL(`${BASE}/ui/logout`);
    await expectText(page, 'did not come from this site');
    await signedInAs(page, EMAIL);

    // The same server under another name: the refusal names the address and the setting.
    const port = new URL(BASE).port;
    const other = await newPage(browser);
    await other.goto(`http://localhost:${port}/ui/login`);
    await other.getByLabel('Email').fill(EMAIL);
    await other.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await other.getByRole('button', { name: 'Sign in' }).click();
    await other.waitForLoadState();
    await expectText(other, `This page was opened at http://localhost:${port}`);
    await expectText(other, `Open ${BASE} instead`);
    await expectText(other, 'TOLLGATE_PUBLIC_URL');
    await look(other, 'origin-mismatch');
  });
} finally {
  evil.close();
}
