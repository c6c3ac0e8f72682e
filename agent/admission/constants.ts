/** Defaults of the agent's admission components, in one place. */

/** Everything admission persists lives in `<dataDir>/admission/` (mode 0700, files 0600). */
export const ADMISSION_STATE_DIR = 'admission'
export const TOKEN_FILE = 'token.json'
export const JWKS_FILE = 'jwks.json'
export const REVOCATIONS_FILE = 'revocations.json'

/** The seed's issuer name, which proofs of key possession are signed for. */
export const DEFAULT_SEED_ISSUER = 'pollen-seed'
/** A token is refreshed once this fraction of its lifetime has passed. */
export const DEFAULT_REFRESH_AT = 2 / 3
/** Retry delays after a failed enrollment: exponential with jitter between these bounds. */
export const DEFAULT_MIN_BACKOFF_MS = 1_000
export const DEFAULT_MAX_BACKOFF_MS = 60_000
/** Deadline of one request to the seed, answer body included. */
export const DEFAULT_SEED_REQUEST_TIMEOUT_MS = 10_000

/** How often the seed's JWKS is fetched again. */
export const DEFAULT_JWKS_REFRESH_MS = 60_000
/** The seed's `Cache-Control: max-age` on its JWKS may shorten the refresh down to this. */
export const MIN_JWKS_REFRESH_MS = 1_000
/** An on-demand JWKS fetch (unknown `kid`) starts at most this often. */
export const JWKS_REFRESH_SOON_INTERVAL_MS = 5_000
/** How often the revocation list is polled: a revoked peer is refused within about this long. */
export const DEFAULT_REVOCATION_POLL_MS = 15_000

/** Largest answers read from the seed. */
export const MAX_ENROLLMENT_ANSWER_BYTES = 64 * 1024
export const MAX_JWKS_BYTES = 256 * 1024
export const MAX_REVOCATIONS_BYTES = 16 * 1024 * 1024
