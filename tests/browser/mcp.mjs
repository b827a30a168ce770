// An AI agent connecting to an MCP server that Tollgate protects, the way agents do it:
// with the official MCP TypeScript SDK's client and its OAuth support, which Tollgate's code
// does not help with. The SDK meets Tollgate's 401 at MCP_URL, reads the protected resource
// metadata the `WWW-Authenticate: Bearer resource_metadata="…"` header names, then the
// authorization server metadata, registers itself dynamically (RFC 7591), and sends the
// person to the authorization endpoint with PKCE (S256) and the resource indicator
// (RFC 8707). The person signs in and consents in a real browser; the SDK exchanges the
// code, and a second connection lists and calls the server's tools (tests/browser/
// mcp-server.mjs, behind Tollgate) with the access token.
//
// Environment: BASE (Tollgate, also the issuer), MCP_URL (BASE + "/mcp"), EMAIL, PASSWORD,
// CB_PORT (the agent's redirect listener, http://127.0.0.1:CB_PORT/callback), SCREENSHOTS.
// On success the last line of stdout is one JSON object: ok, client_id, access_token, tools,
// whoami, and the agent's HTTP requests in order.

import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { env, main, newPage, look, axe, expectText, check } from './lib.mjs';

const BASE = env('BASE');
const MCP_URL = env('MCP_URL');
const EMAIL = env('EMAIL');
const PASSWORD = env('PASSWORD');
const CB_PORT = Number(env('CB_PORT'));
const CB = `http://127.0.0.1:${CB_PORT}`;
const REDIRECT_URL = `${CB}/callback`;
const CLIENT_NAME = 'MCP test agent';

// Every HTTP request the SDK makes, in order, for the result and for failure messages.
const requests = [];

function bodyText(body) {
  if (body == null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  return String(body);
}

/// The SDK's fetch, recording each request and its answer.
async function recordingFetch(url, init = {}) {
  const href = String(url instanceof URL ? url.href : url);
  const headers = new Headers(init.headers);
  const entry = { method: (init.method || 'GET').toUpperCase(), url: href };
  const auth = headers.get('authorization');
  if (auth) entry.authorization = auth.split(' ')[0];
  if (href !== MCP_URL) {
    const body = bodyText(init.body);
    if (body !== undefined) entry.body = body;
  }
  requests.push(entry);
  const response = await fetch(url, init);
  entry.status = response.status;
  const challenge = response.headers.get('www-authenticate');
  if (challenge) entry.www_authenticate = challenge;
  return response;
}

/// The OAuthClientProvider the SDK asks for everything it keeps: an agent's memory.
class Provider {
  constructor() {
    this.registrations = [];
    this.authorizationUrls = [];
    this.states = [];
  }

  get redirectUrl() {
    return REDIRECT_URL;
  }

  get clientMetadata() {
    return {
      client_name: CLIENT_NAME,
      redirect_uris: [REDIRECT_URL],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    const s = randomBytes(16).toString('base64url');
    this.states.push(s);
    return s;
  }

  clientInformation() {
    return this._client;
  }

  saveClientInformation(info) {
    this.registrations.push(info);
    this._client = info;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
  }

  redirectToAuthorization(url) {
    this.authorizationUrls.push(new URL(url));
  }

  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }

  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier saved');
    return this._verifier;
  }
}

// The agent's redirect listener: captures the authorization response.
let arrived;
const callback = new Promise((ok) => { arrived = ok; });

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html lang="en"><head><title>${title}</title></head><body><main><h1>${title}</h1>${body}</main></body></html>`);
}

const html = (s) => String(s).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

const server = createServer((req, res) => {
  const url = new URL(req.url, CB);
  if (url.pathname !== '/callback') return page(res, 404, 'Not found', '');
  const params = Object.fromEntries(url.searchParams);
  arrived(params);
  if (params.error) {
    return page(res, 200, 'Not signed in', `<p id="error">${html(params.error)}</p>`);
  }
  return page(res, 200, 'Signed in; you can close this tab', '<p>The agent has what it needs.</p>');
});
await new Promise((ok) => server.listen(CB_PORT, '127.0.0.1', ok));

/// Runs one step, naming it in the error when it fails.
async function step(name, fn) {
  try {
    return await fn();
  } catch (e) {
    const log = requests.map((r) => `    ${r.method} ${r.url} → ${r.status ?? '…'}`
      + `${r.www_authenticate ? ` [WWW-Authenticate: ${r.www_authenticate}]` : ''}`
      + `${r.body ? ` body: ${r.body}` : ''}`).join('\n');
    const err = new Error(`step "${name}" failed: ${e?.message ?? e}\n  requests so far:\n${log}`);
    err.cause = e;
    err.stack = `${err.message}\n${e?.stack ?? ''}`;
    throw err;
  }
}

let result;
try {
  await main(async (browser) => {
    const provider = new Provider();
    const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
      authProvider: provider,
      fetch: recordingFetch,
    });

    // The agent knows only MCP_URL; Tollgate's 401 sends it on its way to sign the person in.
    const authorizationUrl = await step('connect without a token', async () => {
      const client = new Client({ name: 'tollgate-mcp-test', version: '1.0.0' });
      let error;
      try {
        await client.connect(transport);
      } catch (e) {
        error = e;
      }
      check(error, 'connecting without a token succeeded');
      check(error instanceof UnauthorizedError, `expected UnauthorizedError, got ${error?.stack || error}`);
      check(provider.registrations.length === 1,
        `expected one dynamic registration, saveClientInformation was called ${provider.registrations.length} times`);
      check(provider.authorizationUrls.length === 1,
        `expected one redirect to authorization, got ${provider.authorizationUrls.length}`);
      return provider.authorizationUrls[0];
    });
    const clientId = provider.registrations[0].client_id;

    await step('registration and authorization request', async () => {
      check(typeof clientId === 'string' && clientId.length > 0, `registration gave no client_id: ${JSON.stringify(provider.registrations[0])}`);
      const reg = requests.find((r) => r.method === 'POST' && r.body?.startsWith('{'));
      check(reg, 'no dynamic client registration request was made');
      const p = authorizationUrl.searchParams;
      check(authorizationUrl.href.startsWith(`${BASE}/`), `authorization endpoint not at Tollgate: ${authorizationUrl.href}`);
      check(p.get('resource') === MCP_URL, `resource is ${p.get('resource')}, expected ${MCP_URL}: ${authorizationUrl.href}`);
      check(p.get('code_challenge_method') === 'S256', `code_challenge_method is ${p.get('code_challenge_method')}`);
      check(p.get('code_challenge'), 'no code_challenge');
      check(p.get('response_type') === 'code', `response_type is ${p.get('response_type')}`);
      check(p.get('client_id') === clientId, `client_id is ${p.get('client_id')}, registered ${clientId}`);
      check(p.get('redirect_uri') === REDIRECT_URL, `redirect_uri is ${p.get('redirect_uri')}`);
      check(p.get('state') === provider.states.at(-1), `state is ${p.get('state')}`);
    });

    // The person signs in and allows the agent, in a browser.
    const browserPage = await newPage(browser);
    await step('sign in', async () => {
      await browserPage.goto(authorizationUrl.href);
      check(browserPage.url().startsWith(`${BASE}/ui/login?flow=`), `not at sign-in: ${browserPage.url()}`);
      await look(browserPage, 'mcp-sign-in');
      await browserPage.getByLabel('Email').fill(EMAIL);
      await browserPage.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await browserPage.getByRole('button', { name: 'Sign in' }).click();
      await browserPage.waitForURL(/\/ui\/consent\?flow=/);
    });
    await step('consent', async () => {
      await expectText(browserPage, CLIENT_NAME);
      await look(browserPage, 'mcp-consent');
      await browserPage.getByRole('button', { name: 'Allow' }).click();
      await browserPage.waitForURL(`${CB}/callback?**`);
      await expectText(browserPage, 'Signed in');
      await axe(browserPage, 'mcp-callback');
    });
    const code = await step('authorization response', async () => {
      const params = await Promise.race([
        callback,
        new Promise((_, no) => setTimeout(() => no(new Error('no request reached the callback')), 5000)),
      ]);
      check(!params.error, `authorization failed: ${JSON.stringify(params)}`);
      check(params.code, `no code in the callback: ${JSON.stringify(params)}`);
      check(params.state === provider.states.at(-1), `state came back as ${params.state}`);
      if (params.iss !== undefined) check(params.iss === BASE, `iss is ${params.iss}, expected ${BASE}`);
      return params.code;
    });

    await step('token exchange', async () => {
      await transport.finishAuth(code);
      const tokens = provider.tokens();
      check(tokens?.access_token, `no access token saved: ${JSON.stringify(tokens)}`);
      check(tokens.token_type?.toLowerCase() === 'bearer', `token_type is ${tokens.token_type}`);
    });

    // A new connection, with the token: the tools, and who Tollgate says is calling.
    const client = new Client({ name: 'tollgate-mcp-test', version: '1.0.0' });
    const transport2 = new StreamableHTTPClientTransport(new URL(MCP_URL), {
      authProvider: provider,
      fetch: recordingFetch,
    });
    try {
      await step('connect with the token', () => client.connect(transport2));
      const tools = await step('list tools', async () => {
        const names = (await client.listTools()).tools.map((t) => t.name);
        for (const wanted of ['echo', 'whoami', 'delete_everything']) {
          check(names.includes(wanted), `tool ${wanted} missing from ${JSON.stringify(names)}`);
        }
        return names;
      });
      await step('call echo', async () => {
        const r = await client.callTool({ name: 'echo', arguments: { text: 'hello agent' } });
        check(!r.isError && r.content?.[0]?.text === 'hello agent', `echo answered ${JSON.stringify(r)}`);
      });
      const whoami = await step('call whoami', async () => {
        const r = await client.callTool({ name: 'whoami', arguments: {} });
        check(!r.isError, `whoami answered ${JSON.stringify(r)}`);
        const who = JSON.parse(r.content[0].text);
        check(typeof who.user === 'string' && who.user.length > 0, `no user: ${JSON.stringify(who)}`);
        check(who.client === clientId, `client is ${who.client}, registered ${clientId}`);
        return who;
      });
      check(provider.registrations.length === 1, `registered ${provider.registrations.length} times`);
      result = {
        ok: true,
        client_id: clientId,
        access_token: provider.tokens().access_token,
        tools,
        whoami,
        requests,
      };
    } finally {
      await client.close();
    }
  });
} finally {
  server.closeAllConnections();
  server.close();
}

if (result && !process.exitCode) console.log(JSON.stringify(result));
