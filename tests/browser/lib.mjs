// Shared pieces of the browser tests: Debian's Chromium driven by playwright-core (no
// browser download), axe-core run in every page, screenshots, and the outbox, where the
// zero-configuration Tollgate writes its mail. Each flow script (tests/browser/*.mjs) is
// started by tests/browser.rs with the servers' addresses in its environment, and exits
// non-zero with a message when something a person would notice is wrong.

import { readFileSync, readdirSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHmac } from 'node:crypto';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const AXE = readFileSync(join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
};

/// Debian's Chromium, headless, with nothing running in the background (the machine has
/// no internet; background fetches only fail noisily).
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/// A fresh browser profile (its own cookies), in `locale`, optionally without JavaScript
/// or in the dark colour scheme.
export async function newPage(browser, { locale = 'en-GB', javaScript = true, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({
    locale,
    colorScheme,
    javaScriptEnabled: javaScript,
    viewport: { width: 900, height: 900 },
  });
  return context.newPage();
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/// The page's visible text, for assertions.
export async function text(page) {
  return (await page.locator('body').innerText()).replace(/\s+/g, ' ');
}

export async function expectText(page, wanted) {
  const t = await text(page);
  check(t.includes(wanted), `expected "${wanted}" at ${page.url()}, found: ${t}`);
}

/// axe-core over the page as it is now: no serious or critical violation. The pages' CSP
/// forbids injected script tags, so axe is evaluated through the DevTools protocol.
export async function axe(page, label) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) {
    const detail = bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    throw new Error(`axe found serious problems on ${label} (${page.url()}):\n  ${detail.join('\n  ')}`);
  }
  return result.violations.length;
}

/// A screenshot named `name`, under SCREENSHOTS when it is set.
export async function shot(page, name) {
  const dir = process.env.SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

/// Both checks a page gets in every state the tests reach: axe, and a screenshot.
export async function look(page, name) {
  await axe(page, name);
  await shot(page, name);
}

/// Every message in the outbox addressed to `to`, oldest first, as text (quoted-printable
/// soft line breaks joined).
export function mails(outbox, to) {
  let files = [];
  try {
    files = readdirSync(outbox).filter((f) => f.endsWith('.eml')).sort();
  } catch {
    return [];
  }
  return files
    .map((f) => readFileSync(join(outbox, f), 'utf8'))
    .filter((m) => m.split(/\r?\n/).some((l) => l.startsWith('To:') && l.includes(to)))
    .map((m) => m.replace(/=\r?\n/g, '').replace(/=3D/g, '='));
}

/// The newest link in `to`'s mail that starts with `prefix`, waiting up to 10 s for it.
export async function mailedLink(outbox, to, prefix) {
  for (let i = 0; i < 100; i += 1) {
    const found = mails(outbox, to)
      .reverse()
      .map((m) => m.split(/\s+/).find((w) => w.startsWith(prefix)))
      .find(Boolean);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail to ${to} with a link starting ${prefix}`);
}

function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s.replace(/[\s=]+/g, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/// The code an authenticator app shows for a base32 `secret` (RFC 6238: SHA-1, 6 digits,
/// 30 s), computed here as the app would.
export function totp(secret, time = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(time / 1000 / 30)));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return n.toString().padStart(6, '0');
}

/// Runs a flow, printing where it failed.
export async function main(flow) {
  const browser = await launch();
  try {
    await flow(browser);
    console.log('ok');
  } catch (e) {
    console.error(e.stack || String(e));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
