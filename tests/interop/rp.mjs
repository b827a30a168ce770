// A relying party built on openid-client (panva; OpenID-certified), driving Tollgate's
// provider the way an application would. The browser part (sign-in and consent pages)
// is scripted with fetch and a cookie jar; everything OAuth/OIDC is the library's:
// discovery, PKCE, state, nonce, RFC 9207 `iss` checking, ID token validation (RS256 and
// EdDSA via the JWKS), userinfo, refresh, introspection, revocation, client credentials and the
// end-session URL. Exits non-zero, naming the step, when anything is off.
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, PUBLIC_CLIENT_ID, SERVICE_ID,
// SERVICE_SECRET, REDIRECT_URI, POST_LOGOUT_URI, EMAIL, PASSWORD.

import * as client from 'openid-client';

const env = process.env;
const issuer = new URL(env.ISSUER);
const insecure = { execute: [client.allowInsecureRequests] }; // http on loopback only

function check(cond, step, detail) {
  if (!cond) {
    console.error(`FAIL ${step}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
    process.exit(1);
  }
}

// A minimal browser: cookies for the issuer, no automatic redirects.
const jar = new Map();
async function browse(url, form) {
  const headers = { accept: 'text/html' };
  if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  let init = { redirect: 'manual', headers };
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers.origin = issuer.origin;
    init = { ...init, method: 'POST', body: new URLSearchParams(form).toString() };
  }
  const res = await fetch(url, init);
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    const [k, v] = [pair.slice(0, i), pair.slice(i + 1)];
    if (v) jar.set(k, v); else jar.delete(k);
  }
  return res;
}

const unescape = (s) => s.replaceAll('&#x2f;', '/').replaceAll('&quot;', '"').replaceAll('&#x27;', "'")
  .replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
function hidden(html, name) {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  return m ? unescape(m[1]) : undefined;
}

// Walks the hosted pages until the browser is sent back to the application.
async function userAgent(start) {
  let url = new URL(start);
  let res = await browse(url);
  for (let i = 0; i < 12; i++) {
    if (res.status === 302 || res.status === 303) {
      const next = new URL(res.headers.get('location'), url);
      if (next.origin !== issuer.origin) return next;
      url = next;
      res = await browse(url);
      continue;
    }
    const html = await res.text();
    check(res.status === 200, 'hosted page', `${res.status} at ${url}: ${html.slice(0, 300)}`);
    if (url.pathname === '/ui/login') {
      url = new URL('/ui/login', issuer);
      res = await browse(url, {
        email: env.EMAIL, password: env.PASSWORD,
        csrf_token: hidden(html, 'csrf_token'), flow: hidden(html, 'flow'),
      });
    } else if (url.pathname === '/ui/consent') {
      url = new URL('/ui/consent', issuer);
      res = await browse(url, { csrf_token: hidden(html, 'csrf_token'), flow: hidden(html, 'flow'), decision: 'allow' });
    } else {
      check(false, 'hosted page', `unexpected page ${url}`);
    }
  }
  check(false, 'hosted page', 'too many steps');
}

const report = {};

// 1. A confidential web application: discovery, code + PKCE, ID token, userinfo.
const config = await client.discovery(issuer, env.CLIENT_ID, env.CLIENT_SECRET, undefined, insecure);
const meta = config.serverMetadata();
check(meta.issuer === env.ISSUER, 'discovery', meta);
check(meta.authorization_response_iss_parameter_supported === true, 'discovery: RFC 9207', meta);
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: env.REDIRECT_URI,
  scope: 'openid email profile offline_access',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
});
const callback = await userAgent(authUrl);
const tokens = await client.authorizationCodeGrant(config, callback, {
  pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
});
const claims = tokens.claims();
check(claims.email === env.EMAIL, 'ID token claims', claims);
check(tokens.refresh_token && tokens.token_type.toLowerCase() === 'bearer', 'token response', tokens);
report.id_token_alg = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url')).alg;
const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
check(info.email === env.EMAIL, 'userinfo', info);

// 2. Refresh rotates; introspection sees the new access token; revocation ends it.
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh rotation', refreshed);
let intro = await client.tokenIntrospection(config, refreshed.access_token);
check(intro.active === true && intro.sub === claims.sub, 'introspection', intro);
await client.tokenRevocation(config, refreshed.refresh_token);
intro = await client.tokenIntrospection(config, refreshed.access_token);
check(intro.active === false, 'revocation', intro);
let reused = false;
try { await client.refreshTokenGrant(config, tokens.refresh_token); } catch (e) { reused = e.error === 'invalid_grant'; }
check(reused, 'spent refresh token refused', 'expected invalid_grant');

// 3. A public client (no secret) signs in the same browser: PKCE, consent, tokens.
const spa = await client.discovery(issuer, env.PUBLIC_CLIENT_ID, undefined, client.None(), insecure);
const spaVerifier = client.randomPKCECodeVerifier();
const spaState = client.randomState();
const spaNonce = client.randomNonce();
const spaCallback = await userAgent(client.buildAuthorizationUrl(spa, {
  redirect_uri: env.REDIRECT_URI, scope: 'openid email',
  code_challenge: await client.calculatePKCECodeChallenge(spaVerifier), code_challenge_method: 'S256',
  state: spaState, nonce: spaNonce,
}));
const spaTokens = await client.authorizationCodeGrant(spa, spaCallback, {
  pkceCodeVerifier: spaVerifier, expectedState: spaState, expectedNonce: spaNonce, idTokenExpected: true,
});
check(spaTokens.claims().sub === claims.sub, 'public client', spaTokens.claims());
report.spa_id_token_alg = JSON.parse(Buffer.from(spaTokens.id_token.split('.')[0], 'base64url')).alg;

// 4. A service with client credentials.
const svc = await client.discovery(issuer, env.SERVICE_ID, env.SERVICE_SECRET, undefined, insecure);
const svcTokens = await client.clientCredentialsGrant(svc, { scope: 'reports:read' });
check(svcTokens.scope === 'reports:read' && !svcTokens.refresh_token, 'client credentials', svcTokens);

// 5. RP-initiated logout with the ID token as hint: straight back, with state.
const endUrl = client.buildEndSessionUrl(config, {
  id_token_hint: tokens.id_token, post_logout_redirect_uri: env.POST_LOGOUT_URI, state: 'bye',
});
const out = await browse(endUrl);
check(out.status === 303, 'logout', `${out.status}`);
const back = new URL(out.headers.get('location'));
check(back.href.startsWith(env.POST_LOGOUT_URI) && back.searchParams.get('state') === 'bye', 'logout redirect', back.href);

report.ok = true;
console.log(JSON.stringify(report));
