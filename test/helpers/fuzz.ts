import { createHash } from 'node:crypto';
import { connect } from 'node:net';

/*
 * A seeded HTTP/WebSocket request fuzzer. Case `i` of seed `s` is generated from (s, i) alone, so
 * any failing case can be replayed by itself. Each case writes its bytes (maybe in pieces), maybe
 * half-closes, then waits for the proxy to close the connection; what came back must parse as
 * HTTP/1.x responses (a 101 may be followed by tunnel bytes), or be nothing at all.
 */

/** mulberry32: small, fast, good enough to pick inputs. */
export class Rng {
  #state: number;

  constructor(seed: number, index: number) {
    // Mix the two so neighbouring cases do not share streams.
    let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 0x632be5ab, 0xc2b2ae35);
    h ^= h >>> 16;
    this.#state = h >>> 0;
  }

  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  token(max: number): string {
    const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!#$%&*+^`|';
    let s = '';
    const n = 1 + this.int(max);
    for (let i = 0; i < n; i++) s += chars[this.int(chars.length)];
    return s;
  }
}

export interface FuzzCase {
  index: number;
  kind: string;
  /** The bytes, in the pieces they are written in. */
  pieces: Buffer[];
  /** Pause between pieces (ms). */
  delayMs: number;
  /** Half-close after the last piece. */
  end: boolean;
  /** Status the first answer must have, for cases left unmutated. */
  expect?: number;
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];
const ODD_METHODS = ['get', 'G ET', '', 'CONNECT', 'TRACE', 'PRI', 'M-SEARCH', 'GET\0', 'A'.repeat(300)];
const PATHS = ['/', '/a/b?c=d', '/chat/room?user=ana', '/socket.io/?EIO=4&transport=polling', '/x%20y'];
const ODD_PATHS = [
  '*',
  'http://example.com/x',
  '//',
  '/%00',
  '/\x7f',
  '',
  '/ /',
  'ws://127.0.0.1/',
  '/a#b',
  '\t/',
];
const ODD_VERSIONS = [
  'HTTP/1.0',
  'HTTP/0.9',
  'HTTP/2.0',
  'HTTP/1.2',
  'http/1.1',
  'HTTP/1.1 x',
  '',
  'HTTP/11',
];

function webSocketKey(rng: Rng): string {
  return rng.bytes(16).toString('base64');
}

function crlf(rng: Rng, odd: boolean): string {
  return odd ? rng.pick(['\n', '\r', '\r\r\n', '\n\r']) : '\r\n';
}

function oddHeader(rng: Rng): string {
  switch (rng.int(16)) {
    case 0:
      return `Content-Length: ${rng.pick(['-1', '1e3', ' 5', '5,5', '99999999999999999999', '0x10', '', 'abc'])}`;
    case 1:
      return `Transfer-Encoding: ${rng.pick(['Chunked', 'chunked, gzip', 'gzip, chunked', ' chunked', 'xchunked', 'identity', 'chunked\0'])}`;
    case 2:
      return `X-Folded: a\r\n  continued`;
    case 3:
      return 'NoColonHere';
    case 4:
      return 'Space Before : colon';
    case 5:
      return `X-Nul: a\0b`;
    case 6:
      return `X-Long: ${'v'.repeat(1000 + rng.int(20000))}`;
    case 7:
      return Array.from({ length: 50 + rng.int(300) }, (_, i) => `X-Many-${i}: ${i}`).join('\r\n');
    case 8:
      return `${rng.token(20)}: ${rng.bytes(rng.int(40)).toString('latin1')}`;
    case 9:
      return `Host: ${rng.pick(['', 'a b', 'x'.repeat(300), '127.0.0.1:99999', '[::1'])}`;
    case 10:
      return 'Host: one\r\nHost: two';
    case 11:
      return `Connection: ${rng.pick(['Upgrade', 'keep-alive, Upgrade', 'close', 'x-secret', 'Upgrade, close'])}`;
    case 12:
      return `Upgrade: ${rng.pick(['websocket', 'WebSocket', 'h2c', 'websocket, h2c', '', 'tls/1.0'])}`;
    case 13:
      return `Expect: ${rng.pick(['100-continue', '200-ok'])}`;
    case 14:
      return `\u00e9\u00e8: latin1`;
    default:
      return `: empty-name`;
  }
}

function chunkedBody(rng: Rng, valid: boolean): string {
  let body = '';
  const chunks = rng.int(4);
  for (let i = 0; i < chunks; i++) {
    const data = rng.token(60);
    body += `${data.length.toString(16)}${rng.chance(0.2) ? ';ext=1' : ''}\r\n${data}\r\n`;
  }
  if (valid) return `${body}0\r\n${rng.chance(0.2) ? 'X-Trailer: t\r\n' : ''}\r\n`;
  switch (rng.int(7)) {
    case 0:
      return `${body}zz\r\nabc\r\n0\r\n\r\n`;
    case 1:
      return `${body}-1\r\nabc\r\n0\r\n\r\n`;
    case 2:
      return `${body}ffffffffffffffffff\r\nabc\r\n`;
    case 3:
      return `${body}5\r\nabcdefgh\r\n0\r\n\r\n`;
    case 4:
      return `${body}3\r\nabc`;
    case 5:
      return `${body}0x10\r\n0123456789abcdef\r\n0\r\n\r\n`;
    default:
      return `${body}0\r\nbad trailer\r\n`;
  }
}

function plainRequest(rng: Rng, odd: boolean): { text: string; expect?: number } {
  const method = odd && rng.chance(0.3) ? rng.pick(ODD_METHODS) : rng.pick(METHODS);
  const path = odd && rng.chance(0.3) ? rng.pick(ODD_PATHS) : rng.pick(PATHS);
  const version = odd && rng.chance(0.3) ? rng.pick(ODD_VERSIONS) : 'HTTP/1.1';
  const nl = crlf(rng, odd && rng.chance(0.15));
  const headers = ['Host: 127.0.0.1'];
  if (rng.chance(0.3)) headers.push(`X-Id: ${rng.token(10)}`);
  if (odd) for (let i = rng.int(3); i >= 0; i--) headers.push(oddHeader(rng));
  let body = '';
  const withBody = method !== 'GET' && rng.chance(0.7);
  if (withBody && rng.chance(0.5)) {
    headers.push('Transfer-Encoding: chunked');
    body = chunkedBody(rng, !odd || rng.chance(0.4));
  } else if (withBody) {
    body = rng.token(200);
    const declared = odd && rng.chance(0.4) ? body.length + rng.int(20) - 10 : body.length;
    headers.push(`Content-Length: ${declared}`);
  }
  if (rng.chance(0.2)) headers.push('Connection: close');
  const text = `${method} ${path} ${version}${nl}${headers.join(nl)}${nl}${nl}${body}`;
  return { text, expect: odd ? undefined : 200 };
}

function upgradeRequest(rng: Rng, odd: boolean): { text: string; expect?: number } {
  const headers = ['Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket'];
  let expect: number | undefined = 101;
  let key = webSocketKey(rng);
  let version = '13';
  if (odd) {
    switch (rng.int(8)) {
      case 0:
        key = rng.pick(['', 'short', `${key}x`, 'a'.repeat(24), `${key.slice(0, 20)}=`, ' ']);
        expect = 400;
        break;
      case 1:
        version = rng.pick(['7', '0', '', '13, 8', '14', 'abc']);
        expect = 426;
        break;
      case 2:
        headers[2] = `Upgrade: ${rng.pick(['h2c', 'foo', 'websocket2', 'tls/1.2'])}`;
        expect = 400;
        break;
      case 3:
        headers.splice(1, 1);
        expect = undefined;
        break;
      default:
        headers.push(oddHeader(rng));
        expect = undefined;
    }
  }
  if (key !== '') headers.push(`Sec-WebSocket-Key: ${key}`);
  if (version !== '') headers.push(`Sec-WebSocket-Version: ${version}`);
  const method = odd && rng.chance(0.2) ? rng.pick(['POST', 'PUT', 'get']) : 'GET';
  if (method !== 'GET') expect = undefined;
  const path = rng.pick(PATHS);
  return { text: `${method} ${path} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`, expect };
}

/** A masked client frame, well-formed or not. */
function clientFrame(rng: Rng): Buffer {
  const payload = Buffer.from(rng.token(30));
  const mask = rng.bytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

function mutate(rng: Rng, input: Buffer): Buffer {
  let out = input;
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = rng.int(out.length + 1);
    switch (rng.int(6)) {
      case 0: {
        const copy = Buffer.from(out);
        if (copy.length > 0) copy[Math.min(at, copy.length - 1)] = rng.int(256);
        out = copy;
        break;
      }
      case 1:
        out = Buffer.concat([out.subarray(0, at), rng.bytes(1 + rng.int(8)), out.subarray(at)]);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + rng.int(20)))]);
        break;
      case 3: {
        const special = rng.pick(['\r\n', '\n', '\r', '\0', ' ', ':', '\r\n\r\n', '\t', '\x7f', '\xff']);
        out = Buffer.concat([out.subarray(0, at), Buffer.from(special, 'latin1'), out.subarray(at)]);
        break;
      }
      case 4: {
        const from = rng.int(out.length + 1);
        const part = out.subarray(from, from + 1 + rng.int(30));
        out = Buffer.concat([out.subarray(0, at), part, out.subarray(at)]);
        break;
      }
      default:
        out = out.subarray(0, at);
    }
  }
  return out;
}

function split(rng: Rng, bytes: Buffer): Buffer[] {
  const count = bytes.length < 2 ? 1 : 1 + rng.int(Math.min(4, bytes.length));
  if (count === 1) return [bytes];
  const cuts = new Set<number>();
  while (cuts.size < count - 1) cuts.add(1 + rng.int(bytes.length - 1));
  const points = [0, ...[...cuts].sort((a, b) => a - b), bytes.length];
  return points.slice(1).map((p, i) => bytes.subarray(points[i]!, p));
}

const KINDS = [
  ['plain', 14],
  ['plain-odd', 14],
  ['chunked', 8],
  ['upgrade', 10],
  ['upgrade-odd', 12],
  ['upgrade-pipelined', 10],
  ['keepalive-pipelined', 8],
  ['oversized', 3],
  ['random', 10],
  ['truncated', 6],
  ['mutated', 15],
] as const;
const TOTAL_WEIGHT = KINDS.reduce((n, [, w]) => n + w, 0);

/** Builds case `index` of `seed`; the same pair always gives the same bytes. */
export function generateCase(seed: number, index: number): FuzzCase {
  const rng = new Rng(seed, index);
  let roll = rng.int(TOTAL_WEIGHT);
  let kind: string = KINDS[0][0];
  for (const [k, w] of KINDS) {
    if (roll < w) {
      kind = k;
      break;
    }
    roll -= w;
  }
  let text: string | Buffer;
  let expect: number | undefined;
  let end = rng.chance(0.9);
  switch (kind) {
    case 'plain':
      ({ text, expect } = plainRequest(rng, false));
      break;
    case 'plain-odd':
      ({ text } = plainRequest(rng, true));
      break;
    case 'chunked': {
      const body = chunkedBody(rng, rng.chance(0.4));
      text = `POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
      break;
    }
    case 'upgrade':
      ({ text, expect } = upgradeRequest(rng, false));
      break;
    case 'upgrade-odd':
      ({ text, expect } = upgradeRequest(rng, true));
      break;
    case 'upgrade-pipelined': {
      // Bytes after an upgrade request: frames, another request, or noise.
      const first = upgradeRequest(rng, rng.chance(0.3));
      const after = rng.pick([
        () => clientFrame(rng),
        () => Buffer.from(plainRequest(rng, false).text),
        () => Buffer.from(upgradeRequest(rng, false).text),
        () => rng.bytes(1 + rng.int(200)),
      ])();
      text = Buffer.concat([
        Buffer.from(first.text),
        after,
        rng.chance(0.5) ? clientFrame(rng) : Buffer.alloc(0),
      ]);
      // A refusal closes the connection; bytes the client sent after it may meet a reset that
      // discards the answer on the client's side, so only an accepted upgrade has a sure answer.
      expect = first.expect === 101 ? 101 : undefined;
      break;
    }
    case 'keepalive-pipelined': {
      const parts = [plainRequest(rng, false).text.replace('Connection: close\r\n', '')];
      parts.push(rng.chance(0.5) ? upgradeRequest(rng, rng.chance(0.5)).text : plainRequest(rng, true).text);
      if (rng.chance(0.5)) parts.push(plainRequest(rng, rng.chance(0.5)).text);
      text = parts.join('');
      break;
    }
    case 'oversized':
      text = `GET /${'p'.repeat(rng.chance(0.5) ? 20000 : 10)} HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(rng.chance(0.5) ? 20000 : 10)}\r\n\r\n`;
      break;
    case 'random':
      text = Buffer.concat([
        rng.chance(0.3) ? Buffer.from('GET / HTTP/1.1\r\n') : Buffer.alloc(0),
        rng.bytes(1 + rng.int(rng.chance(0.1) ? 40000 : 2000)),
      ]);
      break;
    case 'truncated': {
      const full = Buffer.from(
        rng.chance(0.5) ? plainRequest(rng, false).text : upgradeRequest(rng, false).text,
      );
      text = full.subarray(0, 1 + rng.int(full.length - 1));
      end = rng.chance(0.5);
      break;
    }
    default: {
      const base = rng.chance(0.5)
        ? plainRequest(rng, rng.chance(0.3))
        : upgradeRequest(rng, rng.chance(0.3));
      text = mutate(rng, Buffer.from(base.text, 'latin1'));
      break;
    }
  }
  const bytes = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  return {
    index,
    kind,
    pieces: split(rng, bytes),
    delayMs: rng.chance(0.2) ? 1 + rng.int(5) : 0,
    end,
    expect,
  };
}

/** Whether `bytes` is a sequence of HTTP/1.x responses; a 101 may be followed by anything. */
export function checkResponses(bytes: Buffer): { statuses: number[]; problem?: string } {
  const statuses: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', at);
    if (end < 0) return { statuses, problem: `incomplete or invalid response head at byte ${at}` };
    const lines = bytes.toString('latin1', at, end).split('\r\n');
    const m = /^HTTP\/1\.[01] ([1-5]\d\d)(?: [^\r\n]*)?$/.exec(lines[0]!);
    if (!m) return { statuses, problem: `invalid status line ${JSON.stringify(lines[0])}` };
    const status = Number(m[1]);
    statuses.push(status);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const h = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/.exec(line);
      if (!h) return { statuses, problem: `invalid header line ${JSON.stringify(line)}` };
      const name = h[1]!.toLowerCase();
      headers[name] = headers[name] === undefined ? h[2]! : `${headers[name]}, ${h[2]}`;
    }
    at = end + 4;
    if (status === 101) return { statuses };
    if ((status >= 100 && status < 200) || status === 204 || status === 304) continue;
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      for (;;) {
        const lineEnd = bytes.indexOf('\r\n', at);
        if (lineEnd < 0) return { statuses, problem: 'truncated chunked body' };
        const size = parseInt(bytes.toString('latin1', at, lineEnd).split(';')[0]!, 16);
        if (Number.isNaN(size)) return { statuses, problem: 'invalid chunk size' };
        at = lineEnd + 2;
        if (size === 0) {
          const trailerEnd = bytes.indexOf('\r\n\r\n', at - 2);
          if (trailerEnd < 0) return { statuses, problem: 'truncated trailer' };
          at = trailerEnd + 4;
          break;
        }
        at += size + 2;
        if (at > bytes.length) return { statuses, problem: 'truncated chunk' };
      }
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (!Number.isInteger(length) || length < 0) return { statuses, problem: 'invalid content-length' };
      if (at + length > bytes.length) return { statuses, problem: 'truncated body' };
      at += length;
    } else {
      return { statuses }; // body until close
    }
  }
  return { statuses };
}

export interface CaseResult {
  index: number;
  kind: string;
  statuses: number[];
  /** Closed by the proxy (or reset) within the deadline. */
  closed: boolean;
  received: number;
  /** The client's port, to find the case in the proxy's logs (`remotePort`). */
  localPort: number;
  problem?: string;
}

/** Runs one case against 127.0.0.1:port; resolves when the proxy closed the connection. */
export function runCase(
  port: number,
  c: FuzzCase,
  { deadlineMs, localAddress }: { deadlineMs: number; localAddress?: string },
): Promise<CaseResult> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let received = 0;
    let ended = false;
    let settled = false;
    let localPort = 0;
    const endOnce = (): void => {
      if (ended || socket.destroyed) return;
      ended = true;
      socket.end();
    };
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const bytes = Buffer.concat(chunks);
      const { statuses, problem: parseProblem } = checkResponses(bytes);
      let problem = closed ? parseProblem : `connection still open after ${deadlineMs} ms`;
      if (!problem && statuses.includes(500)) problem = 'the proxy answered 500 (internal fault)';
      if (!problem && c.expect !== undefined && statuses[0] !== c.expect) {
        problem = `expected ${c.expect} first, got ${statuses.length > 0 ? statuses.join(',') : 'no answer'}`;
      }
      resolve({ index: c.index, kind: c.kind, statuses, closed, received, localPort, problem });
    };
    const timer = setTimeout(() => finish(false), deadlineMs);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received <= 1 << 20) chunks.push(chunk);
      if (ended) return;
      const check = checkResponses(Buffer.concat(chunks));
      // A tunnel stays open as long as the client wants: this client is done once it is up.
      if (check.statuses.includes(101)) endOnce();
      // A well-behaved client half-closes only after its answer (Node, like nginx, takes an
      // earlier FIN for an abort); a valid case waits for it, other cases FIN at once.
      else if (c.end && c.expect !== undefined && !check.problem && check.statuses.length > 0) endOnce();
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    // The proxy's FIN: it is done with this connection (its fd count shows whether it let go).
    socket.on('end', () => finish(true));
    socket.once('connect', async () => {
      localPort = socket.localPort ?? 0;
      for (let i = 0; i < c.pieces.length; i++) {
        if (socket.destroyed || ended) return;
        socket.write(c.pieces[i]!);
        if (c.delayMs > 0 && i < c.pieces.length - 1) await new Promise((r) => setTimeout(r, c.delayMs));
      }
      if (c.end && c.expect === undefined) endOnce();
    });
  });
}

export interface FuzzFailure extends CaseResult {
  seed: number;
  request: string;
}

export interface FuzzReport {
  seed: number;
  count: number;
  byKind: Record<string, number>;
  /** Total time spent in the cases of each kind (ms). */
  msByKind: Record<string, number>;
  byStatus: Record<string, number>;
  noAnswer: number;
  failures: FuzzFailure[];
  durationMs: number;
}

/** A stable short digest of every case's bytes, to show that a seed replays identically. */
export function digestCases(seed: number, count: number): string {
  const hash = createHash('sha256');
  for (let i = 0; i < count; i++) for (const p of generateCase(seed, i).pieces) hash.update(p);
  return hash.digest('hex').slice(0, 16);
}

/** Runs cases [first, first+count) of `seed` with `concurrency` connections at a time. */
export async function runFuzz({
  port,
  seed,
  count,
  first = 0,
  concurrency = 32,
  deadlineMs,
  onProgress,
}: {
  port: number;
  seed: number;
  count: number;
  first?: number;
  concurrency?: number;
  deadlineMs: number;
  onProgress?: (done: number, result: CaseResult) => void;
}): Promise<FuzzReport> {
  const started = Date.now();
  const report: FuzzReport = {
    seed,
    count,
    byKind: {},
    msByKind: {},
    byStatus: {},
    noAnswer: 0,
    failures: [],
    durationMs: 0,
  };
  let next = first;
  let done = 0;
  const worker = async (w: number): Promise<void> => {
    // Spread over source addresses so ephemeral ports never run short.
    const localAddress = `127.0.0.${1 + (w % 16)}`;
    while (next < first + count) {
      const c = generateCase(seed, next++);
      const caseStart = Date.now();
      const result = await runCase(port, c, { deadlineMs, localAddress });
      report.byKind[c.kind] = (report.byKind[c.kind] ?? 0) + 1;
      report.msByKind[c.kind] = (report.msByKind[c.kind] ?? 0) + Date.now() - caseStart;
      for (const s of result.statuses) report.byStatus[s] = (report.byStatus[s] ?? 0) + 1;
      if (result.statuses.length === 0) report.noAnswer++;
      if (result.problem) {
        report.failures.push({
          ...result,
          seed,
          request: JSON.stringify(Buffer.concat(c.pieces).toString('latin1').slice(0, 600)),
        });
      }
      onProgress?.(++done, result);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  report.durationMs = Date.now() - started;
  return report;
}

/** One line per failure, with what is needed to replay it. */
export function describeFailures(report: FuzzReport, max = 20): string {
  return report.failures
    .slice(0, max)
    .map(
      (f) =>
        `case ${f.index} (${f.kind}): ${f.problem}; statuses ${f.statuses.join(',') || 'none'}; replay: npm run fuzz -- --seed ${f.seed} --case ${f.index}\n  request: ${f.request}`,
    )
    .join('\n');
}
