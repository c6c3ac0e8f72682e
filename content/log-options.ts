import { pino, type LoggerOptions } from 'pino'

/** What replaces a redacted value in a log line. */
export const REDACTED = '[redacted]'

/**
 * Fields that hold secrets wherever they appear at the top level of a log object or one
 * level down (`*.token` does not match a top-level `token`, hence both forms).
 */
const SECRET_KEYS = [
  'token',
  'joinToken',
  'oidcToken',
  'mirrorToken',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'identitytoken',
  'password',
  'secret',
  'privateKey',
  'bearer',
  'authorization',
  'auth',
]

/** pino `redact` paths: secret fields, and the credential headers of requests and errors. */
export const LOG_REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS.flatMap((k) => [k, `*.${k}`]),
  'headers.authorization',
  'headers.cookie',
  'headers["x-pollen-mirror-token"]',
  'headers["proxy-authorization"]',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["x-pollen-mirror-token"]',
  '*.headers["proxy-authorization"]',
  'req.headers.authorization',
  'err.cause.headers.authorization',
]

/** `Bearer x`, `Basic x`, JWTs (`eyJ…`), join tokens (`pjt_…`) in free text. */
const SECRET_PATTERNS: ReadonlyArray<[RegExp, string]> = [
  [/\b(Bearer|Basic)\s+[^\s"',;]+/gi, `$1 ${REDACTED}`],
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(\.[A-Za-z0-9_-]*)?/g, REDACTED],
  [/\bpjt_[A-Za-z0-9_-]{8,}/g, REDACTED],
]

/** `text` with every credential-looking substring (see SECRET_PATTERNS) replaced by [redacted]. */
export function scrubSecrets(text: string): string {
  let out = text
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement)
  return out
}

/**
 * pino's error serializer, with credential-looking text scrubbed from the message and stack
 * (an undici or upstream error can echo an Authorization header or a token).
 */
function scrubbedError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown
  if (typeof out !== 'object' || out === null) return typeof out === 'string' ? scrubSecrets(out) : out
  const e = out as { message?: unknown; stack?: unknown }
  if (typeof e.message === 'string') e.message = scrubSecrets(e.message)
  if (typeof e.stack === 'string') e.stack = scrubSecrets(e.stack)
  return out
}

/**
 * The logging options both components use besides level and base: redaction of secret
 * fields and headers, and scrubbed errors. Spread into `pino({ … })` in each main.ts.
 */
export const LOG_OPTIONS: Pick<LoggerOptions, 'redact' | 'serializers'> = {
  redact: { paths: [...LOG_REDACT_PATHS], censor: REDACTED },
  serializers: { err: scrubbedError },
}
