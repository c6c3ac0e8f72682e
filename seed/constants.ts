/** The seed's defaults, in one place. */
export const DEFAULT_LISTEN = '127.0.0.1:5000'
export const DEFAULT_DATA_DIR = './pollen-data/seed'
export { DEFAULT_TAG_TTL_MS } from '../content/constants.js'
/** Used when no --upstream is given. */
export const DEFAULT_UPSTREAMS: Record<string, string> = { 'docker.io': 'https://registry-1.docker.io' }
/** Token realms allowed besides the upstream's own host, per registry. */
export const DEFAULT_REALM_HOSTS: Record<string, string[]> = { 'docker.io': ['auth.docker.io'] }
/** The seed's libp2p bootstrap node listens here by default. */
export const DEFAULT_P2P_LISTEN = '/ip4/0.0.0.0/tcp/5001'
/** A known tag answer is served stale when the remote has not answered a refresh within this. */
export const STALE_AFTER_MS = 5_000
/** `pollen-seed preheat`: the seed it asks when --seed is not given (the seed's default --listen). */
export const DEFAULT_PREHEAT_SEED_URL = `http://${DEFAULT_LISTEN}`
/** `pollen-seed preheat`: images per run, blobs fetched at once, and each request's deadlines. */
export const MAX_PREHEAT_IMAGES = 100
export const PREHEAT_CONCURRENCY = 4
export const PREHEAT_MANIFEST_TIMEOUT_MS = 60_000
/** A blob request's whole deadline, and the longest the seed may go quiet within it. */
export const PREHEAT_BLOB_TIMEOUT_MS = 30 * 60_000
export const PREHEAT_STALL_TIMEOUT_MS = 60_000
/** Attempts per request when the seed answers 5xx or 429 or the connection breaks. */
export const PREHEAT_ATTEMPTS = 3
/** Lifetime of the admission token preheat signs for itself; it signs a new one at two-thirds. */
export const PREHEAT_TOKEN_TTL_MS = 5 * 60_000
/** The `iss` and `aud` of the admission tokens the seed issues, unless --issuer / --audience say otherwise. */
export const DEFAULT_ISSUER = 'pollen-seed'
export const DEFAULT_AUDIENCE = 'pollen'
