/** JSON Schema of the plugin's options (validated by the core's ajv before the factory runs). */
const statusOrRange = {
  oneOf: [
    { type: 'integer', minimum: 100, maximum: 599 },
    { type: 'string', pattern: '^[1-5][0-9]{2}(-[1-5][0-9]{2})?$' },
  ],
} as const;

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    type: {
      enum: ['tcp', 'http', 'ws'],
      description: 'Active check: tcp (connect), http (GET path, status in expect), ws (upgrade, close)',
    },
    path: {
      type: 'string',
      pattern: '^/',
      description: 'Path of http and ws checks, after the backend url path (default /)',
    },
    expect: {
      description: 'Statuses an http check accepts: a status, a "200-399" range or a list (default 200-399)',
      oneOf: [statusOrRange, { type: 'array', minItems: 1, items: statusOrRange }],
    },
    headers: {
      type: 'object',
      additionalProperties: { type: 'string' },
      description: 'Extra request headers of http and ws checks',
    },
    ping: { type: 'boolean', description: 'ws checks: send a ping and require the pong (default false)' },
    interval: { type: 'integer', minimum: 10, description: 'ms between checks of a backend (3000)' },
    timeout: { type: 'integer', minimum: 1, description: 'ms a check may take (1000)' },
    rise: { type: 'integer', minimum: 1, description: 'consecutive successes to go up (2)' },
    fall: { type: 'integer', minimum: 1, description: 'consecutive failures to go down (5)' },
    defaultState: { enum: ['up', 'down'], description: 'State before the first verdict (up)' },
    slowStart: {
      type: 'integer',
      minimum: 0,
      description: 'ms over which a backend that comes back up ramps to its weight (0: at once)',
    },
    passive: {
      type: 'object',
      additionalProperties: false,
      description: 'nginx max_fails/fail_timeout: failed dials within failTimeout take a backend out',
      properties: {
        maxFails: { type: 'integer', minimum: 1, description: 'failed dials that take it out (1)' },
        failTimeout: {
          type: 'integer',
          minimum: 1,
          description: 'ms window to count failures, and how long it stays out (10000)',
        },
      },
    },
  },
} as const;

export type CheckType = 'tcp' | 'http' | 'ws';
export type StatusSpec = number | string;

export interface HealthCheckOptions {
  /** Active check kind. Without `type` and without `passive`, tcp checks run (HAProxy's `check`). */
  type?: CheckType;
  path?: string;
  expect?: StatusSpec | StatusSpec[];
  headers?: Record<string, string>;
  ping?: boolean;
  interval?: number;
  timeout?: number;
  rise?: number;
  fall?: number;
  defaultState?: 'up' | 'down';
  /** Plugin-wide slow start (ms); a backend's own `slowStart` wins. */
  slowStart?: number;
  passive?: { maxFails?: number; failTimeout?: number };
}

/** A closed range of accepted statuses. */
export interface StatusRange {
  min: number;
  max: number;
}

export interface ActiveSettings {
  type: CheckType;
  path: string;
  expect: StatusRange[];
  headers: Record<string, string>;
  ping: boolean;
  interval: number;
  timeout: number;
  rise: number;
  fall: number;
}

export interface PassiveSettings {
  maxFails: number;
  failTimeout: number;
}

export interface Settings {
  /** Undefined for passive-only checking. */
  active: ActiveSettings | undefined;
  passive: PassiveSettings | undefined;
  defaultState: 'up' | 'down';
  slowStart: number;
}

export const DEFAULTS = Object.freeze({
  path: '/',
  expect: '200-399',
  interval: 3000,
  timeout: 1000,
  rise: 2,
  fall: 5,
  defaultState: 'up' as const,
  maxFails: 1,
  failTimeout: 10000,
});

/** "200-399" -> {200, 399}; 204 -> {204, 204}. */
export function parseStatusRanges(spec: StatusSpec | readonly StatusSpec[]): StatusRange[] {
  const list = Array.isArray(spec) ? spec : [spec];
  return list.map((item: StatusSpec) => {
    if (typeof item === 'number') return { min: item, max: item };
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(item.trim());
    if (!m) throw new TypeError(`invalid status or range "${item}"`);
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : Number(m[2]);
    if (max < min) throw new TypeError(`invalid range "${item}": its end ${max} is below its start ${min}`);
    return { min, max };
  });
}

export function statusAccepted(status: number, ranges: readonly StatusRange[]): boolean {
  return ranges.some((r) => status >= r.min && status <= r.max);
}

/** Options with defaults applied. */
export function resolveSettings(options: HealthCheckOptions = {}): Settings {
  const passiveOnly = options.type === undefined && options.passive !== undefined;
  const active: ActiveSettings | undefined = passiveOnly
    ? undefined
    : {
        type: options.type ?? 'tcp',
        path: options.path ?? DEFAULTS.path,
        expect: parseStatusRanges(options.expect ?? DEFAULTS.expect),
        // Lower-case names, so that a `Host` given here replaces the default one.
        headers: Object.fromEntries(
          Object.entries(options.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
        ),
        ping: options.ping ?? false,
        interval: options.interval ?? DEFAULTS.interval,
        timeout: options.timeout ?? DEFAULTS.timeout,
        rise: options.rise ?? DEFAULTS.rise,
        fall: options.fall ?? DEFAULTS.fall,
      };
  const passive: PassiveSettings | undefined = options.passive
    ? {
        maxFails: options.passive.maxFails ?? DEFAULTS.maxFails,
        failTimeout: options.passive.failTimeout ?? DEFAULTS.failTimeout,
      }
    : undefined;
  return {
    active,
    passive,
    defaultState: options.defaultState ?? DEFAULTS.defaultState,
    slowStart: options.slowStart ?? 0,
  };
}
