import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConnectionContext } from '@wslb/core';
import { addressKey, keyOf, parseKeySpec } from '../src/key.js';

function ctx(url: string, headers: Record<string, string | string[]> = {}, clientAddress = '10.1.2.3') {
  return { clientAddress, request: { method: 'GET', url, headers } } as unknown as ConnectionContext;
}

describe('ip-hash keys', { timeout: 10_000 }, () => {
  it('masks IPv4 addresses to a prefix (24 groups a /24 like nginx ip_hash)', () => {
    assert.equal(addressKey('10.1.2.3'), '10.1.2.3');
    assert.equal(addressKey('10.1.2.3', 24), '10.1.2.0');
    assert.equal(addressKey('10.1.2.250', 24), '10.1.2.0');
    assert.equal(addressKey('10.1.2.3', 16), '10.1.0.0');
    assert.equal(addressKey('255.255.255.255', 1), '128.0.0.0');
    assert.equal(addressKey('10.1.2.3', 0), '0.0.0.0');
  });

  it('writes IPv6 addresses in one form and masks them to a prefix', () => {
    assert.equal(addressKey('2001:db8:0:0:0:0:0:1'), addressKey('2001:DB8::1'));
    assert.equal(addressKey('2001:db8::1'), '2001:db8::1');
    assert.equal(addressKey('2001:db8:aa:bb:cc:dd:ee:ff', 32, 64), '2001:db8:aa:bb:0:0:0:0');
    assert.equal(addressKey('2001:db8:aa:bbcc:cc:dd:ee:ff', 32, 56), '2001:db8:aa:bb00:0:0:0:0');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80::1');
    assert.equal(addressKey('::1', 32, 0), '0:0:0:0:0:0:0:0');
  });

  it('leaves anything that is not an IP address as it is', () => {
    assert.equal(addressKey(''), '');
    assert.equal(addressKey('/tmp/socket'), '/tmp/socket');
  });

  it('reads a header, a query parameter or a cookie', () => {
    const request = ctx('/chat?room=7&user=ana', { 'x-user': 'bob', cookie: 'a=1; uid=zed; b=2' });
    assert.equal(keyOf(request, parseKeySpec('header:X-User')), 'bob');
    assert.equal(keyOf(request, parseKeySpec('query:user')), 'ana');
    assert.equal(keyOf(request, parseKeySpec('cookie:uid')), 'zed');
    assert.equal(keyOf(request, parseKeySpec('ip')), '10.1.2.3');
  });

  it('falls back to the (masked) client address when the key is missing or empty', () => {
    const bare = ctx('/chat?user=', { 'x-user': '' });
    assert.equal(keyOf(bare, parseKeySpec('header:x-user')), '10.1.2.3');
    assert.equal(keyOf(bare, parseKeySpec('query:user')), '10.1.2.3');
    assert.equal(keyOf(bare, parseKeySpec('cookie:uid'), 24), '10.1.2.0');
    const tcp = { clientAddress: '10.9.9.9', request: undefined } as unknown as ConnectionContext;
    assert.equal(keyOf(tcp, parseKeySpec('header:x-user')), '10.9.9.9');
  });

  it('rejects a key it does not know', () => {
    assert.throws(() => parseKeySpec('body:x'), /invalid key/);
    assert.throws(() => parseKeySpec('header:'), /invalid key/);
  });
});
