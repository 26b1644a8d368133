import {
  type ConnectionContext,
  type Plugin,
  type ProxyConfig,
  STAGE_OVERRIDE,
  WslbError,
  formatIssueList,
  validatePluginOptions,
} from '@wslb/core';
import {
  type CookieAttributes,
  cookieValues,
  privateCacheControl,
  serializeCookie,
  setCookieLines,
  setCookieName,
  withoutCookie,
} from './cookies.js';
import { BackendTokens } from './token.js';

export { BackendTokens } from './token.js';
export { cookieValues, privateCacheControl, setCookieName, withoutCookie } from './cookies.js';

export const PLUGIN_NAME = 'sticky-sessions';

const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/** JSON Schema of the options. */
export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    cookie: { description: 'Name of the cookie.', type: 'string', pattern: TOKEN, default: 'wslb' },
    secret: {
      description:
        'HMAC key of cookie values. Required with several workers or instances (all must share it); unset: a random one per process.',
      type: 'string',
      minLength: 16,
    },
    secure: {
      description: 'Send the Secure attribute. Unset: when the client reached wslb over TLS.',
      type: 'boolean',
    },
    httpOnly: { description: 'Send the HttpOnly attribute.', type: 'boolean', default: true },
    sameSite: {
      description: 'SameSite attribute; "None" implies Secure.',
      enum: ['Strict', 'Lax', 'None', 'strict', 'lax', 'none'],
      default: 'Lax',
    },
    path: { description: 'Path attribute.', type: 'string', pattern: '^/[^;\\s]*$', default: '/' },
    domain: {
      description: 'Domain attribute (unset: the host the client asked for).',
      type: 'string',
      pattern: '^\\.?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$',
    },
    maxAge: {
      description: 'Max-Age in seconds. Unset: a session cookie, gone when the browser closes.',
      type: 'integer',
      minimum: 1,
    },
  },
} as const;

export interface StickySessionsOptions {
  cookie?: string;
  secret?: string;
  secure?: boolean;
  httpOnly?: boolean;
  sameSite?: 'Strict' | 'Lax' | 'None' | 'strict' | 'lax' | 'none';
  path?: string;
  domain?: string;
  maxAge?: number;
}

interface Settings {
  cookie: string;
  secret: string | undefined;
  secure: boolean | undefined;
  sameSite: 'strict' | 'lax' | 'none';
  attributes: CookieAttributes;
}

function settingsOf(options: StickySessionsOptions): Settings {
  const issues = validatePluginOptions(schema, options);
  if (issues.length > 0) {
    throw new WslbError('WSLB_ERR_CONFIG_INVALID', `${PLUGIN_NAME} options: ${formatIssueList(issues)}`);
  }
  const sameSite = (options.sameSite ?? 'Lax').toLowerCase() as Settings['sameSite'];
  return {
    cookie: options.cookie ?? 'wslb',
    secret: options.secret,
    secure: options.secure,
    sameSite,
    attributes: {
      path: options.path ?? '/',
      domain: options.domain,
      httpOnly: options.httpOnly ?? true,
      sameSite,
      maxAge: options.maxAge,
    },
  };
}

/**
 * Rules of the options against the rest of the config: with several workers every process must
 * recognise the cookies the others set, so they need one shared `secret`.
 */
export function checkConfig(
  options: Pick<StickySessionsOptions, 'secret'>,
  config: Readonly<ProxyConfig>,
): string[] {
  const workers = config.workers;
  if (options.secret === undefined && (workers === 'auto' || (workers ?? 1) > 1)) {
    return ['option "secret" is required with several workers, which must all recognise the cookie'];
  }
  return [];
}

/**
 * Cookie stickiness with HAProxy's `cookie NAME insert indirect nocache` semantics: the first
 * answer to a client without a valid cookie sets one naming its backend (opaquely); later
 * requests carrying it go to that backend while it is available, before any balancer decides.
 * The cookie never reaches the backends, and answers that set it are marked private.
 */
export default function stickySessions(options: StickySessionsOptions = {}): Plugin {
  let settings = settingsOf(options);
  /** Used when no secret is configured; kept across reloads so that cookies stay valid. */
  let generated: Buffer | undefined;
  const tokensFor = (s: Settings): BackendTokens =>
    new BackendTokens(s.secret ?? (generated ??= BackendTokens.randomSecret()));
  let tokens = tokensFor(settings);
  /** Values of the cookie in each request, parsed once per connection. */
  const requested = new WeakMap<ConnectionContext, readonly string[]>();
  const valuesOf = (ctx: ConnectionContext): readonly string[] => {
    let values = requested.get(ctx);
    if (values === undefined) {
      values = cookieValues(ctx.request?.headers.cookie, settings.cookie);
      requested.set(ctx, values);
    }
    return values;
  };

  return {
    name: PLUGIN_NAME,
    apply(proxy) {
      // Plugins given as objects in code skip the config check of the module: same rule here.
      const [problem] = checkConfig({ secret: settings.secret }, proxy.config);
      if (problem) throw new WslbError('WSLB_ERR_CONFIG_INVALID', `${PLUGIN_NAME}: ${problem}`);

      proxy.hooks.select.tap({ name: PLUGIN_NAME, stage: STAGE_OVERRIDE }, (ctx, candidates) => {
        const values = valuesOf(ctx);
        if (values.length === 0) return undefined;
        for (const backend of candidates) {
          if (values.includes(tokens.tokenOf(backend.id))) return backend;
        }
        // Unknown, forged, down, draining or full: the balancer chooses and the answer re-sets it.
        return undefined;
      });

      proxy.hooks.handshake.tap(PLUGIN_NAME, (ctx, upstream) => {
        if (upstream.headers.cookie === undefined) return;
        const rest = withoutCookie(upstream.headers.cookie, settings.cookie);
        if (rest === undefined) delete upstream.headers.cookie;
        else upstream.headers.cookie = rest;
      });

      proxy.hooks.response.tap(PLUGIN_NAME, (ctx, response) => {
        const backend = ctx.backend;
        if (!backend || !ctx.request) return;
        const name = settings.cookie;
        // `indirect`: a cookie of the same name set by the backend itself is dropped.
        const lines = setCookieLines(response.headers['set-cookie']).filter(
          (line) => setCookieName(line) !== name,
        );
        const token = tokens.tokenOf(backend.id);
        const values = valuesOf(ctx);
        // The last look at them: an open tunnel keeps nothing of its cookie here.
        requested.delete(ctx);
        if (!values.includes(token)) {
          const secure = settings.sameSite === 'none' || (settings.secure ?? ctx.secure);
          lines.push(serializeCookie(name, token, { ...settings.attributes, secure }));
          privateCacheControl(response.headers);
        }
        if (lines.length > 0) response.headers['set-cookie'] = lines;
        else delete response.headers['set-cookie'];
      });

      proxy.hooks.backendRemoved.tap(PLUGIN_NAME, (backend) => tokens.forget(backend.id));
    },
    reconfigure(next) {
      settings = settingsOf((next ?? {}) as StickySessionsOptions);
      tokens = tokensFor(settings);
    },
  };
}

stickySessions.schema = schema;
stickySessions.checkConfig = checkConfig;
