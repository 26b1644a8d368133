/** Resource kinds that mean a server, socket or timer outlived its test. */
const LEAK_KINDS = new Set([
  'TCPServerWrap',
  'TCPSocketWrap',
  'TCPWRAP',
  'Timeout',
  'TLSWRAP',
  'ProcessWrap',
]);

/**
 * Fails when sockets, servers, child processes or timers are still active. Waits a little first,
 * because closing handles is asynchronous.
 */
export async function assertNoLeakedHandles(graceMs = 1000): Promise<void> {
  const deadline = Date.now() + graceMs;
  let leaked: string[] = [];
  for (;;) {
    leaked = process.getActiveResourcesInfo().filter((kind) => LEAK_KINDS.has(kind));
    if (leaked.length === 0) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 10));
  }
  const counts: Record<string, number> = {};
  for (const k of leaked) counts[k] = (counts[k] ?? 0) + 1;
  throw new Error(`leaked handles: ${JSON.stringify(counts)}`);
}
