import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HeaderMap } from '@wslb/core';
import { cookieValues, privateCacheControl, setCookieName, withoutCookie } from '../src/cookies.js';
import { BackendTokens } from '../src/token.js';

describe('sticky cookie values', { timeout: 10_000 }, () => {
  it('name a backend opaquely: no id or address inside, different per backend and per secret', () => {
    const tokens = new BackendTokens('a secret of sixteen+ chars');
    const a = tokens.tokenOf('127.0.0.1:9001');
    const b = tokens.tokenOf('127.0.0.1:9002');
    assert.match(a, /^[A-Za-z0-9_-]{22}$/);
    assert.notEqual(a, b);
    assert.ok(!a.includes('127') && !a.includes('9001'), "!a.includes('127') && !a.includes('9001')");
    assert.equal(new BackendTokens('a secret of sixteen+ chars').tokenOf('127.0.0.1:9001'), a);
    assert.notEqual(new BackendTokens('another secret, 16+ chars').tokenOf('127.0.0.1:9001'), a);
    const random = new BackendTokens(BackendTokens.randomSecret());
    assert.notEqual(random.tokenOf('127.0.0.1:9001'), a);
  });
});

describe('cookie headers', { timeout: 10_000 }, () => {
  it('reads every value of a cookie, quoted or not', () => {
    assert.deepEqual(cookieValues('a=1; wslb=x; b=2; wslb="y"', 'wslb'), ['x', 'y']);
    assert.deepEqual(cookieValues('wslbx=1; xwslb=2', 'wslb'), []);
    assert.deepEqual(cookieValues(undefined, 'wslb'), []);
  });

  it('strips one cookie and keeps the others in order', () => {
    assert.equal(withoutCookie('a=1; wslb=x; b=2', 'wslb'), 'a=1; b=2');
    assert.equal(withoutCookie('wslb=x;wslb=y', 'wslb'), undefined);
    assert.equal(withoutCookie('wslbx=1; io=abc', 'wslb'), 'wslbx=1; io=abc');
    assert.equal(withoutCookie(['a=1; wslb=x', 'c=3'], 'wslb'), 'a=1; c=3');
  });

  it('finds the name a Set-Cookie line sets', () => {
    assert.equal(setCookieName('wslb=abc; Path=/; HttpOnly'), 'wslb');
    assert.equal(setCookieName(' io = 1'), 'io');
  });

  it('makes answers that set the cookie private to the client', () => {
    const none: HeaderMap = {};
    privateCacheControl(none);
    assert.equal(none['cache-control'], 'private');
    const shared: HeaderMap = { 'cache-control': 'public, max-age=60, s-maxage=600' };
    privateCacheControl(shared);
    assert.equal(shared['cache-control'], 'private, max-age=60');
    const kept: HeaderMap = { 'cache-control': 'no-store' };
    privateCacheControl(kept);
    assert.equal(kept['cache-control'], 'no-store');
  });
});
