/** JSON Schema (draft 2020-12 subset understood by ajv) of the root configuration. */
const timeoutMs = { type: 'integer', minimum: 0 } as const;

const listenSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['port'],
  properties: {
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    tls: {
      type: 'object',
      additionalProperties: false,
      required: ['cert', 'key'],
      properties: {
        cert: { type: 'string', minLength: 1 },
        key: { type: 'string', minLength: 1 },
        ca: { type: 'string', minLength: 1 },
        passphrase: { type: 'string' },
      },
    },
    proxyProtocol: { type: 'boolean' },
  },
} as const;

export const backendSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    id: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9._:-]+$' },
    url: { type: 'string', format: 'uri', pattern: '^(wss?|https?|tcp)://' },
    weight: { type: 'integer', minimum: 1, maximum: 1000 },
    maxConnections: { type: 'integer', minimum: 0 },
    backup: { type: 'boolean' },
    host: { type: 'string', minLength: 1 },
    slowStart: timeoutMs,
    tls: {
      type: 'object',
      additionalProperties: false,
      properties: {
        ca: { type: 'string', minLength: 1 },
        rejectUnauthorized: { type: 'boolean' },
        servername: { type: 'string', minLength: 1 },
      },
    },
    proxyProtocol: { enum: ['v1', 'v2'] },
  },
} as const;

export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'wslb configuration',
  type: 'object',
  additionalProperties: false,
  required: ['backends'],
  properties: {
    $schema: { type: 'string' },
    listen: {
      type: ['object', 'array'],
      if: { type: 'array' },
      then: { minItems: 1, items: listenSchema },
      else: listenSchema,
    },
    mode: { enum: ['http', 'tcp'] },
    backends: { type: 'array', items: backendSchema },
    plugins: {
      type: 'array',
      items: {
        type: ['string', 'object'],
        if: { type: 'string' },
        then: { minLength: 1 },
        else: {
          additionalProperties: false,
          required: ['use'],
          properties: {
            use: { type: 'string', minLength: 1 },
            options: { type: 'object' },
          },
        },
      },
    },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        connect: timeoutMs,
        request: timeoutMs,
        handshake: timeoutMs,
        response: timeoutMs,
        idle: timeoutMs,
        halfClose: timeoutMs,
        drain: timeoutMs,
        removedBackend: timeoutMs,
        hook: timeoutMs,
        plugin: timeoutMs,
      },
    },
    retries: { type: 'integer', minimum: 0, maximum: 100 },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        connections: { type: 'integer', minimum: 0 },
        perClient: { type: 'integer', minimum: 0 },
        headerSize: { type: 'integer', minimum: 1024, maximum: 1048576 },
      },
    },
    trustedProxies: { type: 'array', items: { type: 'string', minLength: 1 } },
    admin: {
      type: 'object',
      additionalProperties: false,
      required: ['port'],
      properties: {
        host: { type: 'string', minLength: 1 },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        token: { type: 'string', minLength: 1 },
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
        access: { type: ['boolean', 'number'], minimum: 0, maximum: 1 },
      },
    },
    workers: {
      type: ['integer', 'string'],
      if: { type: 'string' },
      then: { const: 'auto' },
      else: { minimum: 1, maximum: 256 },
    },
  },
} as const;
