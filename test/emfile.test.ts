import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import {
  type OpenedClient,
  assertNoLeakedHandles,
  closeAll,
  openClient,
  roundTrip,
  runWslb,
  startEchoBackend,
  waitFor,
} from '@wslb/testing';
import { faultLines } from './helpers/fuzz-target.js';
import { fdCount } from './helpers/proc.js';

function hasPrlimit(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/*
 * Out of file descriptors: the binary runs under a low RLIMIT_NOFILE (prlimit on its pid, as
 * `ulimit -n` would set it), connections are opened until it has none left, then released.
 */
describe('EMFILE', { timeout: 60_000, skip: !hasPrlimit() && 'needs Linux and prlimit' }, () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
    await assertNoLeakedHandles();
  });

  it('is survived and logged; live tunnels keep working; service resumes once fds are free', async () => {
    const backend = await startEchoBackend({ id: 'b1' });
    cleanups.push(() => backend.close());
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'b1', url: backend.url }],
      log: { level: 'info', access: false },
    });
    cleanups.push(async () => {
      await wslb.stop();
    });
    const pid = wslb.child.pid!;
    const base = fdCount(pid);
    // Room for about a dozen tunnels (two fds each), no more.
    const limit = base + 24;
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`]);

    const opened: OpenedClient[] = [];
    cleanups.push(() => closeAll(opened));
    const refused: string[] = [];
    for (let i = 0; i < 40 && refused.length < 5; i++) {
      try {
        opened.push(await openClient(wslb.url, {}, 3000));
      } catch (err) {
        refused.push(String((err as { status?: number }).status ?? (err as Error).message));
      }
    }
    assert.ok(opened.length >= 5, `some tunnels opened before the limit (${opened.length})`);
    assert.ok(refused.length > 0, 'past the limit new connections are refused');
    // Accepted but unable to dial: 502 (or, with no fd left to accept, a dropped connection).
    assert.ok(
      refused.every((r) => r === '502' || /socket hang up|ECONNRESET|closed/i.test(r)),
      `refusals: ${refused.join(', ')}`,
    );
    // Connections arriving with no fd left are dropped at accept, not queued forever.
    const idle = await Promise.all(
      Array.from(
        { length: 5 },
        () =>
          new Promise<{ closed: boolean; destroy(): void }>((resolve) => {
            const socket = connect(wslb.port, '127.0.0.1');
            const state = { closed: false, destroy: () => socket.destroy() };
            socket.on('error', () => {});
            socket.on('close', () => (state.closed = true));
            socket.on('connect', () => resolve(state));
          }),
      ),
    );
    cleanups.push(async () => idle.forEach((s) => s.destroy()));
    await waitFor(() => idle.some((s) => s.closed), {
      timeoutMs: 2000,
      message: 'a connection dropped at accept',
    });

    assert.equal(wslb.child.exitCode, null, 'the proxy is alive');
    await wslb.waitForLog((l) => JSON.stringify(l).includes('EMFILE'), 2000);
    assert.deepEqual(
      faultLines(wslb.logs).filter((l) => l.code === 'WSLB_ERR_UNCAUGHT'),
      [],
      'no uncaught exception',
    );
    // The tunnels that were open before the limit was hit are untouched.
    for (const [i, c] of opened.entries()) {
      assert.equal((await roundTrip(c.ws, `still ${i}`)).data.toString(), `still ${i}`);
    }

    // Free the fds: service resumes.
    await closeAll(opened.splice(0));
    idle.forEach((s) => s.destroy());
    await waitFor(() => fdCount(pid) <= base + 2, { message: `proxy fds back near ${base}` });
    const again = await openClient(wslb.url);
    assert.equal((await roundTrip(again.ws, 'back')).data.toString(), 'back');
    await closeAll([again]);
    const res = await fetch(`${wslb.httpUrl}/after`);
    assert.equal(res.status, 200);
    await res.text();
    assert.equal(await wslb.stop(), 0);
  });
});
