import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import {
  createCleanup,
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

interface RawConnection {
  closed: boolean;
  destroy(): void;
}

/**
 * A raw TCP connection that sends nothing. Resolves once the proxy dropped it, or once its fd
 * count grew, or after a second: a drop at accept is immediate, so a connection still open by
 * then was accepted (only ever relied on for connections opened before a dropped one).
 */
async function openRaw(port: number, pid: number): Promise<RawConnection> {
  const before = fdCount(pid);
  const socket = connect(port, '127.0.0.1');
  const state: RawConnection = { closed: false, destroy: () => socket.destroy() };
  socket.on('error', () => {});
  socket.on('close', () => (state.closed = true));
  await new Promise((resolve) => socket.once('connect', resolve));
  const deadline = Date.now() + 1000;
  await waitFor(() => state.closed || fdCount(pid) > before || Date.now() > deadline, {
    timeoutMs: 5000,
  });
  return state;
}

/*
 * Out of file descriptors: the binary runs under a low RLIMIT_NOFILE (prlimit on its pid, as
 * `ulimit -n` would set it), connections are opened until it has none left, then released.
 */
describe('EMFILE', { timeout: 60_000, skip: !hasPrlimit() && 'needs Linux and prlimit' }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('is survived and logged; live tunnels keep working; service resumes once fds are free', async () => {
    const backend = await startEchoBackend({ id: 'b1' });
    cleanup.defer(() => backend.close());
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'b1', url: backend.url }],
      log: { level: 'info', access: false },
    });
    cleanup.defer(async () => {
      await wslb.stop();
    });
    const pid = wslb.child.pid!;
    const base = fdCount(pid);
    // Room for about a dozen tunnels (two fds each), no more.
    const limit = base + 24;
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`]);

    const opened: OpenedClient[] = [];
    cleanup.defer(() => closeAll(opened));
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
    /*
     * Connections arriving with no fd left are dropped at accept, not queued forever. Raw
     * connections are opened one at a time until one is dropped: from then on no fd is free
     * below the limit, whatever the parity the tunnels left behind.
     */
    const idle: RawConnection[] = [];
    cleanup.defer(async () => idle.forEach((s) => s.destroy()));
    for (let i = 0; i < 8 && !idle.some((s) => s.closed); i++) {
      idle.push(await openRaw(wslb.port, pid));
    }
    await waitFor(() => idle.some((s) => s.closed), {
      timeoutMs: 2000,
      message: 'a connection dropped at accept',
    });
    assert.equal(wslb.child.exitCode, null, 'the proxy is alive');

    /*
     * A drop at accept never reaches the proxy (the kernel queue is drained by libuv), but a
     * dial that runs out of fds is logged: free exactly one fd, so the next WebSocket is
     * accepted and its backend dial fails.
     */
    // Connections are accepted in order: one opened before the dropped one is held by the proxy.
    const held = idle
      .slice(
        0,
        idle.findIndex((s) => s.closed),
      )
      .find((s) => !s.closed);
    if (held) {
      const before = fdCount(pid);
      held.destroy();
      await waitFor(() => fdCount(pid) < before, { message: 'the held connection released' });
    } else {
      const before = fdCount(pid);
      await closeAll(opened.splice(-1));
      await waitFor(() => fdCount(pid) <= before - 2, { message: 'a tunnel released' });
      const raw = await openRaw(wslb.port, pid);
      idle.push(raw);
      assert.equal(raw.closed, false, 'one of the two freed fds is held by a raw connection');
    }
    await assert.rejects(openClient(wslb.url, {}, 3000), (err: { status?: number }) => {
      assert.equal(err.status, 502);
      return true;
    });
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
    idle.splice(0).forEach((s) => s.destroy());
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
