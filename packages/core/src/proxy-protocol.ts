import { isIPv6, type Socket } from 'node:net';
import { WslbError } from './errors.js';
import { normalizeAddress } from './forwarded.js';

/** The endpoints a PROXY protocol header carries. */
export interface ProxiedAddress {
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_MAX = 107;

function ipv4Bytes(address: string): number[] {
  return address.split('.').map(Number);
}

function ipv6Bytes(address: string): number[] {
  const [head = '', tail = ''] = address.split('::');
  const part = (s: string): string[] => (s ? s.split(':') : []);
  let groups = [...part(head)];
  const tailGroups = part(tail);
  const last = tailGroups.length > 0 ? tailGroups[tailGroups.length - 1]! : groups[groups.length - 1];
  const extra: string[] = [];
  if (last?.includes('.')) {
    // An IPv4-mapped tail takes two groups.
    const v4 = ipv4Bytes(last);
    extra.push(((v4[0]! << 8) | v4[1]!).toString(16), ((v4[2]! << 8) | v4[3]!).toString(16));
    if (tailGroups.length > 0) tailGroups.pop();
    else groups.pop();
  }
  const fill = address.includes('::') ? 8 - groups.length - tailGroups.length - extra.length : 0;
  groups = [...groups, ...Array<string>(fill).fill('0'), ...tailGroups, ...extra];
  return groups.flatMap((g) => {
    const n = parseInt(g || '0', 16);
    return [n >> 8, n & 0xff];
  });
}

/** A PROXY protocol header (v1 text or v2 binary) announcing `source` -> `destination`. */
export function encodeProxyHeader(version: 'v1' | 'v2', p: ProxiedAddress): Buffer {
  const source = normalizeAddress(p.sourceAddress);
  const destination = normalizeAddress(p.destinationAddress);
  const v6 = isIPv6(source) || isIPv6(destination);
  if (version === 'v1') {
    if (!source || !destination) return Buffer.from('PROXY UNKNOWN\r\n');
    const family = v6 ? 'TCP6' : 'TCP4';
    const s = v6 && !isIPv6(source) ? `::ffff:${source}` : source;
    const d = v6 && !isIPv6(destination) ? `::ffff:${destination}` : destination;
    return Buffer.from(`PROXY ${family} ${s} ${d} ${p.sourcePort} ${p.destinationPort}\r\n`);
  }
  const toBytes = (a: string): number[] => (v6 ? ipv6Bytes(isIPv6(a) ? a : `::ffff:${a}`) : ipv4Bytes(a));
  const addresses = [...toBytes(source), ...toBytes(destination)];
  const body = Buffer.alloc(addresses.length + 4);
  Buffer.from(addresses).copy(body, 0);
  body.writeUInt16BE(p.sourcePort, addresses.length);
  body.writeUInt16BE(p.destinationPort, addresses.length + 2);
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head, 0);
  head[12] = 0x21; // version 2, PROXY command
  head[13] = v6 ? 0x21 : 0x11; // TCP over IPv6 / IPv4
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

function parseV1(line: string): ProxiedAddress | undefined {
  const parts = line.split(' ');
  if (parts[0] !== 'PROXY') throw new WslbError('WSLB_ERR_BAD_REQUEST', 'Invalid PROXY protocol header');
  if (parts[1] === 'UNKNOWN') return undefined;
  if ((parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || parts.length !== 6) {
    throw new WslbError('WSLB_ERR_BAD_REQUEST', 'Invalid PROXY protocol header');
  }
  return {
    sourceAddress: normalizeAddress(parts[2]),
    destinationAddress: normalizeAddress(parts[3]),
    sourcePort: Number(parts[4]),
    destinationPort: Number(parts[5]),
  };
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return normalizeAddress(groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::'));
}

function parseV2(header: Buffer): ProxiedAddress | undefined {
  const command = header[12]! & 0x0f;
  const family = header[13]!;
  const body = header.subarray(16);
  if (command === 0) return undefined; // LOCAL: health checks of the front balancer itself
  if (family === 0x11 && body.length >= 12) {
    return {
      sourceAddress: [...body.subarray(0, 4)].join('.'),
      destinationAddress: [...body.subarray(4, 8)].join('.'),
      sourcePort: body.readUInt16BE(8),
      destinationPort: body.readUInt16BE(10),
    };
  }
  if (family === 0x21 && body.length >= 36) {
    return {
      sourceAddress: ipv6Text(body.subarray(0, 16)),
      destinationAddress: ipv6Text(body.subarray(16, 32)),
      sourcePort: body.readUInt16BE(32),
      destinationPort: body.readUInt16BE(34),
    };
  }
  return undefined;
}

/**
 * Reads a PROXY protocol header (v1 or v2) from the start of a socket. Resolves with the
 * addresses (undefined for UNKNOWN/LOCAL); bytes after the header are put back for the next
 * reader. Rejects on a missing or malformed header or when `timeoutMs` passes.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxiedAddress | undefined> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const done = (err: Error | undefined, value?: ProxiedAddress, rest?: Buffer): void => {
      socket.off('data', onData);
      socket.off('error', onClose);
      socket.off('close', onClose);
      if (timer) clearTimeout(timer);
      socket.pause();
      if (rest && rest.length > 0) socket.unshift(rest);
      if (err) reject(err);
      else resolve(value);
    };
    const invalid = (): void =>
      done(new WslbError('WSLB_ERR_BAD_REQUEST', 'Missing or invalid PROXY protocol header'));
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered[0] === 0x0d) {
        if (buffered.length < 16) return;
        if (!buffered.subarray(0, 12).equals(V2_SIGNATURE) || buffered[12]! >> 4 !== 2) return invalid();
        const length = 16 + buffered.readUInt16BE(14);
        if (buffered.length < length) return;
        return done(undefined, parseV2(buffered.subarray(0, length)), buffered.subarray(length));
      }
      const end = buffered.indexOf('\r\n');
      if (end < 0) {
        if (
          buffered.length > V1_MAX ||
          !'PROXY '.startsWith(buffered.toString('latin1', 0, Math.min(6, buffered.length)))
        ) {
          invalid();
        }
        return;
      }
      try {
        done(undefined, parseV1(buffered.toString('latin1', 0, end)), buffered.subarray(end + 2));
      } catch (err) {
        done(err as Error);
      }
    };
    const onClose = (): void =>
      done(new WslbError('WSLB_ERR_BAD_REQUEST', 'Connection closed before the PROXY header'));
    if (timeoutMs > 0) timer = setTimeout(() => done(new WslbError('WSLB_ERR_REQUEST_TIMEOUT')), timeoutMs);
    socket.on('data', onData);
    socket.on('error', onClose);
    socket.on('close', onClose);
    // Accepted paused (pauseOnConnect): a data listener alone does not start the flow.
    socket.resume();
  });
}

const proxied = new WeakMap<Socket, ProxiedAddress>();

/** Remembers the client address a front balancer announced for this connection. */
export function setProxiedAddress(socket: Socket, address: ProxiedAddress): void {
  proxied.set(socket, address);
}

type WrappingSocket = Socket & {
  _parent?: Socket;
  _handle?: { _parentWrap?: { stream?: Socket } } | null;
};

/**
 * The announced address of a connection. A TLS socket is looked through to what it wraps: its
 * TCP socket, or (TLS behind a PROXY header) the stream wslb handed to the TLS server.
 */
export function proxiedAddressOf(socket: Socket): ProxiedAddress | undefined {
  const own = proxied.get(socket);
  if (own) return own;
  const wrapping = socket as WrappingSocket;
  const inner = wrapping._parent ?? wrapping._handle?._parentWrap?.stream;
  return inner ? proxied.get(inner) : undefined;
}

/** The client end of a connection: announced by a PROXY header, else the TCP peer. */
export function peerOf(socket: Socket): { address: string; port: number } {
  const announced = proxiedAddressOf(socket);
  if (announced) return { address: announced.sourceAddress, port: announced.sourcePort };
  return { address: normalizeAddress(socket.remoteAddress), port: socket.remotePort ?? 0 };
}

/** The header to send a backend that expects the PROXY protocol, describing the client's connection. */
export function proxyHeaderFor(
  version: 'v1' | 'v2',
  client: Socket,
  clientAddress: string,
  clientPort: number,
): Buffer {
  const announced = proxiedAddressOf(client);
  return encodeProxyHeader(version, {
    sourceAddress: clientAddress,
    sourcePort: clientPort,
    destinationAddress: announced?.destinationAddress ?? normalizeAddress(client.localAddress),
    destinationPort: announced?.destinationPort ?? client.localPort ?? 0,
  });
}
