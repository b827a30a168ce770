// Signing a device in (RFC 8628) as a person does: a command-line tool (played here with
// fetch, as a CLI would) asks Tollgate for a device code and polls; the person opens the
// link it shows in Chromium, signs in, checks the code and the application, and allows
// it; the tool then gets its tokens. A mistyped code reads as wrong, and a second device
// request is denied. Every page is checked with axe and photographed.
//
// Environment: BASE, CLIENT_ID (a public client with the device grant), EMAIL, PASSWORD.

import { env, main, newPage, look, expectText, check } from './lib.mjs';

const BASE = env('BASE');
const CLIENT_ID = env('CLIENT_ID');
const EMAIL = env('EMAIL');
const PASSWORD = env('PASSWORD');
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

async function post(path, fields) {
  const res = await fetch(`${BASE}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: CLIENT_ID, ...fields }),
  });
  return { status: res.status, json: await res.json() };
}

const startDevice = async () => {
  const r = await post('/oauth2/device_authorization', { scope: 'mcp:tools' });
  check(r.status === 200, `device authorization: ${JSON.stringify(r)}`);
  return r.json;
};

const poll = (deviceCode) => post('/oauth2/token', { grant_type: DEVICE_GRANT, device_code: deviceCode });

await main(async (browser) => {
  const device = await startDevice();
  check(/^[B-Z]{4}-[B-Z]{4}$/.test(device.user_code), `user code ${device.user_code}`);
  const first = await poll(device.device_code);
  check(first.json.error === 'authorization_pending', `first poll: ${JSON.stringify(first)}`);

  const page = await newPage(browser);
  // The person types the link the device shows (without the code), signs in first.
  await page.goto(device.verification_uri);
  check(page.url().startsWith(`${BASE}/ui/login`), `not sent to sign in: ${page.url()}`);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}/ui/device`);
  await expectText(page, 'Connect a device');
  await look(page, 'device-code');

  // A mistyped code is refused, and says so.
  await page.getByLabel('Code').fill('BBBB-BBBB');
  await page.getByRole('button', { name: 'Continue' }).click();
  await expectText(page, 'not valid or has expired');
  await look(page, 'device-code-wrong');

  // The right one, in lower case and without the dash, as people type it.
  await page.getByLabel('Code').fill(device.user_code.replace('-', '').toLowerCase());
  await page.getByRole('button', { name: 'Continue' }).click();
  await expectText(page, 'Allow Agent CLI on your device?');
  await expectText(page, device.user_code);
  await expectText(page, 'mcp:tools');
  await look(page, 'device-confirm');
  await page.getByRole('button', { name: 'Allow' }).click();
  await expectText(page, 'Device connected');
  await look(page, 'device-allowed');

  // The device's next poll (after its interval) gets the tokens.
  await new Promise((r) => setTimeout(r, (device.interval + 1) * 1000));
  const tokens = await poll(device.device_code);
  check(tokens.status === 200 && tokens.json.access_token, `tokens: ${JSON.stringify(tokens)}`);

  // A second device, through the complete link: denied.
  const other = await startDevice();
  await page.goto(other.verification_uri_complete);
  await expectText(page, 'Allow Agent CLI on your device?');
  await page.getByRole('button', { name: 'Deny' }).click();
  await expectText(page, 'Device refused');
  await look(page, 'device-denied');
  await new Promise((r) => setTimeout(r, (other.interval + 1) * 1000));
  const refused = await poll(other.device_code);
  check(refused.json.error === 'access_denied', `denied device: ${JSON.stringify(refused)}`);
});
