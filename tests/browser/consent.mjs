#!/usr/bin/env node
// Real-browser test of the owner login and consent pages (password mode).
//
//   node consent.mjs --server http://127.0.0.1:18801 --client-id c_... \
//        --passphrase 'correct horse battery staple' --screenshots /tmp/browser-shots
//
// The client must be registered with redirect_uri https://client.example/callback.
// Two scenarios (approve, deny), each in a fresh Chromium with its own profile,
// its own PKCE challenge and state, at a phone-sized viewport.
// Prints one line per check, then `BROWSER OK`; exits 1 on the first failure.

import { chromium } from 'playwright-core';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const REDIRECT_URI = 'https://client.example/callback';
const REDIRECT_HOST = 'client.example';
const CLIENT_NAME = 'Claude';
const SCOPE = 'tasks:read tasks:write';
// How the gateway describes the two scopes (src/oauth/scope.rs, Scope::describe).
const PERMISSIONS = [
  ["tasks:read", "Read your agent's tasks, their status and replies"],
  ["tasks:write", 'Send tasks to your agent and cancel them'],
];
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // The client host is fake: fail its lookup at once instead of asking a resolver.
  '--host-resolver-rules=MAP client.example ~NOTFOUND',
];
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

class CheckFailed extends Error {}

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error('usage: node consent.mjs --server URL --client-id ID --passphrase PASS --screenshots DIR\n' +
    '                       [--chromium /usr/bin/chromium] [--timeout-ms 15000]');
  process.exit(2);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        server: { type: 'string' },
        'client-id': { type: 'string' },
        passphrase: { type: 'string' },
        screenshots: { type: 'string' },
        chromium: { type: 'string', default: '/usr/bin/chromium' },
        'timeout-ms': { type: 'string', default: '15000' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    usage(err.message);
  }
  if (values.help) usage();
  for (const name of ['server', 'client-id', 'passphrase', 'screenshots']) {
    if (!values[name]) usage(`--${name} is required`);
  }
  const server = values.server.replace(/\/+$/, '');
  try { new URL(server); } catch { usage(`--server is not a URL: ${values.server}`); }
  return {
    server,
    clientId: values['client-id'],
    passphrase: values.passphrase,
    shots: resolve(values.screenshots),
    chromium: values.chromium,
    timeout: Number(values['timeout-ms']) || 15000,
  };
}

const b64url = (buf) => buf.toString('base64url');

function pass(scenario, text) {
  console.log(`ok   [${scenario}] ${text}`);
}

function check(scenario, condition, text, detail) {
  if (!condition) throw new CheckFailed(`[${scenario}] ${text}${detail ? `: ${detail}` : ''}`);
  pass(scenario, text);
}

function authorizeUrl(opts, challenge, state) {
  const url = new URL('/authorize', opts.server);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: opts.clientId,
    redirect_uri: REDIRECT_URI,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    scope: SCOPE,
  }).toString().replace(/\+/g, '%20');
  return url.toString();
}

// Checks shared by the login and consent pages.
async function pageChecks(scenario, label, page, response) {
  check(scenario, response && response.status() === 200, `${label} page answered 200`,
    response ? `got ${response.status()} for ${response.url()}` : 'no response');
  const csp = (await response.headerValue('content-security-policy')) || '';
  check(scenario, /(^|;)\s*frame-ancestors\s+'none'\s*(;|$)/.test(csp),
    `${label} page CSP has frame-ancestors 'none'`, `Content-Security-Policy: ${csp || '(missing)'}`);
  const styled = await page.evaluate(() =>
    getComputedStyle(document.querySelector('main.card') || document.body).borderRadius !== '0px');
  check(scenario, styled, `${label} page stylesheet applied`, 'main.card has no border-radius; nexus.css not loaded?');
  const widths = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
    wide: [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
      .map((el) => `${el.tagName.toLowerCase()}${el.className ? '.' + el.className : ''}`)
      .slice(0, 5),
  }));
  check(scenario, widths.scroll <= widths.inner,
    `${label} page has no horizontal overflow (scrollWidth ${widths.scroll} <= innerWidth ${widths.inner})`,
    `too wide: ${widths.wide.join(', ') || '(unknown element)'}`);
}

async function scenario(name, decision, opts) {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = `st-${name}-${b64url(randomBytes(9))}`;
  if (challenge.length !== 43) throw new Error(`bad PKCE challenge length ${challenge.length}`);

  const profile = mkdtempSync(join(tmpdir(), `nexus-browser-${name}-`));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: opts.chromium,
      args: CHROMIUM_ARGS,
      ...PHONE,
    });
    context.setDefaultTimeout(opts.timeout);
    context.setDefaultNavigationTimeout(opts.timeout);

    // The client's callback host does not exist. Playwright cannot route the target of a
    // redirect (microsoft/playwright#3994), so the browser really follows the server's 303
    // and the request dies in DNS (--host-resolver-rules, never the network); we read the
    // callback URL from that request. A fulfilled page is served too, should routing ever apply.
    let sawCallback;
    const callbackRequest = new Promise((resolve) => { sawCallback = resolve; });
    context.on('request', (request) => {
      if (new URL(request.url()).hostname === REDIRECT_HOST) sawCallback(request);
    });
    await context.route('https://client.example/**', (route) => route.fulfill({
      status: 200,
      contentType: 'text/html; charset=utf-8',
      body: '<!doctype html><title>client callback</title><p>callback reached</p>',
    }));
    // Anything else off the gateway is unexpected: fail it rather than wait on the network.
    const server = new URL(opts.server);
    const strays = [];
    await context.route((url) => url.origin !== server.origin && url.hostname !== REDIRECT_HOST, (route) => {
      strays.push(route.request().url());
      return route.abort();
    });

    const page = context.pages()[0] ?? (await context.newPage());
    const cspViolations = [];
    let sawViolation;
    const violation = new Promise((resolve) => { sawViolation = resolve; });
    page.on('console', (msg) => {
      if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
        cspViolations.push(msg.text());
        sawViolation(msg.text());
      }
    });

    // 1. Login page.
    const loginResponse = await page.goto(authorizeUrl(opts, challenge, state), { waitUntil: 'load' });
    if (!loginResponse || loginResponse.status() !== 200) {
      const text = await page.locator('body').innerText().catch(() => '');
      throw new CheckFailed(`[${name}] GET /authorize answered ${loginResponse && loginResponse.status()} ` +
        `instead of the login page (client registered? passphrase set?): ${text.replace(/\s+/g, ' ').slice(0, 300)}`);
    }
    await page.locator('input[name="passphrase"]').waitFor({ state: 'visible' });
    const loginText = await page.locator('main').innerText();
    check(name, loginText.includes(CLIENT_NAME), `login page names the client "${CLIENT_NAME}"`, loginText);
    check(name, loginText.includes(REDIRECT_HOST), `login page names the redirect host "${REDIRECT_HOST}"`, loginText);
    await pageChecks(name, 'login', page, loginResponse);
    if (decision === 'approve') {
      await page.screenshot({ path: join(opts.shots, 'login.png'), fullPage: true });
      pass(name, `screenshot ${join(opts.shots, 'login.png')}`);
    }

    // 2. Sign in; the server answers 303 to the consent page.
    await page.locator('input[name="passphrase"]').fill(opts.passphrase);
    const [consentResponse] = await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    const approve = page.getByRole('button', { name: 'Approve', exact: true });
    const deny = page.getByRole('button', { name: 'Deny', exact: true });
    const problem = page.locator('.problem');
    let shown = false;
    try {
      await approve.or(problem).first().waitFor({ state: 'visible' });
      shown = await approve.isVisible();
    } catch {}
    if (!shown) {
      const text = await page.locator('body').innerText().catch(() => '');
      throw new CheckFailed(`[${name}] consent page did not appear after sign-in (wrong passphrase?); ` +
        `now at ${page.url()}: ${text.replace(/\s+/g, ' ').slice(0, 300)}`);
    }
    pass(name, 'signed in; consent page shown');
    const consentText = await page.locator('main').innerText();
    check(name, consentText.includes(CLIENT_NAME), `consent page names the client "${CLIENT_NAME}"`, consentText);
    check(name, consentText.includes(REDIRECT_HOST), `consent page names the redirect host "${REDIRECT_HOST}"`, consentText);
    for (const [scope, text] of PERMISSIONS) {
      check(name, consentText.includes(text), `consent page lists ${scope} ("${text}")`, consentText);
    }
    check(name, await deny.isVisible(), 'consent page has a Deny button');
    await pageChecks(name, 'consent', page, consentResponse);
    if (decision === 'approve') {
      await page.screenshot({ path: join(opts.shots, 'consent.png'), fullPage: true });
      pass(name, `screenshot ${join(opts.shots, 'consent.png')}`);
    }

    // 3. Decide; the server answers 303 to the client's callback.
    const button = decision === 'approve' ? approve : deny;
    await button.click({ noWaitAfter: true });
    let timer;
    const request = await Promise.race([
      callbackRequest,
      violation.then((text) => {
        throw new CheckFailed(`[${name}] the browser refused to follow the ${decision} redirect: ${text}`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new CheckFailed(`[${name}] the browser never requested ` +
          `${REDIRECT_URI} within ${opts.timeout} ms after ${decision}; now at ${page.url()}`)), opts.timeout);
      }),
    ]).finally(() => clearTimeout(timer));
    const hop = request.redirectedFrom();
    const hopResponse = hop && (await hop.response());
    check(name, hop && hop.method() === 'POST' && new URL(hop.url()).pathname === '/authorize/decision' &&
      hopResponse && hopResponse.status() === 303,
      `${decision} POST /authorize/decision answered 303 to the callback`,
      hop ? `${hop.method()} ${hop.url()} -> ${hopResponse && hopResponse.status()}` : 'callback was not a redirect');
    check(name, request.isNavigationRequest() && request.frame() === page.mainFrame(),
      'browser navigated the page to the callback (not blocked by form-action)', request.url());
    const callbackResponse = await request.response();
    const failure = request.failure()?.errorText ?? '';
    check(name, callbackResponse !== null || /ERR_NAME_NOT_RESOLVED/.test(failure),
      'callback navigation was only stopped by the unreachable host',
      failure || 'no response and no failure');
    const callback = new URL(request.url());
    const query = callback.searchParams;
    console.log(`     [${name}] callback ${callback.origin}${callback.pathname}?${[...query.keys()].join('&')}`);
    check(name, `${callback.origin}${callback.pathname}` === REDIRECT_URI, `callback is ${REDIRECT_URI}`, callback.href);
    check(name, query.get('state') === state, 'callback carries our state', `got ${query.get('state')}, want ${state}`);
    if (decision === 'approve') {
      check(name, !query.has('error'), 'callback has no error', query.get('error'));
      check(name, /^[A-Za-z0-9_\-.~]{16,}$/.test(query.get('code') || ''), 'callback has an authorization code',
        `code=${query.get('code')}`);
      check(name, (query.get('iss') || '').replace(/\/+$/, '') === opts.server, `callback iss is ${opts.server}`,
        `iss=${query.get('iss')}`);
    } else {
      check(name, query.get('error') === 'access_denied', 'callback has error=access_denied',
        `error=${query.get('error')}`);
      check(name, !query.has('code'), 'callback has no code', `code=${query.get('code')}`);
    }
    check(name, cspViolations.length === 0, 'no Content-Security-Policy violations in the console',
      cspViolations.join(' | '));
    await page.waitForLoadState('load').catch(() => {});
    check(name, strays.length === 0, 'no requests to other hosts', strays.join(', '));
  } catch (err) {
    if (context) {
      const page = context.pages()[0];
      const where = join(opts.shots, `failure-${name}.png`);
      if (page) await page.screenshot({ path: where, fullPage: true }).then(
        () => console.error(`     [${name}] failure screenshot: ${where} (at ${page.url()})`), () => {});
    }
    throw err;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

const opts = options();
mkdirSync(opts.shots, { recursive: true });
try {
  await scenario('approve', 'approve', opts);
  await scenario('deny', 'deny', opts);
  console.log('BROWSER OK');
} catch (err) {
  if (err instanceof CheckFailed) {
    console.error(`FAIL ${err.message}`);
  } else {
    console.error(`FAIL ${err && err.stack ? err.stack : err}`);
  }
  console.error('BROWSER FAILED');
  process.exit(1);
}
