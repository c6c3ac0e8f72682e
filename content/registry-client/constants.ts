/** Defaults for the upstream client, applied with `??`. */

/** Per attempt: how long to wait for response headers (and a whole manifest or token body). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
/** A blob body that sends nothing for this long, while its reader wants bytes, fails. */
export const DEFAULT_BODY_IDLE_TIMEOUT_MS = 30_000
/** Retries after the first attempt, for 5xx, 429 and connection failures. */
export const DEFAULT_MAX_RETRIES = 3
/** A `Retry-After` longer than this fails at once instead of being waited out. */
export const DEFAULT_MAX_RETRY_AFTER_MS = 10_000
/** First backoff delay; it doubles per retry (200, 400, 800 ms), with jitter. */
export const RETRY_BASE_DELAY_MS = 200
/** Redirects followed per request (blob downloads go to object storage or a CDN). */
export const MAX_REDIRECTS = 5
/** Token realm hosts trusted besides the upstream's own host, when `realmHosts` is not set. */
export const DEFAULT_REALM_HOSTS: Readonly<Record<string, readonly string[]>> = { 'docker.io': ['auth.docker.io'] }

/** Lifetime of a bearer token that states no `expires_in` (the distribution token spec's default). */
export const DEFAULT_TOKEN_LIFETIME_MS = 60_000
/** A cached token is dropped this long before it expires (at most 10 % of its lifetime). */
export const TOKEN_SAFETY_MARGIN_MS = 10_000

/** Bytes of an upstream error body read to find its OCI error code. */
export const ERROR_BODY_LIMIT_BYTES = 4096
/** Largest token endpoint response accepted. */
export const TOKEN_BODY_LIMIT_BYTES = 64 * 1024
/** Bytes of an unwanted body drained to keep the connection; past this it is closed. */
export const DISCARD_LIMIT_BYTES = 64 * 1024
/** Longest `WWW-Authenticate` value parsed; longer ones are ignored as junk. */
export const MAX_CHALLENGE_LENGTH = 8192
/** Longest a token is cached, whatever its `expires_in` says. */
export const MAX_TOKEN_LIFETIME_MS = 60 * 60_000
