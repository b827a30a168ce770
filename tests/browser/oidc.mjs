// An application signing people in through Tollgate's OpenID Connect provider, in a real
// browser: the authorization code flow with PKCE (S256), consent allowed for one
// application and denied for another, then RP-initiated logout with its confirmation page.
//
// The application is a small relying party written here, on node:http (state, PKCE, the
// code exchange with client_secret_basic, the ID token's claims); Tollgate's own code
// computes none of it. It runs on RP_PORT; both of its clients are registered by
// tests/browser.rs with redirect URI http://127.0.0.1:RP_PORT/cb and post-logout URI
// http://127.0.0.1:RP_PORT/bye.

import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { env, main, newPage, look, expectText, check } from './lib.mjs';

const BASE = env('BASE');
const RP = `http://127.0.0.1:${env('RP_PORT')}`;
const EMAIL = env('EMAIL');
const PASSWORD = env('PASSWORD');
const CLIENTS = {
  docs: { id: env('DOCS_ID'), secret: env('DOCS_SECRET'), name: 'Docs' },
  wiki: { id: env('WIKI_ID'), secret: env('WIKI_SECRET'), name: 'Wiki' },
};

const b64url = (buf) => buf.toString('base64url');
const journeys = new Map(); // state → { client, verifier, nonce }

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html lang="en"><head><title>${title}</title></head><body><main><h1>${title}</h1>${body}</main></body></html>`);
}

async function callback(url, res) {
  const params = url.searchParams;
  const journey = journeys.get(params.get('state'));
  journeys.delete(params.get('state'));
  if (!journey) return page(res, 400, 'Unknown state', '');
  if (params.get('iss') !== BASE) return page(res, 400, 'Wrong issuer', params.get('iss') || '');
  if (params.get('error')) {
    return page(res, 200, `Not signed in to ${journey.client.name}`, `<p id="error">${params.get('error')}</p>`);
  }
  const basic = Buffer.from(`${encodeURIComponent(journey.client.id)}:${encodeURIComponent(journey.client.secret)}`).toString('base64');
  const token = await fetch(`${BASE}/oauth2/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code'),
      redirect_uri: `${RP}/cb`,
      code_verifier: journey.verifier,
    }),
  });
  const t = await token.json();
  if (token.status !== 200) return page(res, 502, 'Token exchange failed', JSON.stringify(t));
  const claims = JSON.parse(Buffer.from(t.id_token.split('.')[1], 'base64url'));
  if (claims.nonce !== journey.nonce || claims.aud !== journey.client.id || claims.iss !== BASE) {
    return page(res, 502, 'Bad ID token', JSON.stringify(claims));
  }
  const logout = new URL(`${BASE}/oauth2/logout`);
  logout.search = new URLSearchParams({
    client_id: journey.client.id,
    post_logout_redirect_uri: `${RP}/bye`,
    state: 'bye-state',
  });
  return page(res, 200, `Signed in to ${journey.client.name}`,
    `<p id="who">${claims.email}</p><p><a href="${logout.href.replaceAll('&', '&amp;')}">Sign out</a></p>`);
}

const server = createServer((req, res) => {
  const url = new URL(req.url, RP);
  if (url.pathname === '/start') {
    const client = CLIENTS[url.searchParams.get('client')];
    const verifier = b64url(randomBytes(32));
    const state = b64url(randomBytes(16));
    const nonce = b64url(randomBytes(16));
    journeys.set(state, { client, verifier, nonce });
    const to = new URL(`${BASE}/oauth2/authorize`);
    to.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.id,
      redirect_uri: `${RP}/cb`,
      scope: 'openid email docs:read',
      state,
      nonce,
      code_challenge: b64url(createHash('sha256').update(verifier).digest()),
      code_challenge_method: 'S256',
    });
    res.writeHead(302, { location: to.href });
    return res.end();
  }
  if (url.pathname === '/cb') {
    return callback(url, res).catch((e) => page(res, 500, 'Callback failed', String(e)));
  }
  if (url.pathname === '/bye') {
    return page(res, 200, 'Signed out', `<p id="state">${url.searchParams.get('state')}</p>`);
  }
  return page(res, 404, 'Not found', '');
});
await new Promise((ok) => server.listen(Number(env('RP_PORT')), '127.0.0.1', ok));

try {
  await main(async (browser) => {
    const page = await newPage(browser);

    // Docs sends the person to Tollgate; they sign in, and are asked to consent.
    await page.goto(`${RP}/start?client=docs`);
    check(page.url().startsWith(`${BASE}/ui/login?flow=`), `not at sign-in: ${page.url()}`);
    await expectText(page, 'to continue to Docs');
    await look(page, 'oidc-login');
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/ui\/consent\?flow=/);
    await expectText(page, 'Allow Docs access?');
    await expectText(page, 'docs:read');
    await look(page, 'consent');
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${RP}/cb?**`);
    await expectText(page, 'Signed in to Docs');
    await expectText(page, EMAIL);

    // Wiki asks too; the person is signed in already, and denies it.
    await page.goto(`${RP}/start?client=wiki`);
    await page.waitForURL(/\/ui\/consent\?flow=/);
    await expectText(page, 'Allow Wiki access?');
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.waitForURL(`${RP}/cb?**`);
    await expectText(page, 'Not signed in to Wiki');
    await expectText(page, 'access_denied');

    // Docs again: consent was given once, so straight back, signed in.
    await page.goto(`${RP}/start?client=docs`);
    await page.waitForURL(`${RP}/cb?**`);
    await expectText(page, 'Signed in to Docs');

    // Docs signs the person out: Tollgate asks first (no ID token names this session).
    await page.getByRole('link', { name: 'Sign out' }).click();
    await page.waitForURL(`${BASE}/oauth2/logout?**`);
    await expectText(page, 'Docs asks to sign');
    await look(page, 'oidc-logout');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${RP}/bye?**`);
    await expectText(page, 'bye-state');

    // Signed out of Tollgate as well: Docs has to ask for a sign-in again.
    await page.goto(`${RP}/start?client=docs`);
    check(page.url().startsWith(`${BASE}/ui/login?flow=`), `still signed in: ${page.url()}`);
  });
} finally {
  server.close();
}
