// The pages in every state the account flows do not reach, on a branded Tollgate (product
// name, logo, accent colour from [ui]): French, sign-in by keyboard alone and without
// JavaScript, codes typed from the mail instead of links, and error pages for navigations.
// Every state is checked with axe and photographed.

import { createServer } from 'node:http';
import { env, main, newPage, look, expectText, check, mailedLink, text } from './lib.mjs';

const BASE = env('BASE');
const OUTBOX = env('OUTBOX');
const EMAIL = env('EMAIL');
const PASSWORD = env('PASSWORD');
const NEW_PASSWORD = 'a brand new passphrase';

// The logo, from another origin (the pages' CSP allows the logo's origin for images).
const logo = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'image/svg+xml' });
  res.end('<svg xmlns="http://www.w3.org/2000/svg" width="96" height="32"><rect width="96" height="32" rx="6" fill="#6d28d9"/><text x="48" y="21" font-size="14" text-anchor="middle" fill="#fff" font-family="sans-serif">ACME</text></svg>');
});
await new Promise((ok) => logo.listen(Number(env('LOGO_PORT')), '127.0.0.2', ok));

async function signedIn(page) {
  check(page.url() === `${BASE}/ui/`, `not at the start page: ${page.url()}`);
  await expectText(page, `signed in as ${EMAIL}`);
}

try {
  await main(async (browser) => {
    // The brand: the product's name and logo, the accent colour on the main button.
    const page = await newPage(browser);
    await page.goto(`${BASE}/ui/login`);
    check((await page.title()).includes('Acme AI'), `title: ${await page.title()}`);
    const img = page.getByRole('img', { name: 'Acme AI' });
    await img.waitFor();
    check(await img.evaluate((i) => i.complete && i.naturalWidth > 0), 'the logo did not load');
    const accent = await page.getByRole('button', { name: 'Sign in' })
      .evaluate((b) => getComputedStyle(b).backgroundColor);
    check(accent === 'rgb(109, 40, 217)', `the accent colour is not applied: ${accent}`);
    await look(page, 'login-branded');

    // By keyboard alone: the address field has the focus, Tab goes to the password,
    // Enter signs in.
    check(await page.evaluate(() => document.activeElement.id) === 'email', 'the address field has no focus');
    await page.keyboard.type(EMAIL);
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.id) === 'password', 'Tab does not reach the password');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${BASE}/ui/`);
    await signedIn(page);
    // …and out again by keyboard: Tab to the button, Enter.
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.textContent.trim()) === 'Sign out', 'Tab does not reach Sign out');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${BASE}/ui/logout`);
    await expectText(page, 'You are signed out');

    // Without JavaScript: plain forms.
    const plain = await newPage(browser, { javaScript: false });
    await plain.goto(`${BASE}/ui/login`);
    await plain.getByLabel('Email').fill(EMAIL);
    await plain.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await plain.getByRole('button', { name: 'Sign in' }).click();
    await plain.waitForURL(`${BASE}/ui/`);
    await signedIn(plain);

    // The dark colour scheme: the same contrast checks.
    const dark = await newPage(browser, { colorScheme: 'dark' });
    await dark.goto(`${BASE}/ui/login`);
    await dark.getByLabel('Email').fill(EMAIL);
    await dark.getByLabel('Password', { exact: true }).fill('not the password');
    await dark.getByRole('button', { name: 'Sign in' }).click();
    await dark.waitForLoadState();
    await expectText(dark, 'The email or password is incorrect');
    await look(dark, 'login-dark-error');
    await dark.goto(`${BASE}/ui/signup`);
    await look(dark, 'signup-dark');

    // French, chosen by the browser's language.
    const fr = await newPage(browser, { locale: 'fr-FR' });
    await fr.goto(`${BASE}/ui/login`);
    check(await fr.getAttribute('html', 'lang') === 'fr', 'the page is not marked French');
    await expectText(fr, 'Se connecter');
    await look(fr, 'login-fr');
    await fr.getByLabel('Adresse e-mail').fill(EMAIL);
    await fr.getByLabel('Mot de passe', { exact: true }).fill('pas le bon mot de passe');
    await fr.getByRole('button', { name: 'Se connecter' }).click();
    await fr.waitForLoadState();
    await expectText(fr, "L'adresse e-mail ou le mot de passe est incorrect");
    await look(fr, 'login-fr-error');
    await fr.getByRole('link', { name: 'Créer un compte' }).click();
    await fr.waitForLoadState();
    await look(fr, 'signup-fr');
    const missing = await fr.goto(`${BASE}/ui/nulle-part`);
    check(missing.status() === 404, `status ${missing.status()}`);
    await expectText(fr, 'Page introuvable');
    await expectText(fr, "la page n'existe plus");
    await look(fr, 'error-404-fr');

    // Error pages for navigations: an unknown page, a broken authorization request.
    const errors = await newPage(browser);
    const r404 = await errors.goto(`${BASE}/ui/nowhere`);
    check(r404.status() === 404, `status ${r404.status()}`);
    check(r404.headers()['content-type'].startsWith('text/html'), 'a navigation got JSON');
    await expectText(errors, 'Page not found');
    await look(errors, 'error-404');
    const bad = await errors.goto(`${BASE}/oauth2/authorize?client_id=nobody`);
    check(bad.status() === 400, `status ${bad.status()}`);
    await look(errors, 'error-authorize');

    // The code from the mail, typed instead of following the link.
    const codes = await newPage(browser);
    await codes.goto(`${BASE}/ui/forgot`);
    await codes.getByLabel('Email').fill(EMAIL);
    await codes.getByRole('button', { name: 'Send the link' }).click();
    await codes.waitForLoadState();
    const link = await mailedLink(OUTBOX, EMAIL, `${BASE}/ui/reset?token=`);
    const code = new URL(link).searchParams.get('token');
    await codes.goto(`${BASE}/ui/reset`);
    await look(codes, 'reset-code');
    await codes.getByLabel('Code from the mail').fill(code);
    await codes.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
    await codes.getByRole('button', { name: 'Set the new password' }).click();
    await codes.waitForLoadState();
    await expectText(codes, 'Password changed');
    await codes.goto(`${BASE}/ui/verify`);
    await look(codes, 'verify-code');
    await codes.getByLabel('Code from the mail').fill('not-a-code');
    await codes.getByRole('button', { name: 'Confirm my address' }).click();
    await codes.waitForLoadState();
    await expectText(codes, 'This link does not work');
    await codes.goto(`${BASE}/ui/confirm-email?token=stale`);
    await look(codes, 'confirm-email');
    check(!(await text(codes)).includes('Code from the mail'), 'a link with its code asks for the code');
  });
} finally {
  logo.close();
}
