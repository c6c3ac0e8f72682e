import type { JWK } from 'jose'
import type { Logger } from 'pino'
import {
  DEFAULT_JWKS_REFRESH_MS,
  DEFAULT_SEED_REQUEST_TIMEOUT_MS,
  JWKS_FILE,
  JWKS_REFRESH_SOON_INTERVAL_MS,
  MAX_JWKS_BYTES,
  MIN_JWKS_REFRESH_MS,
} from './constants.js'
import { SeedAnswerInvalidError } from './errors.js'
import { PolledDocument } from './polled-document.js'
import { seedBase } from './seed-http.js'
import { admissionStatePath, isRecord } from './state-file.js'

export interface JwksCacheInit {
  /** The seed's base URL (`http://seed:5000`). */
  seedUrl: string
  /** The agent's data dir; the last good JWKS is kept in `<dataDir>/admission/jwks.json`. */
  dataDir: string
  refreshMs?: number
  requestTimeoutMs?: number
}

export interface JwksCacheComponents {
  logger: Logger
  now?: () => number
}

export interface PublicJwks {
  readonly keys: readonly JWK[]
}

/** An Ed25519 public key: 32 bytes, canonical base64url. */
const ED25519_X = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/
const MAX_KID_LENGTH = 256
const EMPTY: PublicJwks = Object.freeze({ keys: Object.freeze([]) })

/**
 * The seed's admission-token verification keys, for AdmissionVerifier's `keys`. Fetched from
 * `GET /.well-known/jwks.json` every `refreshMs`; the last good set is persisted and loaded at
 * start, so peers' tokens keep verifying while the seed is down.
 */
export class JwksCache {
  readonly #doc: PolledDocument<PublicJwks>

  /** Throws RangeError for a non-positive interval or timeout, TypeError for a seed URL that is not http(s). */
  constructor(init: JwksCacheInit, c: JwksCacheComponents) {
    const logger = c.logger.child({ component: 'jwks-cache' })
    const refreshMs = init.refreshMs ?? DEFAULT_JWKS_REFRESH_MS
    const requestTimeoutMs = init.requestTimeoutMs ?? DEFAULT_SEED_REQUEST_TIMEOUT_MS
    if (!(refreshMs > 0) || !(requestTimeoutMs > 0)) throw new RangeError('JWKS refresh interval and request timeout must be positive')
    this.#doc = new PolledDocument(
      {
        url: `${seedBase(init.seedUrl)}/.well-known/jwks.json`,
        statePath: admissionStatePath(init.dataDir, JWKS_FILE),
        intervalMs: refreshMs,
        // The seed shortens max-age while its next key is published ahead of signing.
        minIntervalMs: Math.min(refreshMs, MIN_JWKS_REFRESH_MS),
        requestTimeoutMs,
        maxBytes: MAX_JWKS_BYTES,
        parse: (body) => parseJwks(body, logger),
        toJson: (jwks) => jwks,
      },
      { logger, now: c.now, onChange: (jwks) => logger.info({ kids: jwks.keys.map((k) => k.kid) }, 'admission keys updated') },
    )
  }

  /** The cached public keys (`{ keys: [] }` until a set was loaded or fetched). Never fetches. */
  keys(): PublicJwks {
    return this.#doc.value ?? EMPTY
  }

  /** When the cached set was last fetched from the seed (ms since the epoch). */
  get fetchedAt(): number | undefined {
    return this.#doc.fetchedAt
  }

  /** Loads the persisted set and starts refreshing. Never throws for the seed being down. */
  start(): Promise<void> {
    return this.#doc.start()
  }

  /** Fetches the set now. Rejects with SeedUnavailableError or SeedAnswerInvalidError, keeping the cached set. */
  refresh(): Promise<void> {
    return this.#doc.refresh()
  }

  /**
   * Asks for a refresh in the background, at most once per JWKS_REFRESH_SOON_INTERVAL_MS (counting
   * periodic refreshes): call it when a token names an unknown `kid`. Returns whether one started.
   */
  refreshSoon(): boolean {
    return this.#doc.refreshSoon(JWKS_REFRESH_SOON_INTERVAL_MS)
  }

  stop(): Promise<void> {
    return this.#doc.stop()
  }
}

/**
 * Returns the Ed25519 public signing keys of a JWKS, each rebuilt from its known members.
 * Entries that are not such keys are dropped; one with a private part `d` is dropped with an error logged.
 * Throws SeedAnswerInvalidError when the body has no `keys` array or no usable key.
 */
export function parseJwks(body: unknown, logger: Logger): PublicJwks {
  if (!isRecord(body) || !Array.isArray(body.keys)) throw new SeedAnswerInvalidError('the JWKS has no "keys" array')
  const keys: JWK[] = []
  for (const entry of body.keys as unknown[]) {
    if (!isRecord(entry)) continue
    if (Object.hasOwn(entry, 'd')) {
      logger.error({ kid: typeof entry.kid === 'string' ? entry.kid.slice(0, MAX_KID_LENGTH) : undefined }, 'the seed published a private key in its JWKS; ignoring that entry')
      continue
    }
    const key = publicSigningKey(entry)
    if (key !== undefined) keys.push(key)
  }
  if (keys.length === 0) throw new SeedAnswerInvalidError('the JWKS has no Ed25519 public signing key')
  return Object.freeze({ keys: Object.freeze(keys.map((k) => Object.freeze(k))) })
}

function publicSigningKey(jwk: Record<string, unknown>): JWK | undefined {
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') return undefined
  if (typeof jwk.x !== 'string' || !ED25519_X.test(jwk.x)) return undefined
  if (typeof jwk.kid !== 'string' || jwk.kid === '' || jwk.kid.length > MAX_KID_LENGTH) return undefined
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined
  if (jwk.alg !== undefined && jwk.alg !== 'EdDSA') return undefined
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return undefined
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid: jwk.kid, alg: 'EdDSA', use: 'sig' }
}
