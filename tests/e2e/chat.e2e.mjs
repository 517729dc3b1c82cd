// End-to-end test of the browser chat client served at `/`, driven by Playwright
// (playwright-core from scripts/clients/node_modules) with Debian's Chromium (/usr/bin/chromium).
//
// Run it:
//   scripts/clients/run.sh                 (builds, brings up the test services, runs the clients)
// or, with the test services up (scripts/services.sh --test up) and the debug binary built
// (cargo build), and `npm ci` done in scripts/clients:
//   node tests/e2e/chat.e2e.mjs
//
// It starts its own servers through scripts/clients/start-server.sh (NAME `e2e`, with a low
// anti-spam rate limit and a 1 MiB files.max_bytes, and NAME `e2e-history`, without them, for
// history paging) and stops them at the end, also on failure. The images it uploads are PNGs
// made in this file (gradientPng). It takes the README's screenshots (login.png,
// chat-desktop.png, chat-mobile.png, antispam-notice.png) into var/test/clients/e2e/screenshots/;
// with CHAT_E2E_IMAGES=1 into images/ instead, to refresh the README's.
// Failure screenshots (for debugging) go to var/test/clients/e2e/failures/.
//
// The page is tested through its data-testid contract only; the one test hook it exposes is
// `window.__chat.dropSocket()`, which drops the WebSocket as a network failure would.

import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import path from 'node:path';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(new URL('../../scripts/clients/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const IMAGES = process.env.CHAT_E2E_IMAGES === '1'
    ? path.join(ROOT, 'images')
    : path.join(ROOT, 'var/test/clients/e2e/screenshots');
const FAILURES = path.join(ROOT, 'var/test/clients/e2e/failures');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// A phone's screen, for the phone-width tests.
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const TIMEOUT = 10_000; // default wait for something to show up in a page
const TEST_TIMEOUT = 180_000; // one test, including anti-spam waits
const PASSWORD = 'correct horse battery';
// The `e2e` server's anti-spam settings (rate: RATE_LIMIT messages per RATE_WINDOW seconds).
const RATE_LIMIT = 6;
const RATE_WINDOW_SECS = 30;
// The `e2e` server's largest upload, low enough that a test can go over it quickly.
const MAX_UPLOAD_BYTES = 1024 * 1024;
const E2E_ENV = {
    CHAT__ANTISPAM__RATE_LIMIT: String(RATE_LIMIT),
    CHAT__ANTISPAM__RATE_WINDOW_SECS: String(RATE_WINDOW_SECS),
    CHAT__ANTISPAM__UNANSWERED_LIMIT: '1000',
    CHAT__ANTISPAM__DUPLICATE_LIMIT: '1000',
    CHAT__FILES__MAX_BYTES: String(MAX_UPLOAD_BYTES),
};
const HISTORY_ENV = {
    CHAT__ANTISPAM__RATE_LIMIT: '100000',
    CHAT__ANTISPAM__UNANSWERED_LIMIT: '100000',
    CHAT__ANTISPAM__DUPLICATE_LIMIT: '100000',
};
const HISTORY_COUNT = 45;
const INJECTION = '<img src=x onerror=alert(1)>';
const TAG = Date.now().toString(36).slice(-5);

// ---------------------------------------------------------------------------------------------
// A PNG made here: a colour gradient of `width` x `height` pixels (8-bit RGB, no filter).

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
});

function crc32(bytes) {
    let c = 0xffffffff;
    for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typed));
    return Buffer.concat([length, typed, crc]);
}

function gradientPng(width, height) {
    const header = Buffer.alloc(13);
    header.writeUInt32BE(width, 0);
    header.writeUInt32BE(height, 4);
    header[8] = 8; // bits per sample
    header[9] = 2; // RGB
    const row = width * 3 + 1;
    const pixels = Buffer.alloc(row * height); // each row starts with filter type 0
    for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
            const at = y * row + 1 + x * 3;
            pixels[at] = Math.round((x * 255) / (width - 1));
            pixels[at + 1] = Math.round((y * 255) / (height - 1));
            pixels[at + 2] = 160;
        }
    }
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        pngChunk('IHDR', header),
        pngChunk('IDAT', deflateSync(pixels)),
        pngChunk('IEND', Buffer.alloc(0)),
    ]);
}

// Larger than a thumbnail (longest side 320), so the thumbnail is a scaled-down copy.
const PNG_WIDTH = 480;
const PNG_HEIGHT = 360;
const PNG = gradientPng(PNG_WIDTH, PNG_HEIGHT);

// ---------------------------------------------------------------------------------------------
// Servers

const started = new Set();

function startServer(name, env) {
    execFileSync(path.join(ROOT, 'scripts/clients/start-server.sh'), [name], {
        cwd: ROOT,
        env: { CLIENTS_SERVICES_UP: '1', ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'inherit'],
        timeout: 120_000,
    });
    started.add(name);
    const url = readFileSync(path.join(ROOT, 'var/test/clients', name, 'url'), 'utf8').trim();
    return url.replace(/\/+$/, '');
}

function stopServer(name) {
    if (!started.has(name)) return;
    started.delete(name);
    try {
        execFileSync(path.join(ROOT, 'scripts/clients/stop-server.sh'), [name], {
            cwd: ROOT,
            stdio: ['ignore', 'ignore', 'inherit'],
            timeout: 60_000,
        });
    } catch (e) {
        console.error(`stopping server ${name}: ${e.message}`);
    }
}

function stopAllServers() {
    for (const name of [...started]) stopServer(name);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
        stopAllServers();
        process.exit(130);
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns `{ ok: true, value }`; on timeout throws with the last `seen`. */
async function waitFor(what, fn, timeout = TIMEOUT, interval = 100) {
    const end = Date.now() + timeout;
    let seen;
    for (;;) {
        let r;
        try {
            r = await fn();
        } catch (e) {
            r = { ok: false, seen: `error: ${e.message.split('\n')[0]}` };
        }
        if (r.ok) return r.value;
        seen = r.seen;
        if (Date.now() > end) {
            throw new Error(
                `timed out after ${timeout} ms waiting for ${what}` +
                    (seen !== undefined ? `; observed: ${JSON.stringify(seen)}` : ''),
            );
        }
        await sleep(interval);
    }
}

function assert(cond, message) {
    if (!cond) throw new Error(message);
}

const tid = (scope, id) => scope.getByTestId(id);

async function isVisible(locator) {
    return (await locator.count()) > 0 && (await locator.first().isVisible());
}

async function visibleText(page, id) {
    const l = tid(page, id);
    if (!(await isVisible(l))) return null;
    return (await l.first().textContent()).trim();
}

async function waitVisible(page, id, timeout = TIMEOUT) {
    await waitFor(`[data-testid=${id}] visible`, async () => ({ ok: await isVisible(tid(page, id)) }), timeout);
}

async function waitHidden(page, id, timeout = TIMEOUT) {
    await waitFor(`[data-testid=${id}] hidden`, async () => ({ ok: !(await isVisible(tid(page, id))) }), timeout);
}

async function waitText(page, id, re, timeout = TIMEOUT) {
    return waitFor(
        `[data-testid=${id}] to match ${re}`,
        async () => {
            const t = await visibleText(page, id);
            return { ok: t !== null && re.test(t), value: t, seen: t };
        },
        timeout,
    );
}

/** The messages shown in the open chat, in DOM order. */
async function readMessages(page) {
    return page.evaluate(() =>
        [...document.querySelectorAll('[data-testid="messages"] [data-testid="message"]')].map((m) => ({
            id: m.getAttribute('data-message-id'),
            seq: m.getAttribute('data-seq'),
            mine: m.getAttribute('data-mine'),
            content: m.querySelector('[data-testid="message-content"]')?.textContent.trim() ?? null,
            status: m.querySelector('[data-testid="message-status"]')?.textContent.trim() ?? null,
        })),
    );
}

const brief = (ms) => ms.slice(-6).map((m) => `${m.mine === 'true' ? 'me' : 'peer'}:${m.content}${m.status ? ` [${m.status}]` : ''}`);

async function waitMessage(page, text, { mine } = {}, timeout = TIMEOUT) {
    return waitFor(
        `message "${text}"${mine === undefined ? '' : mine ? ' (mine)' : ' (from the peer)'} in the chat`,
        async () => {
            const ms = await readMessages(page);
            const m = ms.find((x) => x.content === text && (mine === undefined || x.mine === String(mine)));
            return { ok: !!m, value: m, seen: brief(ms) };
        },
        timeout,
    );
}

async function waitNoMessage(page, text, timeout = TIMEOUT) {
    await waitFor(
        `message "${text}" to disappear`,
        async () => {
            const ms = await readMessages(page);
            return { ok: !ms.some((x) => x.content === text), seen: brief(ms) };
        },
        timeout,
    );
}

async function waitStatus(page, text, status, timeout = TIMEOUT) {
    const re = new RegExp(`\\b${status}\\b`, 'i');
    await waitFor(
        `message-status of "${text}" to be "${status}"`,
        async () => {
            const ms = await readMessages(page);
            const m = ms.find((x) => x.content === text && x.mine === 'true');
            return { ok: !!m && m.status !== null && re.test(m.status), seen: m ? m.status : 'no such message' };
        },
        timeout,
    );
}

function messageLocator(page, text) {
    return tid(page, 'messages')
        .getByTestId('message')
        .filter({ has: page.getByTestId('message-content').getByText(text, { exact: true }) });
}

/** The message with this id in the open chat of `page`. */
function messageById(page, id) {
    return tid(page, 'messages').locator(`[data-testid="message"][data-message-id="${id}"]`);
}

/** Clicks one of a message's actions (`message-reply`, `message-edit`, ...), shown on hover.
 *  The page redraws its list on every event: a redraw between the hover and the click takes
 *  the hovered element away, so both are tried again until the click lands. */
async function messageAction(page, id, action) {
    const m = messageById(page, id);
    await waitFor(`the ${action} action of message ${id} to be clicked`, async () => {
        await m.hover({ timeout: 2000 });
        await m.getByTestId(action).click({ timeout: 1000 });
        return { ok: true };
    });
}

/** The reactions under a message, as the page shows them. */
async function readReactions(page, id) {
    return messageById(page, id).evaluate((m) =>
        [...m.querySelectorAll('[data-testid="reaction"]')].map((r) => ({
            emoji: r.getAttribute('data-emoji'),
            count: Number(r.querySelector('[data-testid="reaction-count"]')?.textContent.trim()),
            me: r.getAttribute('aria-pressed') === 'true',
        })),
    );
}

async function waitReactions(page, id, expected, what) {
    await waitFor(what, async () => {
        const seen = await readReactions(page, id);
        return { ok: JSON.stringify(seen) === JSON.stringify(expected), seen };
    });
}

/** The quote a reply shows of the message it answers. */
async function readQuote(page, id) {
    return messageById(page, id).evaluate((m) => {
        const q = m.querySelector('[data-testid="message-quote"]');
        return q && {
            to: q.getAttribute('data-reply-to'),
            author: q.querySelector('[data-testid="quote-author"]')?.textContent.trim() ?? null,
            excerpt: q.querySelector('[data-testid="quote-excerpt"]')?.textContent.trim() ?? null,
            recalled: q.getAttribute('data-recalled') === 'true',
        };
    });
}

/** Whether the message is shown as the one a jump went to, inside the visible part of the list. */
async function waitShownAt(page, id) {
    await waitFor(`message ${id} highlighted and scrolled into view`, async () => {
        const seen = await messageById(page, id).evaluate((m) => {
            const box = m.getBoundingClientRect();
            const list = m.closest('[data-testid="messages"]').getBoundingClientRect();
            return { highlighted: m.getAttribute('data-highlighted'), inside: box.top >= list.top - 1 && box.bottom <= list.bottom + 1 };
        });
        return { ok: seen.highlighted === 'true' && seen.inside, seen };
    });
}

function conversationItem(page, conversation) {
    return page.locator(`[data-testid="conversation-item"][data-conversation="${conversation}"]`);
}

async function badgeCount(page, conversation) {
    const badge = conversationItem(page, conversation).getByTestId('unread-badge');
    if (!(await isVisible(badge))) return 0;
    const t = (await badge.first().textContent()).trim();
    return t === '' ? 0 : Number(t);
}

async function listOrder(page) {
    return page.evaluate(() =>
        [...document.querySelectorAll('[data-testid="conversation-list"] [data-testid="conversation-item"]')].map((e) =>
            e.getAttribute('data-conversation'),
        ),
    );
}

async function openConversation(page, conversation) {
    const item = conversationItem(page, conversation);
    await waitFor(`conversation-item ${conversation}`, async () => ({ ok: await isVisible(item), seen: await listOrder(page) }));
    await item.first().click();
    await waitVisible(page, 'chat');
    await waitVisible(page, 'composer');
}

const convId = (a, b) => {
    const [x, y] = [Number(a), Number(b)].sort((p, q) => p - q);
    return `u:${x}:${y}`;
};

async function apiFetch(page, method, url, body) {
    return page.evaluate(
        async ({ method, url, body }) => {
            const r = await fetch(url, {
                method,
                headers: body === undefined ? {} : { 'content-type': 'application/json' },
                body: body === undefined ? undefined : JSON.stringify(body),
            });
            const text = await r.text();
            let json = null;
            try {
                json = JSON.parse(text);
            } catch {}
            return { status: r.status, json, text };
        },
        { method, url, body },
    );
}

/** Sends one frame over a WebSocket of its own from `page` (the page's session) and returns the reply. */
async function sendFrame(page, frame) {
    return page.evaluate(async (frame) => {
        const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
        await new Promise((res, rej) => {
            ws.onopen = res;
            ws.onerror = () => rej(new Error('WebSocket error'));
        });
        const reply = new Promise((res) => {
            ws.addEventListener('message', (ev) => {
                const f = JSON.parse(ev.data);
                if (f.client_msg_id === frame.client_msg_id) res(f);
            });
        });
        ws.send(JSON.stringify(frame));
        const r = await reply;
        ws.close();
        return r;
    }, frame);
}

/** The attachment or place rendered in the message whose caption is `text`, as the page shows it. */
async function readMedia(page, text) {
    return messageLocator(page, text).first().evaluate((m) => {
        const img = m.querySelector('[data-testid="attachment-image"]');
        const open = m.querySelector('[data-testid="attachment-open"]');
        const place = m.querySelector('[data-testid="message-location"]');
        return {
            type: m.getAttribute('data-type'),
            img: img && { src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight },
            open: open && { href: open.getAttribute('href'), target: open.getAttribute('target') },
            place: place && {
                href: place.querySelector('[data-testid="location-link"]')?.href ?? null,
                text: place.querySelector('[data-testid="location-link"]')?.textContent.trim() ?? null,
                address: place.querySelector('[data-testid="location-address"]')?.textContent ?? null,
                html: place.innerHTML,
            },
        };
    });
}

/** Empties the composer of `page`, attachment included, so a failed test leaves nothing staged
 *  for the next one to send. */
async function clearComposer(page) {
    if (await isVisible(tid(page, 'upload'))) await tid(page, 'upload-cancel').click();
    await tid(page, 'composer').fill('');
}

/** Stages a file in the composer through the attach input and waits until it is uploaded. */
async function attachFile(page, file) {
    await tid(page, 'attach-input').setInputFiles(file);
    await waitVisible(page, 'upload');
    await waitFor(`the upload of ${file.name} to finish`, async () => {
        const state = await tid(page, 'upload').getAttribute('data-state');
        const error = await visibleText(page, 'upload-error');
        return { ok: state === 'ready' && error === null, seen: { state, error } };
    });
    const progress = await tid(page, 'upload-progress').evaluate((p) => p.value);
    assert(progress === 1, `upload-progress shows ${progress} after the upload`);
}

// ---------------------------------------------------------------------------------------------
// Users, one browser context each

let browser;
const contexts = [];
const pageErrors = [];
const consoleErrors = [];
const dialogs = [];
const injectedRequests = [];

async function newPage(label, base, options = {}) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
    contexts.push({ label, context });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('pageerror', (e) => pageErrors.push(`${label}: ${e.message}`));
    // Refused requests (the tests provoke 400s, 413s, a dropped network) are logged by the
    // browser as "Failed to load resource" and failed WebSocket connections; anything else in
    // the console (a Content-Security-Policy violation, a console.error) is a fault.
    page.on('console', (m) => {
        if (m.type() !== 'error') return;
        const text = m.text();
        if (/^Failed to load resource\b/.test(text) || /^WebSocket connection to .* failed/.test(text)) return;
        consoleErrors.push(`${label}: ${text}`);
    });
    page.on('dialog', async (d) => {
        dialogs.push({ label, type: d.type(), message: d.message() });
        if (d.type() === 'alert') await d.dismiss();
        else await d.accept();
    });
    page.on('request', (r) => {
        const u = new URL(r.url());
        if (u.pathname === '/x') injectedRequests.push(`${label}: ${r.url()}`);
    });
    await page.goto(base + '/');
    return { context, page };
}

class User {
    constructor(key, nick) {
        this.key = key;
        this.name = `${key}_${TAG}`;
        this.nick = nick;
        this.password = PASSWORD;
        this.id = null;
        this.page = null;
        this.context = null;
        this.windowStart = null; // client-side start of the current anti-spam rate window
        this.sent = 0;
    }

    /** Waits, when needed, so that the next send stays within the `rate` limit. */
    async budget() {
        const now = Date.now();
        if (this.windowStart !== null && now > this.windowStart + RATE_WINDOW_SECS * 1000 + 500) {
            this.windowStart = null;
            this.sent = 0;
        }
        if (this.sent >= RATE_LIMIT) {
            const wait = this.windowStart + RATE_WINDOW_SECS * 1000 + 1000 - now;
            log(`    (waiting ${Math.ceil(wait / 1000)} s for ${this.key}'s anti-spam rate window)`);
            await sleep(wait);
            this.windowStart = null;
            this.sent = 0;
        }
        if (this.windowStart === null) this.windowStart = Date.now();
        this.sent += 1;
    }
}

/** Types `text` into the composer of `page` and sends it (Enter, or the send button). */
async function send(user, text, { page = user.page, button = false } = {}) {
    await user.budget();
    const composer = tid(page, 'composer');
    await composer.fill(text);
    if (button) await tid(page, 'send').click();
    else await composer.press('Enter');
    const m = await waitMessage(page, text, { mine: true });
    await waitFor('the composer to be emptied after sending', async () => {
        const v = await composer.inputValue();
        return { ok: v === '', seen: v };
    });
    return m;
}

async function registerViaUi(page, user, { email } = {}) {
    if (!(await isVisible(tid(page, 'register-user')))) await tid(page, 'show-register').click();
    await tid(page, 'register-user').fill(user.name);
    await tid(page, 'register-nick').fill(user.nick);
    await tid(page, 'register-password').fill(user.password);
    if (email !== undefined) await tid(page, 'register-email').fill(email);
    const response = page.waitForResponse((r) => r.url().endsWith('/user/register') && r.request().method() === 'POST');
    await tid(page, 'register-submit').click();
    const r = await response;
    assert(r.status() === 201, `POST /user/register answered ${r.status()}: ${await r.text()}`);
    user.id = (await r.json()).user.id;
    // The page either logs the new user in or returns to the login form.
    const outcome = await waitFor('the page to leave the register form', async () => {
        if (await isVisible(tid(page, 'me'))) return { ok: true, value: 'main' };
        if ((await isVisible(tid(page, 'login-user'))) && !(await isVisible(tid(page, 'register-user'))))
            return { ok: true, value: 'login' };
        return { ok: false };
    });
    if (outcome === 'login') await loginViaUi(page, user);
    await waitLoggedIn(page, user);
}

async function loginViaUi(page, user) {
    if (!(await isVisible(tid(page, 'login-user')))) await tid(page, 'show-login').click();
    await tid(page, 'login-user').fill(user.name);
    await tid(page, 'login-password').fill(user.password);
    await tid(page, 'login-submit').click();
    await waitLoggedIn(page, user);
}

async function waitLoggedIn(page, user) {
    await waitText(page, 'me', /\S/);
    await waitText(page, 'connection-state', /^online$/i);
    await waitVisible(page, 'conversation-list');
}

async function registerViaApi(base, user) {
    const { context, page } = await newPage(`register-${user.key}`, base);
    try {
        const r = await apiFetch(page, 'POST', '/user/register', {
            user_name: user.name,
            nick_name: user.nick,
            password: user.password,
        });
        assert(r.status === 201, `registering ${user.name}: ${r.status} ${r.text}`);
        user.id = r.json.user.id;
    } finally {
        await context.close();
    }
}

async function searchUser(page, query, id) {
    await tid(page, 'user-search').fill(query);
    await tid(page, 'user-search-submit').click();
    const result = page.locator(`[data-testid="search-result"][data-user-id="${id}"]`);
    await waitFor(`search-result data-user-id=${id} for "${query}"`, async () => ({
        ok: await isVisible(result),
        seen: await page
            .locator('[data-testid="search-result"]')
            .evaluateAll((es) => es.map((e) => `${e.getAttribute('data-user-id')}:${e.textContent.trim()}`)),
    }));
    return result.first();
}

/** Records every text `connection-state` shows, so that short-lived states are seen too. */
async function recordConnectionStates(page) {
    await page.evaluate(() => {
        window.__e2eStates = [];
        const read = () => {
            const el = document.querySelector('[data-testid="connection-state"]');
            const t = el ? el.textContent.trim() : null;
            if (window.__e2eStates[window.__e2eStates.length - 1] !== t) window.__e2eStates.push(t);
        };
        read();
        window.__e2eObserver?.disconnect();
        window.__e2eObserver = new MutationObserver(read);
        window.__e2eObserver.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
}

// ---------------------------------------------------------------------------------------------
// The runner

const results = [];
const log = (s) => console.log(s);

async function failureScreenshots(n) {
    mkdirSync(FAILURES, { recursive: true });
    for (const { label, context } of contexts) {
        for (const [i, p] of context.pages().entries()) {
            await p
                .screenshot({ path: path.join(FAILURES, `${n}-${label}${i ? `-${i}` : ''}.png`), fullPage: true })
                .catch(() => {});
        }
    }
}

async function test(name, fn) {
    const n = results.length + 1;
    const t0 = Date.now();
    try {
        let timer;
        await Promise.race([
            fn(),
            new Promise((_, rej) => {
                timer = setTimeout(() => rej(new Error(`test timed out after ${TEST_TIMEOUT} ms`)), TEST_TIMEOUT);
            }),
        ]).finally(() => clearTimeout(timer));
        results.push({ name, ok: true });
        log(`ok ${n} - ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
        results.push({ name, ok: false, error: e });
        log(`not ok ${n} - ${name}\n    ${String(e.stack || e).split('\n').slice(0, 4).join('\n    ')}`);
        await failureScreenshots(n);
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario

const alice = new User('alice', 'Alice');
const bob = new User('bob', 'Bob');
const carol = new User('carol', 'Carol');
const mallory = new User('mallory', INJECTION);

async function main() {
    mkdirSync(IMAGES, { recursive: true });
    rmSync(FAILURES, { recursive: true, force: true });
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
    });
    const base = startServer('e2e', E2E_ENV);
    log(`# server e2e at ${base}`);
    let ab; // the conversation id of alice and bob
    let team; // the conversation id of alice's group, bob a member

    await test('the login view is shown at / (images/login.png)', async () => {
        const { context, page } = await newPage('anonymous', base);
        await waitVisible(page, 'login-user');
        await waitVisible(page, 'login-password');
        await waitVisible(page, 'login-submit');
        assert(!(await isVisible(tid(page, 'me'))), 'the main view (me) is visible without a session');
        await page.screenshot({ path: path.join(IMAGES, 'login.png') });

        // A refused registration shows the server's message next to the field.
        await tid(page, 'show-register').click();
        await waitVisible(page, 'register-user');
        await tid(page, 'register-user').fill(`short_${TAG}`);
        await tid(page, 'register-nick').fill('Shorty');
        await tid(page, 'register-password').fill('short');
        const response = page.waitForResponse((r) => r.url().endsWith('/user/register'));
        await tid(page, 'register-submit').click();
        const r = await response;
        const body = await r.json().catch(() => ({}));
        assert(r.status() === 400 && body.field === 'password', `expected 400 field password, got ${r.status()} ${JSON.stringify(body)}`);
        await waitText(page, 'error-password', new RegExp(body.message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
        assert(!(await isVisible(tid(page, 'me'))), 'logged in after a refused registration');

        // Wrong credentials show login-error.
        await tid(page, 'show-login').click();
        await waitVisible(page, 'login-user');
        await tid(page, 'login-user').fill(`nobody_${TAG}`);
        await tid(page, 'login-password').fill('wrong password 1');
        await tid(page, 'login-submit').click();
        await waitText(page, 'login-error', /\S/);
        await context.close();
    });

    await test('alice and bob register through the UI and are logged in', async () => {
        for (const user of [alice, bob]) {
            ({ context: user.context, page: user.page } = await newPage(user.key, base));
            await registerViaUi(user.page, user);
            const me = await visibleText(user.page, 'me');
            assert(me === user.nick, `me shows ${JSON.stringify(me)}, expected ${JSON.stringify(user.nick)}`);
            await waitFor('the lobby g:0 in the conversation list', async () => ({
                ok: await isVisible(conversationItem(user.page, 'g:0')),
                seen: await listOrder(user.page),
            }));
        }
        ab = convId(alice.id, bob.id);
    });

    await test('alice searches bob and starts a chat; bob sees the unread badge; delivered, then read', async () => {
        const result = await searchUser(alice.page, bob.name, bob.id);
        await result.getByTestId('start-chat').click();
        await waitVisible(alice.page, 'chat');
        await waitText(alice.page, 'chat-title', /Bob/);

        const first = `Hi Bob ${TAG}`;
        await send(alice, first);
        await waitStatus(alice.page, first, 'delivered');

        // Bob has not opened the conversation: it shows up with an unread badge.
        await waitFor(`bob's unread badge on ${ab} to be 1`, async () => {
            const n = await badgeCount(bob.page, ab);
            return { ok: n === 1, seen: { badge: n, list: await listOrder(bob.page) } };
        });
        const last = await conversationItem(bob.page, ab).getByTestId('last-message').first().textContent();
        assert(last.includes(first), `last-message shows ${JSON.stringify(last)}`);
        // A conversation first seen through a live message gets its title from the list the
        // page reloads for it: wait for that.
        await waitFor(`bob's conversation-title of ${ab} to name Alice`, async () => {
            const title = await conversationItem(bob.page, ab).getByTestId('conversation-title').first().textContent();
            return { ok: /Alice/.test(title), seen: title };
        });
        // Alice's message is still only delivered.
        const mine = (await readMessages(alice.page)).find((m) => m.content === first);
        assert(/\bdelivered\b/i.test(mine.status), `status before bob opened the chat: ${mine.status}`);

        await openConversation(bob.page, ab);
        await waitMessage(bob.page, first, { mine: false });
        await waitFor(`bob's unread badge on ${ab} to clear`, async () => {
            const n = await badgeCount(bob.page, ab);
            return { ok: n === 0, seen: n };
        });
        await waitStatus(alice.page, first, 'read');
    });

    await test('alice attaches a PNG with a caption; bob sees the thumbnail, linked to the full image', async () => {
        try {
            await openConversation(alice.page, ab);
            await openConversation(bob.page, ab);
            const caption = `a picture for you ${TAG}`;
            await attachFile(alice.page, { name: 'gradient.png', mimeType: 'image/png', buffer: PNG });
            await alice.budget();
            await tid(alice.page, 'composer').fill(caption);
            await tid(alice.page, 'composer').press('Enter');
            await waitMessage(alice.page, caption, { mine: true });
            await waitHidden(alice.page, 'upload');
            await waitMessage(bob.page, caption, { mine: false });
            const media = await waitFor('the thumbnail in bob\'s chat to load', async () => {
                const m = await readMedia(bob.page, caption);
                return { ok: !!m.img && m.img.complete && m.img.width > 0, value: m, seen: m };
            });
            assert(media.type === '2', `data-type ${media.type}, expected 2 (image)`);
            const id = (media.open?.href ?? '').replace(/^\/files\//, '');
            assert(/^[0-9a-f]{24}$/.test(id) && media.open.target === '_blank', `the image links to ${JSON.stringify(media.open)}`);
            assert(media.img.src === `/files/${id}/thumbnail`, `img src ${media.img.src}`);
            assert(media.img.width === 320 && media.img.height === 240,
                `the thumbnail is ${media.img.width}x${media.img.height}, expected 320x240 of the ${PNG_WIDTH}x${PNG_HEIGHT} PNG`);
            // The link opens the uploaded bytes, for bob as well (he can read the conversation).
            const full = await bob.page.evaluate(async (href) => {
                const r = await fetch(href);
                return { status: r.status, type: r.headers.get('content-type'), size: (await r.arrayBuffer()).byteLength };
            }, media.open.href);
            assert(full.status === 200 && full.type === 'image/png' && full.size === PNG.length,
                `GET ${media.open.href} as bob: ${JSON.stringify(full)} (uploaded ${PNG.length} bytes)`);
            const last = await conversationItem(bob.page, ab).getByTestId('last-message').first().textContent();
            assert(last.includes(caption), `bob's last-message shows ${JSON.stringify(last)}`);
        } finally {
            await clearComposer(alice.page);
        }
    });

    await test('bob sends a file without a caption and a location; alice sees a download link and a map link', async () => {
        try {
            const notes = Buffer.from(`meeting notes ${TAG}\n`.repeat(100)); // about 2 KB
            await attachFile(bob.page, { name: 'notes.txt', mimeType: 'text/plain', buffer: notes });
            await bob.budget();
            const before = (await readMessages(alice.page)).length;
            await tid(bob.page, 'send').click();
            await waitHidden(bob.page, 'upload');
            const file = await waitFor('the file message in alice\'s chat', async () => {
                const ms = await readMessages(alice.page);
                const m = ms.length > before ? ms[ms.length - 1] : null;
                return { ok: !!m && m.mine === 'false', value: m, seen: brief(ms) };
            });
            assert(file.content === null, `a message-content for a file without caption: ${JSON.stringify(file.content)}`);
            const link = await alice.page.locator(`[data-message-id="${file.id}"] [data-testid="attachment-download"]`).first();
            const download = { href: await link.getAttribute('href'), name: await link.getAttribute('download'), text: (await link.textContent()).trim() };
            assert(/^\/files\/[0-9a-f]{24}$/.test(download.href) && download.name === 'notes.txt',
                `download link ${JSON.stringify(download)}`);
            const kb = (notes.length / 1024).toFixed(1);
            assert(download.text.includes('notes.txt') && download.text.includes(`${kb} KB`), `download link text ${JSON.stringify(download.text)}, expected the name and ${kb} KB`);
            await waitFor('alice\'s list to preview the file as [file]', async () => {
                const t = await conversationItem(alice.page, ab).getByTestId('last-message').first().textContent();
                return { ok: t === '[file]', seen: t };
            });

            // No page sends places yet: bob's own socket does, with an address that is markup.
            await bob.budget();
            const address = `Alexanderplatz ${INJECTION}`;
            const caption = `meet me here ${TAG}`;
            const reply = await sendFrame(bob.page, {
                op_type: 1, to: alice.id, type: 5, content: caption, client_msg_id: `loc-${TAG}`,
                location: { lat: 52.52192, lon: 13.41324, address },
            });
            assert([50004, 50005].includes(reply.code), `location send: ${JSON.stringify(reply)}`);
            await waitMessage(alice.page, caption, { mine: false });
            const { place, type } = await readMedia(alice.page, caption);
            assert(type === '5' && place, `no message-location: type ${type}`);
            const map = new URL(place.href);
            assert(map.hostname === 'www.openstreetmap.org' && map.searchParams.get('mlat') === '52.52192'
                && map.searchParams.get('mlon') === '13.41324', `map link ${place.href}`);
            assert(place.text === '52.52192, 13.41324', `coordinates shown as ${JSON.stringify(place.text)}`);
            assert(place.address === address && !place.html.includes('<img'), `address rendered as ${JSON.stringify(place.html)}`);
        } finally {
            await clearComposer(bob.page);
        }
    });

    await test('an upload over files.max_bytes shows a readable error and sends nothing', async () => {
        try {
            const big = Buffer.alloc(MAX_UPLOAD_BYTES + 512 * 1024, 7);
            const before = (await readMessages(alice.page)).length;
            await tid(alice.page, 'attach-input').setInputFiles({ name: 'too-big.bin', mimeType: 'application/octet-stream', buffer: big });
            const error = await waitText(alice.page, 'upload-error', /\S/, 20_000);
            assert(/too-big\.bin/.test(error) && /too large/i.test(error) && /1\.0 MB/.test(error),
                `upload-error says ${JSON.stringify(error)}`);
            await waitHidden(alice.page, 'upload');
            await sleep(300);
            assert((await readMessages(alice.page)).length === before, 'a message was sent for a refused upload');
            // The next attachment clears the error.
            await attachFile(alice.page, { name: 'small.png', mimeType: 'image/png', buffer: gradientPng(8, 8) });
            await waitHidden(alice.page, 'upload-error');
            await tid(alice.page, 'upload-cancel').click();
            await waitHidden(alice.page, 'upload');
        } finally {
            await clearComposer(alice.page);
        }
    });

    await test('dropping a PNG on the chat and pasting one into the composer attach it; Remove deletes the upload', async () => {
        try {
            const page = alice.page;
            const bytes = [...gradientPng(24, 16)];
            const myFiles = async () => ((await apiFetch(page, 'GET', '/files')).json?.files ?? []).map((f) => f.name);
            for (const how of ['drop', 'paste']) {
                const name = `${how}-${TAG}.png`;
                const transfer = await page.evaluateHandle(({ bytes, name }) => {
                    const t = new DataTransfer();
                    t.items.add(new File([new Uint8Array(bytes)], name, { type: 'image/png' }));
                    return t;
                }, { bytes, name });
                if (how === 'drop') {
                    await tid(page, 'chat').dispatchEvent('dragover', { dataTransfer: transfer });
                    await tid(page, 'messages').dispatchEvent('drop', { dataTransfer: transfer });
                } else {
                    await tid(page, 'composer').evaluate((el, t) => {
                        el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: t, bubbles: true, cancelable: true }));
                    }, transfer);
                }
                await waitFor(`the ${how}ped image to be uploaded`, async () => {
                    const state = await tid(page, 'upload').getAttribute('data-state');
                    const shown = await visibleText(page, 'upload-name');
                    return { ok: state === 'ready' && shown?.includes(name), seen: { state, shown } };
                });
                assert((await myFiles()).includes(name), `${name} is not in GET /files`);
                await tid(page, 'upload-cancel').click();
                await waitHidden(page, 'upload');
                await waitFor(`${name} to be deleted`, async () => {
                    const names = await myFiles();
                    return { ok: !names.includes(name), seen: names };
                });
            }
            assert((await tid(page, 'composer').inputValue()) === '', 'the paste left text in the composer');
        } finally {
            await clearComposer(alice.page);
        }
    });

    await test('alice and bob chat both ways live; read receipts (images/chat-desktop.png)', async () => {
        const reply = `Hi Alice, nice to hear from you ${TAG}`;
        await send(bob, reply, { button: true });
        await waitMessage(alice.page, reply, { mine: false });
        await waitStatus(bob.page, reply, 'read'); // alice has the chat open
        const second = `How are things? ${TAG}`;
        await send(alice, second);
        await waitMessage(bob.page, second, { mine: false });
        await waitStatus(alice.page, second, 'read');
        const third = `All good here ${TAG}`;
        await send(bob, third);
        await waitMessage(alice.page, third, { mine: false });
        for (const p of [alice.page, bob.page]) {
            const ms = await readMessages(p);
            const ids = ms.map((m) => m.id);
            assert(new Set(ids).size === ids.length, `duplicate message ids: ${ids}`);
            const seqs = ms.map((m) => Number(m.seq));
            assert(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `messages not in seq order: ${seqs}`);
        }
        await alice.page.screenshot({ path: path.join(IMAGES, 'chat-desktop.png') });
    });

    await test('the typing indicator shows for the peer', async () => {
        await waitHidden(alice.page, 'typing', 15_000).catch(() => {});
        const composer = tid(bob.page, 'composer');
        await composer.click();
        // A few seconds of typing, as a person would (the page may throttle its typing frames).
        const typing = composer.pressSequentially('I am typing a longer answer, wait for it, nearly done now', { delay: 100 });
        await waitText(alice.page, 'typing', /bob.*typing/i);
        await typing;
        // Bob's own view does not show himself typing.
        assert(!(await isVisible(tid(bob.page, 'typing'))), 'bob sees a typing indicator for himself');
        await composer.fill('');
        await waitHidden(alice.page, 'typing', 20_000);
    });

    await test('friend request: alice adds bob, bob accepts, both list each other as friends', async () => {
        const result = await searchUser(alice.page, bob.name, bob.id);
        await result.getByTestId('add-friend').click();
        const request = bob.page.locator('[data-testid="friend-request"]');
        await waitVisible(bob.page, 'friend-request');
        assert((await request.first().getAttribute('data-request-id')) !== null, 'friend-request has no data-request-id');
        await request.first().getByTestId('accept-request').click();
        await waitHidden(bob.page, 'friend-request');
        const bobInAlice = alice.page.locator(`[data-testid="friend-item"][data-user-id="${bob.id}"]`);
        const aliceInBob = bob.page.locator(`[data-testid="friend-item"][data-user-id="${alice.id}"]`);
        await waitFor('bob in alice\'s friends', async () => ({ ok: await isVisible(bobInAlice) }));
        await waitFor('alice in bob\'s friends', async () => ({ ok: await isVisible(aliceInBob) }));
        await openConversation(alice.page, 'g:0');
        await bobInAlice.first().click();
        await waitText(alice.page, 'chat-title', /Bob/);
        await waitMessage(alice.page, `Hi Bob ${TAG}`, { mine: true });
    });

    await test('a message to an offline recipient shows "sent"', async () => {
        await registerViaApi(base, carol);
        const result = await searchUser(alice.page, carol.name, carol.id);
        await result.getByTestId('start-chat').click();
        await waitText(alice.page, 'chat-title', /Carol/);
        const text = `Carol, are you there? ${TAG}`;
        await send(alice, text);
        await waitStatus(alice.page, text, 'sent');
        await sleep(1000);
        const m = (await readMessages(alice.page)).find((x) => x.content === text);
        assert(/^\W*sent\W*$/i.test(m.status), `status changed to ${JSON.stringify(m.status)} with carol offline`);
        const ac = convId(alice.id, carol.id);
        await waitFor(`${ac} in alice's list with its last message`, async () => {
            const item = conversationItem(alice.page, ac);
            const t = (await item.count()) ? await item.getByTestId('last-message').first().textContent() : null;
            return { ok: t !== null && t.includes(text), seen: t };
        });
    });

    await test('delete for me hides a message only for alice; recall removes it for both', async () => {
        await openConversation(alice.page, ab);
        const gone = `please forget this ${TAG}`;
        await send(alice, gone);
        await waitMessage(bob.page, gone, { mine: false });
        const m = messageLocator(alice.page, gone);
        await m.hover();
        await m.getByTestId('message-delete').click();
        await waitNoMessage(alice.page, gone);
        await sleep(1000);
        assert((await readMessages(bob.page)).some((x) => x.content === gone), 'delete for me removed the message for bob too');

        const recalled = `oops, wrong chat ${TAG}`;
        await send(alice, recalled);
        await waitMessage(bob.page, recalled, { mine: false });
        const r = messageLocator(alice.page, recalled);
        await r.hover();
        await r.getByTestId('message-recall').click();
        await waitNoMessage(alice.page, recalled);
        await waitNoMessage(bob.page, recalled);
        // The peer's messages offer no recall.
        const peer = messageLocator(alice.page, `All good here ${TAG}`);
        await peer.hover();
        assert(!(await isVisible(peer.getByTestId('message-recall'))), 'a message-recall button on the peer\'s message');

        // Both stay gone after a reload (history from the server).
        await alice.page.reload();
        await waitLoggedIn(alice.page, alice);
        await openConversation(alice.page, ab);
        await waitMessage(alice.page, `All good here ${TAG}`);
        const after = await readMessages(alice.page);
        assert(!after.some((x) => x.content === gone || x.content === recalled), `still shown after reload: ${brief(after)}`);
    });

    await test('the lobby g:0 chat works and moves to the top of the list', async () => {
        await openConversation(alice.page, 'g:0');
        const hello = `hello lobby ${TAG}`;
        await send(alice, hello, { button: true });
        await waitFor(`g:0 first in bob's conversation list`, async () => {
            const order = await listOrder(bob.page);
            return { ok: order[0] === 'g:0', seen: order };
        });
        await openConversation(bob.page, 'g:0');
        await waitMessage(bob.page, hello, { mine: false });
        const answer = `hello alice, from the lobby ${TAG}`;
        await send(bob, answer);
        await waitMessage(alice.page, answer, { mine: false });
    });

    await test('an HTML injection in a nick name and in a message renders as text', async () => {
        ({ context: mallory.context, page: mallory.page } = await newPage(mallory.key, base));
        await registerViaUi(mallory.page, mallory);
        const me = await visibleText(mallory.page, 'me');
        assert(me === INJECTION, `me shows ${JSON.stringify(me)}`);
        await openConversation(mallory.page, 'g:0');
        await send(mallory, INJECTION);
        await waitMessage(alice.page, INJECTION, { mine: false });
        await waitMessage(bob.page, INJECTION, { mine: false });
        const result = await searchUser(alice.page, mallory.name, mallory.id);
        const shown = await result.textContent();
        assert(shown.includes(INJECTION), `search-result shows ${JSON.stringify(shown)}`);
        await sleep(500);
        for (const u of [alice, bob, mallory]) {
            const imgs = await u.page.locator('img[src="x"], [onerror]').count();
            assert(imgs === 0, `${u.key}'s page has ${imgs} injected element(s)`);
        }
        assert(injectedRequests.length === 0, `injected <img> loaded: ${injectedRequests}`);
        const alerts = dialogs.filter((d) => d.type === 'alert');
        assert(alerts.length === 0, `alert dialogs: ${JSON.stringify(alerts)}`);
    });

    await test('the anti-spam rate limit shows a notice with a countdown and keeps the text (images/antispam-notice.png)', async () => {
        const page = mallory.page;
        await openConversation(page, 'g:0');
        const composer = tid(page, 'composer');
        let refused = null;
        let passed = 0;
        for (let i = 1; i <= RATE_LIMIT + 2 && refused === null; i++) {
            const text = `spam ${i} ${TAG}`;
            await composer.fill(text);
            await composer.press('Enter');
            const outcome = await waitFor(`"${text}" to be sent or refused`, async () => {
                if (await isVisible(tid(page, 'antispam-notice'))) return { ok: true, value: 'refused' };
                const ms = await readMessages(page);
                const m = ms.find((x) => x.content === text && x.mine === 'true' && x.id);
                if (m && (await composer.inputValue()) === '') return { ok: true, value: 'sent' };
                return { ok: false, seen: brief(ms) };
            });
            if (outcome === 'refused') refused = text;
            else passed += 1;
        }
        assert(refused !== null, `no antispam-notice after ${passed} messages`);
        log(`    (refused after ${passed} spam messages; the injection message counted too)`);
        const notice = await visibleText(page, 'antispam-notice');
        assert(/rate/i.test(notice), `antispam-notice does not name the rule: ${JSON.stringify(notice)}`);
        const value = await composer.inputValue();
        assert(value === refused, `composer holds ${JSON.stringify(value)}, expected the unsent ${JSON.stringify(refused)}`);
        // The refused message is not in the chat.
        await sleep(300);
        const ms = await readMessages(page);
        assert(!ms.some((x) => x.content === refused && x.id && x.status && !/fail|error|refus/i.test(x.status)),
            `the refused message is shown as sent: ${brief(ms)}`);
        const n0 = (notice.match(/\d+/g) || []).map(Number);
        assert(n0.length > 0, `no countdown number in ${JSON.stringify(notice)}`);
        await page.screenshot({ path: path.join(IMAGES, 'antispam-notice.png') });
        await sleep(2500);
        const later = await visibleText(page, 'antispam-notice');
        assert(later !== null, 'the antispam-notice disappeared after 2.5 s');
        const n1 = (later.match(/\d+/g) || []).map(Number);
        assert(n0.some((v, i) => n1[i] !== undefined && n1[i] < v), `countdown did not go down: ${JSON.stringify(notice)} -> ${JSON.stringify(later)}`);
        assert((await composer.inputValue()) === refused, 'the unsent text left the composer');
    });

    await test('a dropped socket shows "reconnecting", then "online", and the missed message shows once', async () => {
        await openConversation(alice.page, ab);
        await openConversation(bob.page, ab);
        await waitText(bob.page, 'connection-state', /^online$/i);
        const hasHook = await bob.page.evaluate(() => typeof window.__chat?.dropSocket === 'function');
        assert(hasHook, 'window.__chat.dropSocket() is missing');
        await recordConnectionStates(bob.page);
        await bob.context.setOffline(true);
        await bob.page.evaluate(() => window.__chat.dropSocket());
        await waitFor('connection-state to show "reconnecting"', async () => {
            const states = await bob.page.evaluate(() => window.__e2eStates);
            return { ok: states.some((s) => /^reconnecting$/i.test(s ?? '')), seen: states };
        });
        const missed = `sent while you were away ${TAG}`;
        await send(alice, missed);
        const stillDown = /^reconnecting$/i.test((await visibleText(bob.page, 'connection-state')) ?? '');
        log(`    (bob was ${stillDown ? 'still reconnecting' : 'already back online'} when alice's message was stored)`);
        await sleep(1500);
        await bob.context.setOffline(false);
        await waitText(bob.page, 'connection-state', /^online$/i, 40_000);
        await waitMessage(bob.page, missed, { mine: false }, 15_000);
        await sleep(2000);
        const ms = await readMessages(bob.page);
        const copies = ms.filter((x) => x.content === missed).length;
        assert(copies === 1, `the missed message is shown ${copies} times`);
        const ids = ms.map((m) => m.id);
        assert(new Set(ids).size === ids.length, `duplicate message ids after catch-up: ${ids}`);
        const seqs = ms.map((m) => Number(m.seq));
        assert(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `messages not in seq order after catch-up: ${seqs}`);
        const states = await bob.page.evaluate(() => window.__e2eStates);
        log(`    (connection states seen: ${states.join(' -> ')})`);
        // Bob read it with the chat open: alice sees the receipt.
        await waitStatus(alice.page, missed, 'read', 15_000);
    });

    await test('a phone-width viewport (390x844) shows a usable chat (images/chat-mobile.png)', async () => {
        const { context, page } = await newPage('bob-phone', base, PHONE);
        await loginViaUi(page, bob);
        await openConversation(page, ab);
        await waitMessage(page, `Hi Bob ${TAG}`, { mine: false });
        const text = `on my phone now ${TAG}`;
        await send(bob, text, { page });
        await waitMessage(alice.page, text, { mine: false });
        await waitStatus(page, text, 'read');
        for (const id of ['composer', 'send', 'messages']) {
            const box = await tid(page, id).first().boundingBox();
            assert(box && box.width > 0 && box.height > 0, `${id} has no size`);
            assert(box.x >= 0 && box.x + box.width <= 391 && box.y >= 0 && box.y + box.height <= 845,
                `${id} is outside the 390x844 viewport: ${JSON.stringify(box)}`);
        }
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert(overflow <= 1, `the page scrolls sideways by ${overflow} px`);
        await page.screenshot({ path: path.join(IMAGES, 'chat-mobile.png') });
        await context.close();
    });

    await test('settings: a wrong old password and a short new password show field errors', async () => {
        const page = alice.page;
        await tid(page, 'open-settings').click();
        await waitVisible(page, 'old-password');
        await tid(page, 'old-password').fill('not my password 1');
        await tid(page, 'new-password').fill('a brand new password');
        await tid(page, 'change-password-submit').click();
        await waitText(page, 'settings-error-old_password', /\S/);
        await tid(page, 'old-password').fill(alice.password);
        await tid(page, 'new-password').fill('short');
        await tid(page, 'change-password-submit').click();
        await waitText(page, 'settings-error-new_password', /\S/);
        await tid(page, 'settings-close').click();
        await waitHidden(page, 'old-password');
        await waitText(page, 'connection-state', /^online$/i);
    });

    await test('groups: alice creates one, bob joins by id, members are listed, messages flow', async () => {
        const name = `Team ${TAG}`;
        const before = new Set(await listOrder(alice.page));
        await tid(alice.page, 'group-name-input').fill(name);
        await tid(alice.page, 'create-group').click();
        const group = await waitFor(`a new group conversation "${name}" in alice's list`, async () => {
            const order = await listOrder(alice.page);
            const g = order.find((c) => c.startsWith('g:') && c !== 'g:0' && !before.has(c));
            return { ok: !!g, value: g, seen: order };
        });
        const title = await conversationItem(alice.page, group).getByTestId('conversation-title').first().textContent();
        assert(title.includes(name), `conversation-title of ${group} is ${JSON.stringify(title)}`);
        await tid(bob.page, 'join-group-input').fill(group.slice(2));
        await tid(bob.page, 'join-group').click();
        await openConversation(bob.page, group);
        await openConversation(alice.page, group);
        await tid(alice.page, 'show-members').click();
        await waitFor('alice and bob among the members', async () => {
            const members = await alice.page.getByTestId('member').allTextContents();
            return { ok: members.some((m) => m.includes('Alice')) && members.some((m) => m.includes('Bob')), seen: members };
        });
        const text = `welcome to the team ${TAG}`;
        await send(alice, text);
        await waitMessage(bob.page, text, { mine: false });
        team = group;
    });

    await test('edit: alice edits from the message actions and with ↑; bob sees the new text and "(edited)"', async () => {
        await openConversation(alice.page, ab);
        await openConversation(bob.page, ab);
        const original = `please edit me ${TAG}`;
        const { id } = await send(alice, original);
        await waitMessage(bob.page, original, { mine: false });

        await messageAction(alice.page, id, 'message-edit');
        await waitVisible(alice.page, 'edit-bar');
        const composer = tid(alice.page, 'composer');
        assert((await composer.inputValue()) === original, `the composer holds ${JSON.stringify(await composer.inputValue())} to edit`);
        const once = `edited once ${TAG}`;
        await composer.fill(once);
        await composer.press('Enter');
        await waitHidden(alice.page, 'edit-bar');
        assert((await composer.inputValue()) === '', 'the composer is not empty after the edit');
        for (const page of [alice.page, bob.page]) {
            const m = await waitMessage(page, once);
            assert(m.id === id, `the edit shows as another message (${m.id}, edited ${id})`);
            await waitFor('the "(edited)" mark', async () => ({ ok: await isVisible(messageById(page, id).getByTestId('message-edited')) }));
        }
        assert(!(await readMessages(bob.page)).some((m) => m.content === original), 'bob still sees the old text');

        // ↑ in the empty composer edits the last own text message; Esc gives up.
        await composer.click();
        await composer.press('ArrowUp');
        await waitVisible(alice.page, 'edit-bar');
        assert((await composer.inputValue()) === once, `↑ put ${JSON.stringify(await composer.inputValue())} in the composer`);
        await composer.press('Escape');
        await waitHidden(alice.page, 'edit-bar');
        assert((await composer.inputValue()) === '', 'Esc left the text to edit in the composer');
        await composer.press('ArrowUp');
        const twice = `edited twice ${TAG}`;
        await composer.fill(twice);
        await composer.press('Enter');
        await waitMessage(bob.page, twice, { mine: false });
        await waitNoMessage(bob.page, once);
        // Only the sender's own messages offer an edit.
        const peer = messageLocator(alice.page, `All good here ${TAG}`);
        await waitFor('the actions of the peer\'s message on hover', async () => {
            await peer.hover({ timeout: 2000 });
            return { ok: await isVisible(peer.getByTestId('message-reply')) };
        });
        assert(!(await isVisible(peer.getByTestId('message-edit'))), 'an Edit action on the peer\'s message');
    });

    await test('reply: bob answers alice\'s message; alice sees the quote, which follows an edit and a recall', async () => {
        const original = `which day suits you ${TAG}`;
        const { id } = await send(alice, original);
        await waitMessage(bob.page, original, { mine: false });
        await messageAction(bob.page, id, 'message-reply');
        await waitVisible(bob.page, 'reply-bar');
        const barText = await visibleText(bob.page, 'reply-bar-excerpt');
        assert(barText === original, `reply-bar-excerpt shows ${JSON.stringify(barText)}`);
        assert((await visibleText(bob.page, 'reply-bar-author')) === alice.nick, 'reply-bar-author does not name Alice');
        const answer = `Tuesday works ${TAG}`;
        const sent = await send(bob, answer);
        await waitHidden(bob.page, 'reply-bar');
        const shown = await waitMessage(alice.page, answer, { mine: false });
        assert(shown.id === sent.id, 'the answer has another id for alice');
        let quote = await readQuote(alice.page, shown.id);
        assert(quote && quote.to === id && quote.author === alice.nick && quote.excerpt === original && !quote.recalled,
            `alice sees the quote as ${JSON.stringify(quote)}`);

        // A click on the quote shows the original.
        await messageById(alice.page, shown.id).getByTestId('message-quote').click();
        await waitShownAt(alice.page, id);

        // The quote follows an edit of the original, live.
        const fixed = `which day suits you best ${TAG}`;
        await messageAction(alice.page, id, 'message-edit');
        await tid(alice.page, 'composer').fill(fixed);
        await tid(alice.page, 'composer').press('Enter');
        await waitFor('bob\'s quote to show the edited text', async () => {
            quote = await readQuote(bob.page, sent.id);
            return { ok: quote?.excerpt === fixed, seen: quote };
        });

        // Once the original is recalled, the quote says so.
        await messageAction(alice.page, id, 'message-recall');
        await waitNoMessage(bob.page, fixed);
        for (const page of [alice.page, bob.page]) {
            await waitFor('the quote to show the original was recalled', async () => {
                quote = await readQuote(page, sent.id);
                return { ok: quote?.recalled === true && /recalled/i.test(quote.excerpt) && !quote.excerpt.includes(TAG), seen: quote };
            });
        }
    });

    await test('reactions: alice picks 👍, bob sees the count live and adds his; a click takes one back', async () => {
        const text = `react to this ${TAG}`;
        const { id } = await send(bob, text);
        await waitMessage(alice.page, text, { mine: false });
        await messageAction(alice.page, id, 'message-react');
        await waitVisible(alice.page, 'reaction-picker');
        await messageById(alice.page, id).locator('[data-testid="reaction-option"][data-emoji="👍"]').click();
        await waitHidden(alice.page, 'reaction-picker');
        await waitReactions(alice.page, id, [{ emoji: '👍', count: 1, me: true }], 'alice\'s 👍 under the message');
        await waitReactions(bob.page, id, [{ emoji: '👍', count: 1, me: false }], 'bob to see alice\'s 👍');

        await messageById(bob.page, id).locator('[data-testid="reaction"][data-emoji="👍"]').click();
        await waitReactions(bob.page, id, [{ emoji: '👍', count: 2, me: true }], 'bob\'s 👍 counted');
        await waitReactions(alice.page, id, [{ emoji: '👍', count: 2, me: true }], 'alice to see two 👍');

        await messageById(alice.page, id).locator('[data-testid="reaction"][data-emoji="👍"]').click();
        await waitReactions(alice.page, id, [{ emoji: '👍', count: 1, me: false }], 'alice\'s 👍 taken back');
        await waitReactions(bob.page, id, [{ emoji: '👍', count: 1, me: true }], 'bob to see one 👍 left');

        // The counts come from the server after a reload too.
        await bob.page.reload();
        await waitLoggedIn(bob.page, bob);
        await openConversation(bob.page, ab);
        await waitMessage(bob.page, text);
        await waitReactions(bob.page, id, [{ emoji: '👍', count: 1, me: true }], 'bob\'s 👍 after a reload');
    });

    await test('search: bob finds a message by accent- and case-folded words; a click opens the chat at it', async () => {
        const text = `Rendez-vous au Café Crème ${TAG}`;
        const { id } = await send(alice, text);
        await waitMessage(bob.page, text, { mine: false });
        await openConversation(bob.page, 'g:0');

        // Under 2 characters: the server's message. (Opening the lobby moves the focus to the
        // composer as it settles; a fill that lands while it does is made again.)
        await waitFor('the too-short search refused', async () => {
            await tid(bob.page, 'message-search').fill('c');
            if ((await tid(bob.page, 'message-search').inputValue()) !== 'c') {
                return { ok: false, seen: 'the search box lost its text' };
            }
            await tid(bob.page, 'message-search-submit').click();
            const t = await waitText(bob.page, 'message-search-error', /2 characters/, 3000).catch(() => null);
            return { ok: t !== null, value: t, seen: t };
        });

        await tid(bob.page, 'message-search').fill(`CAFE creme ${TAG.toUpperCase()}`);
        await tid(bob.page, 'message-search-submit').click();
        const results = bob.page.getByTestId('message-search-result');
        await waitFor('one search result', async () => {
            const n = await results.count();
            return { ok: n === 1, seen: n };
        });
        assert((await visibleText(bob.page, 'message-search-error')) === null, 'message-search-error still shown');
        const hit = results.first();
        assert((await hit.getAttribute('data-conversation')) === ab && (await hit.getAttribute('data-message-id')) === id,
            `the hit is ${await hit.getAttribute('data-conversation')} / ${await hit.getAttribute('data-message-id')}`);
        const shown = (await hit.getByTestId('message-search-text').textContent()).trim();
        assert(shown.includes(text), `the hit shows ${JSON.stringify(shown)}`);
        assert((await hit.getByTestId('message-search-where').textContent()).includes(alice.nick), 'the hit does not name the chat');
        await hit.click();
        await waitText(bob.page, 'chat-title', /Alice/);
        await waitShownAt(bob.page, id);

        // A word nobody wrote finds nothing.
        await tid(bob.page, 'message-search').fill(`nobody wrote this ${TAG}x`);
        await tid(bob.page, 'message-search-submit').click();
        await waitText(bob.page, 'message-search-count', /^No messages/);
        await tid(bob.page, 'message-search-clear').click();
        await waitHidden(bob.page, 'message-search-results');
    });

    await test('pins: bob pins a message; alice sees the pinned bar live, it shows the message; alice unpins it', async () => {
        await openConversation(alice.page, ab);
        await openConversation(bob.page, ab);
        const text = `the address is 12 Main Street ${TAG}`;
        const { id } = await send(alice, text);
        await waitMessage(bob.page, text, { mine: false });
        await messageAction(bob.page, id, 'message-pin');
        for (const page of [bob.page, alice.page]) {
            await waitText(page, 'pinned-text', new RegExp(`12 Main Street ${TAG}`));
            await waitFor('the message marked as pinned', async () => ({ ok: await isVisible(messageById(page, id).getByTestId('message-pinned')) }));
            await waitFor('the notice of the pin', async () => {
                const ms = await readMessages(page);
                return { ok: ms.some((m) => m.content && /Bob pinned/.test(m.content) && m.content.includes('Main Street')), seen: brief(ms) };
            });
        }
        // Far from the bottom of the chat, a click on the bar scrolls back to the pinned message.
        await tid(alice.page, 'messages').evaluate((list) => { list.scrollTop = 0; });
        await tid(alice.page, 'pinned-open').click();
        await waitShownAt(alice.page, id);
        await tid(alice.page, 'pinned-unpin').click();
        await waitHidden(alice.page, 'pinned-bar');
        await waitHidden(bob.page, 'pinned-bar');
        assert(!(await isVisible(messageById(bob.page, id).getByTestId('message-pinned'))), 'still marked as pinned for bob');
    });

    await test('mentions: alice completes @Bob in the group; bob gets an @ badge and sees the mention of him highlighted', async () => {
        await openConversation(bob.page, 'g:0');
        await openConversation(alice.page, team);
        const composer = tid(alice.page, 'composer');
        await composer.fill('');
        await composer.pressSequentially('@bo');
        await waitVisible(alice.page, 'mention-suggestions');
        const option = alice.page.locator(`[data-testid="mention-option"][data-user-id="${bob.id}"]`);
        await waitFor('bob offered for @bo', async () => ({ ok: await isVisible(option) }));
        await composer.press('Enter');
        await waitHidden(alice.page, 'mention-suggestions');
        const picked = await composer.inputValue();
        assert(picked === `@${bob.nick} `, `the completion wrote ${JSON.stringify(picked)}`);
        await alice.budget();
        const text = `@${bob.nick} can you check the notes ${TAG}`;
        await composer.fill(text);
        await composer.press('Enter');
        await waitMessage(alice.page, text, { mine: true });

        const badge = conversationItem(bob.page, team).getByTestId('mention-badge');
        await waitFor(`bob's @ badge on ${team}`, async () => ({ ok: await isVisible(badge) }));
        await openConversation(bob.page, team);
        const m = await waitMessage(bob.page, text, { mine: false });
        const seen = await messageById(bob.page, m.id).evaluate((li) => ({
            me: li.getAttribute('data-mentions-me'),
            marked: [...li.querySelectorAll('[data-testid="mention"]')].map((s) => ({ text: s.textContent, me: s.classList.contains('me') })),
        }));
        assert(seen.me === 'true' && seen.marked.some((s) => s.text === `@${bob.nick}` && s.me), `bob sees the mention as ${JSON.stringify(seen)}`);
        await waitFor('the @ badge to clear once read', async () => ({ ok: !(await isVisible(badge)) }));
    });

    await test('forward: alice forwards a message from the 1:1 chat to the group; bob sees it there, marked forwarded', async () => {
        await openConversation(bob.page, team);
        await openConversation(alice.page, ab);
        const text = `Tuesday works ${TAG}`;
        const original = await waitMessage(alice.page, text, { mine: false });
        await alice.budget();
        await messageAction(alice.page, original.id, 'message-forward');
        await waitVisible(alice.page, 'forward-dialog');
        await alice.page.locator(`[data-testid="forward-target"][data-conversation="${team}"]`).click();
        await waitHidden(alice.page, 'forward-dialog');
        await waitText(alice.page, 'chat-title', new RegExp(`Team ${TAG}`));
        const copy = await waitMessage(alice.page, text, { mine: true });
        assert(copy.id !== original.id, 'the forward has the original\'s id');
        const m = await waitMessage(bob.page, text, { mine: false });
        const label = (await messageById(bob.page, m.id).getByTestId('message-forwarded').textContent()).trim();
        assert(/^Forwarded/.test(label), `message-forwarded says ${JSON.stringify(label)}`);
    });

    await test('back from offline, bob sees the edits, reactions and recalls he missed (op 7 changed_since)', async () => {
        await openConversation(alice.page, ab);
        await openConversation(bob.page, ab);
        const before = `change me while he is away ${TAG}`;
        const gone = `recall me while he is away ${TAG}`;
        const { id } = await send(alice, before);
        const recalled = await send(alice, gone);
        await waitMessage(bob.page, before, { mine: false });
        await waitMessage(bob.page, gone, { mine: false });
        await waitText(bob.page, 'connection-state', /^online$/i);

        await bob.context.setOffline(true);
        await bob.page.evaluate(() => window.__chat.dropSocket());
        await waitText(bob.page, 'connection-state', /^reconnecting$/i);
        const after = `changed while he was away ${TAG}`;
        await messageAction(alice.page, id, 'message-edit');
        await tid(alice.page, 'composer').fill(after);
        await tid(alice.page, 'composer').press('Enter');
        await waitMessage(alice.page, after, { mine: true });
        await messageAction(alice.page, id, 'message-react');
        await messageById(alice.page, id).locator('[data-testid="reaction-option"][data-emoji="❤️"]').click();
        await waitReactions(alice.page, id, [{ emoji: '❤️', count: 1, me: true }], 'alice\'s ❤️');
        await messageAction(alice.page, recalled.id, 'message-recall');
        await waitNoMessage(alice.page, gone);
        // Nothing of it reached bob's page meanwhile.
        assert((await readMessages(bob.page)).some((m) => m.content === before), 'bob\'s page changed while offline');

        await bob.context.setOffline(false);
        await waitText(bob.page, 'connection-state', /^online$/i, 40_000);
        const m = await waitMessage(bob.page, after, { mine: false }, 15_000);
        assert(m.id === id, 'the edit came as another message');
        await waitFor('the "(edited)" mark', async () => ({ ok: await isVisible(messageById(bob.page, id).getByTestId('message-edited')) }));
        await waitReactions(bob.page, id, [{ emoji: '❤️', count: 1, me: false }], 'alice\'s ❤️ for bob');
        await waitNoMessage(bob.page, gone);
        const ids = (await readMessages(bob.page)).map((x) => x.id);
        assert(new Set(ids).size === ids.length, `duplicate message ids after the resume: ${ids}`);
    });

    await test('a phone-width viewport: a tap on a message shows its actions inside the screen', async () => {
        const { context, page } = await newPage('bob-phone-actions', base, PHONE);
        await loginViaUi(page, bob);
        await openConversation(page, ab);
        const m = await waitMessage(page, `react to this ${TAG}`, { mine: true });
        const actions = messageById(page, m.id).getByTestId('message-actions');
        // The list may still be settling (history, read marks) under the first tap: a user
        // whose tap missed taps again, and so does the test.
        await waitFor('the actions after a tap', async () => {
            if (!(await isVisible(actions))) {
                await messageById(page, m.id).getByTestId('message-content').tap();
                await page.waitForTimeout(300);
            }
            return { ok: await isVisible(actions) };
        });
        const box = await actions.boundingBox();
        assert(box && box.x >= 0 && box.x + box.width <= 391, `message-actions outside the 390 px screen: ${JSON.stringify(box)}`);
        await messageById(page, m.id).getByTestId('message-reply').tap();
        await waitVisible(page, 'reply-bar');
        const composer = await tid(page, 'composer').boundingBox();
        assert(composer && composer.y + composer.height <= 845, `the composer is below the screen: ${JSON.stringify(composer)}`);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert(overflow <= 1, `the page scrolls sideways by ${overflow} px`);
        await tid(page, 'reply-cancel').tap();
        await waitHidden(page, 'reply-bar');
        await context.close();
    });


    await test('history paging: scrolling up loads older messages without duplicates (server e2e-history)', async () => {
        const hbase = startServer('e2e-history', HISTORY_ENV);
        log(`# server e2e-history at ${hbase}`);
        const sender = new User('hsend', 'Henry');
        const reader = new User('hread', 'Rita');
        await registerViaApi(hbase, sender);
        await registerViaApi(hbase, reader);
        // The sender seeds the history over a WebSocket of its own, from a page of that origin.
        const seed = await newPage('history-seed', hbase);
        await seed.page.goto(hbase + '/ping');
        const login = await apiFetch(seed.page, 'POST', '/user/login', { user_name: sender.name, password: sender.password });
        assert(login.status === 200, `login: ${login.status} ${login.text}`);
        const codes = await seed.page.evaluate(
            async ({ to, n }) => {
                const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
                await new Promise((res, rej) => {
                    ws.onopen = res;
                    ws.onerror = () => rej(new Error('WebSocket error'));
                });
                const codes = [];
                for (let i = 1; i <= n; i++) {
                    const id = `seed-${i}`;
                    const reply = new Promise((res) => {
                        const h = (ev) => {
                            const f = JSON.parse(ev.data);
                            if (f.client_msg_id === id) {
                                ws.removeEventListener('message', h);
                                res(f);
                            }
                        };
                        ws.addEventListener('message', h);
                    });
                    ws.send(JSON.stringify({ op_type: 1, to, type: 1, content: `history ${i}`, client_msg_id: id }));
                    codes.push((await reply).code);
                    await new Promise((r) => setTimeout(r, 110)); // under the per-connection frame budget
                }
                ws.close();
                return codes;
            },
            { to: reader.id, n: HISTORY_COUNT },
        );
        assert(codes.every((c) => c === 50004 || c === 50005), `seed replies: ${codes}`);
        await seed.context.close();

        const { page } = await newPage('history-reader', hbase);
        await loginViaUi(page, reader);
        const conv = convId(sender.id, reader.id);
        await waitFor(`unread badge ${HISTORY_COUNT} on ${conv}`, async () => {
            const n = await badgeCount(page, conv);
            return { ok: n === HISTORY_COUNT, seen: n };
        });
        await openConversation(page, conv);
        await waitMessage(page, `history ${HISTORY_COUNT}`, { mine: false });
        let ms = await readMessages(page);
        const firstPage = ms.length;
        assert(firstPage < HISTORY_COUNT, `all ${firstPage} messages were loaded at once: nothing to page`);
        for (let round = 0; round < 20 && ms.length < HISTORY_COUNT; round++) {
            const before = ms.length;
            const messages = tid(page, 'messages');
            await messages.hover();
            await page.mouse.wheel(0, -10_000);
            await messages.evaluate((el) => {
                el.scrollTop = 0;
            });
            ms = await waitFor(`older messages to load (had ${before})`, async () => {
                const now = await readMessages(page);
                return { ok: now.length > before, value: now, seen: now.length };
            });
            // Let a page that arrived settle before the next scroll.
            await sleep(300);
            ms = await readMessages(page);
        }
        // One more scroll at the top loads nothing new.
        await tid(page, 'messages').evaluate((el) => {
            el.scrollTop = 0;
        });
        await sleep(1500);
        ms = await readMessages(page);
        const ids = ms.map((m) => m.id);
        const seqs = ms.map((m) => Number(m.seq));
        const contents = ms.map((m) => m.content);
        assert(ms.length === HISTORY_COUNT, `${ms.length} messages shown, expected ${HISTORY_COUNT} (first page ${firstPage})`);
        assert(new Set(ids).size === ids.length, 'duplicate data-message-id');
        assert(new Set(seqs).size === seqs.length, 'duplicate data-seq');
        assert(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `not in seq order: ${seqs}`);
        const expected = Array.from({ length: HISTORY_COUNT }, (_, i) => `history ${i + 1}`);
        assert(JSON.stringify(contents) === JSON.stringify(expected), `contents: ${contents}`);
        log(`    (first page ${firstPage} messages, all ${HISTORY_COUNT} after scrolling up)`);
        stopServer('e2e-history');
    });

    await test('logout returns to the login view, also after a reload', async () => {
        await tid(alice.page, 'logout').click();
        await waitVisible(alice.page, 'login-user');
        await waitHidden(alice.page, 'me');
        await alice.page.reload();
        await waitVisible(alice.page, 'login-user');
        assert(!(await isVisible(tid(alice.page, 'me'))), 'still logged in after logout and reload');
    });

    await test('no uncaught errors or console errors in the pages and no dialogs opened by message text', async () => {
        assert(pageErrors.length === 0, `page errors: ${pageErrors.join(' | ')}`);
        assert(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
        const alerts = dialogs.filter((d) => d.type === 'alert');
        assert(alerts.length === 0, `alerts: ${JSON.stringify(alerts)}`);
    });
}

let fatal = null;
try {
    await main();
} catch (e) {
    fatal = e;
    console.error(`fatal: ${e.stack || e}`);
} finally {
    if (browser) await browser.close().catch(() => {});
    stopAllServers();
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed + (fatal ? 1 : 0);
if (dialogs.length) log(`# dialogs: ${JSON.stringify(dialogs)}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
