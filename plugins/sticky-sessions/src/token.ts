import { createHmac, randomBytes } from 'node:crypto';

/**
 * Cookie values that name a backend opaquely: HMAC-SHA256(secret, backend id), cut to 128 bits
 * and base64url-encoded. They carry no address, and without the secret nobody can compute the
 * value of another backend (or forge one).
 */
export class BackendTokens {
  readonly #secret: Buffer;
  readonly #byId = new Map<string, string>();

  constructor(secret: string | Buffer) {
    this.#secret = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  }

  /** A secret for one process, when none is configured. */
  static randomSecret(): Buffer {
    return randomBytes(32);
  }

  tokenOf(backendId: string): string {
    let token = this.#byId.get(backendId);
    if (token === undefined) {
      token = createHmac('sha256', this.#secret)
        .update(`wslb-sticky:${backendId}`)
        .digest()
        .subarray(0, 16)
        .toString('base64url');
      this.#byId.set(backendId, token);
    }
    return token;
  }

  /** Forgets a backend (removed from the pool). */
  forget(backendId: string): void {
    this.#byId.delete(backendId);
  }
}
