import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BodyFramer, parseResponseHead } from '../src/response-head.js';
import {
  TrustedProxies,
  clientAddressOf,
  endToEndHeaders,
  normalizeAddress,
  setForwardedHeaders,
} from '../src/forwarded.js';
import type { HeaderMap } from '../src/hooks.js';

describe('parseResponseHead', () => {
  it('parses status, message and headers; joins repeats; keeps set-cookie as a list', () => {
    const head = parseResponseHead(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-A: 1\r\nX-A: 2',
    );
    assert.equal(head.status, 101);
    assert.equal(head.statusMessage, 'Switching Protocols');
    assert.deepEqual(head.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(head.headers['x-a'], '1, 2');
  });

  it('rejects a bad status line or header', () => {
    assert.throws(() => parseResponseHead('HTTP/2 200 OK'), /status line/);
    assert.throws(() => parseResponseHead('HTTP/1.1 200 OK\r\nBad Header: x'), /header/);
  });
});

describe('BodyFramer', () => {
  it('ends a Content-Length body after exactly that many bytes', () => {
    const f = new BodyFramer(403, { 'content-length': '5' });
    assert.equal(f.consume(Buffer.from('abc')), 3);
    assert.equal(f.done, false);
    assert.equal(f.consume(Buffer.from('deXYZ')), 2);
    assert.equal(f.done, true);
  });

  it('finds the end of a chunked body split anywhere, trailers included', () => {
    const body = Buffer.from('5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\nEXTRA');
    for (let split = 1; split < body.length; split++) {
      const f = new BodyFramer(200, { 'transfer-encoding': 'chunked' });
      const a = f.consume(body.subarray(0, split));
      const b = f.done ? 0 : f.consume(body.subarray(split));
      assert.equal(a + b, body.length - 'EXTRA'.length, `split at ${split}`);
      assert.equal(f.done, true);
    }
  });

  it('has no body for 204/304 and reads to the close without framing', () => {
    assert.equal(new BodyFramer(204, {}).done, true);
    const f = new BodyFramer(500, {});
    assert.equal(f.consume(Buffer.from('anything')), 8);
    assert.equal(f.done, false);
  });

  it('rejects a malformed chunk size', () => {
    const f = new BodyFramer(200, { 'transfer-encoding': 'chunked' });
    assert.throws(() => f.consume(Buffer.from('zz\r\n')), /chunk/);
  });
});

describe('client address and forwarding headers', () => {
  const trusted = new TrustedProxies(['10.0.0.0/8', '::1']);

  it('strips the IPv4-mapped prefix', () => {
    assert.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(normalizeAddress('::1'), '::1');
  });

  it('uses the peer unless it is a trusted proxy', () => {
    assert.equal(clientAddressOf('203.0.113.9', { 'x-forwarded-for': '1.2.3.4' }, trusted), '203.0.113.9');
    assert.equal(clientAddressOf('10.1.2.3', { 'x-forwarded-for': '1.2.3.4, 10.9.9.9' }, trusted), '1.2.3.4');
    assert.equal(
      clientAddressOf('::1', { forwarded: 'for="[2001:db8::1]:4711";proto=https' }, trusted),
      '2001:db8::1',
    );
    assert.equal(clientAddressOf('10.1.2.3', {}, trusted), '10.1.2.3');
  });

  it('replaces forwarding headers from untrusted peers and appends for trusted ones', () => {
    const untrusted: HeaderMap = {};
    setForwardedHeaders(
      untrusted,
      { host: 'h', 'x-forwarded-for': '6.6.6.6', forwarded: 'for=6.6.6.6' },
      '203.0.113.9',
      false,
      true,
    );
    assert.equal(untrusted['x-forwarded-for'], '203.0.113.9');
    assert.equal(untrusted['x-forwarded-proto'], 'https');
    assert.equal(untrusted.forwarded, 'for=203.0.113.9;proto=https;host=h');
    const fromProxy: HeaderMap = {};
    setForwardedHeaders(
      fromProxy,
      { host: 'h', 'x-forwarded-for': '1.2.3.4', forwarded: 'for=1.2.3.4' },
      '10.0.0.1',
      true,
      false,
    );
    assert.equal(fromProxy['x-forwarded-for'], '1.2.3.4, 10.0.0.1');
    assert.equal(fromProxy.forwarded, 'for=1.2.3.4, for=10.0.0.1;proto=http;host=h');
  });

  it('drops hop-by-hop headers and those named by Connection', () => {
    const out = endToEndHeaders({
      connection: 'close, x-hop',
      'x-hop': '1',
      'keep-alive': '5',
      te: 'trailers',
      'x-end': '2',
    });
    assert.deepEqual(out, { 'x-end': '2' });
  });
});
