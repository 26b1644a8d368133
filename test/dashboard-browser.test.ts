import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import {
  type EchoBackend,
  type OpenedClient,
  type RunningWslb,
  assertNoLeakedHandles,
  closeAll,
  openClients,
  roundTrip,
  runWslb,
  startEchoBackends,
} from '@wslb/testing';
import { getStatus } from './helpers/admin.js';
import { CHROMIUM, CHROMIUM_ARGS, ensureChromium } from './helpers/chromium.js';

// Installs chromium when missing (root); skips the suite only when that is impossible.
const skip = ensureChromium();
if (skip) console.log(`# skipping the dashboard browser test: ${skip}`);

describe('admin dashboard in headless Chromium', { skip, timeout: 60_000 }, () => {
  let backends: EchoBackend[] = [];
  let wslb: RunningWslb | undefined;
  let adminUrl = '';
  let context: BrowserContext | undefined;
  let page: Page;
  let profile = '';
  const clients: OpenedClient[] = [];

  before(async () => {
    backends = await startEchoBackends(3);
    wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [
        'round-robin',
        { use: 'health-check', options: { type: 'ws', interval: 300, timeout: 1000, rise: 1, fall: 2 } },
      ],
      admin: { host: '127.0.0.1', port: 0 },
      log: { level: 'info', access: false },
    });
    const line = await wslb.waitForLog((l) => l.msg === 'admin listening');
    adminUrl = `http://127.0.0.1:${line.port as number}`;
    profile = mkdtempSync(join(tmpdir(), 'wslb-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 20_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
  });

  after(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await closeAll(clients);
    if (wslb) assert.equal(await wslb.stop('SIGTERM'), 0);
    await Promise.all(backends.map((b) => b.close()));
    await assertNoLeakedHandles();
  });

  const row = (id: string, state?: string): string =>
    `#backends tr[data-backend="${id}"]${state ? `[data-state="${state}"]` : ''}`;

  it('shows backends live: connections, a killed backend turning down, and the drain button', async () => {
    await page.goto(`${adminUrl}/`);
    for (const id of ['b1', 'b2', 'b3']) await page.waitForSelector(row(id, 'up'), { timeout: 5000 });
    assert.equal(await page.textContent(`${row('b2')} .state`), 'up');

    const opened = await openClients(wslb!.url, 3);
    clients.push(...opened.clients);
    const changes = wslb!.logs.filter((l) => l.msg === 'backend state changed');
    assert.deepEqual(opened.perBackend, { b1: 1, b2: 1, b3: 1 }, JSON.stringify(changes));
    // The page polls: live and total connections show without a reload.
    await page.locator(`${row('b1')} td.active`, { hasText: /^1$/ }).waitFor({ timeout: 5000 });
    assert.equal(await page.textContent(`${row('b1')} td.total`), '1');
    assert.match((await page.textContent(`${row('b1')} td.check`)) ?? '', /ok/);

    await backends[1]!.kill();
    await page.waitForSelector(row('b2', 'down'), { timeout: 5000 });
    assert.equal(await page.textContent(`${row('b2')} .state`), 'down');
    assert.match((await page.textContent(`${row('b2')} td.check`)) ?? '', /failed/);

    await page.click(`${row('b1')} button.drain`);
    await page.waitForSelector(row('b1', 'draining'), { timeout: 5000 });
    const status = await getStatus(Number(new URL(adminUrl).port));
    assert.equal(status.backends.find((b) => b.id === 'b1')!.state, 'draining');
    // New sockets avoid the drained backend (b2 is down): all go to b3.
    const more = await openClients(wslb!.url, 2);
    clients.push(...more.clients);
    assert.deepEqual(more.perBackend, { b3: 2 });
    // The live socket on b1 was not dropped.
    const onB1 = clients.find((c) => c.backend === 'b1')!;
    assert.equal((await roundTrip(onB1.ws, 'kept')).data.toString(), 'kept');
    assert.equal(await page.isDisabled(`${row('b1')} button.drain`), true);

    await page.click(`${row('b1')} button.enable`);
    await page.waitForSelector(row('b1', 'up'), { timeout: 5000 });
    if (process.env.WSLB_SCREENSHOT)
      await page.screenshot({ path: process.env.WSLB_SCREENSHOT, fullPage: true });
  });
});
