/**
 * Picks the seed's verification key for a `kid` out of a JWKS, accepting only
 * Ed25519 signing keys, and imports it with jose. Never fetches anything: the
 * JWKS comes from the caller, who caches it.
 */
import { importJWK, type CryptoKey, type JSONWebKeySet } from 'jose'
import { ADMISSION_ALG, AdmissionDeniedError, AdmissionKeysUnavailableError } from '../../protocol/admission.js'

/** A JWKS as the seed publishes it; entries are checked, not trusted to match the type. */
export type AdmissionJwks = JSONWebKeySet | { keys: readonly unknown[] }

/** Imported keys kept per instance; the set is cleared when it grows past this. */
const MAX_CACHED_KEYS = 32
/** An Ed25519 public key: 32 bytes, canonical base64url. */
const ED25519_X = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/

/**
 * Returns the `x` of the one Ed25519 signing key in `jwks` whose `kid` equals `kid`.
 * A key qualifies when it has kty OKP, crv Ed25519, a 32-byte `x`, no private part `d`,
 * `use` absent or "sig", `alg` absent or EdDSA, and `key_ops` absent or including "verify".
 * Throws AdmissionDeniedError 'unknown-key' when `kid` is undefined, when no entry has that
 * kid, when the entries that do are not qualifying keys, or when two different keys share it.
 * Throws AdmissionKeysUnavailableError when `jwks` is not an object with a `keys` array.
 */
export function selectVerificationKey(jwks: unknown, kid: string | undefined): string {
  if (kid === undefined) throw new AdmissionDeniedError('unknown-key', 'token has no "kid"')
  if (!isRecord(jwks) || !Array.isArray(jwks.keys)) throw new AdmissionKeysUnavailableError('admission JWKS has no "keys" array')
  let found = false
  const usable = new Set<string>()
  for (const entry of jwks.keys as unknown[]) {
    if (!isRecord(entry) || entry.kid !== kid) continue
    found = true
    const x = qualifyingX(entry)
    if (x !== undefined) usable.add(x)
  }
  if (!found) throw new AdmissionDeniedError('unknown-key', 'no key in the JWKS has the token\'s "kid"')
  if (usable.size === 0) throw new AdmissionDeniedError('unknown-key', 'the key named by "kid" is not an Ed25519 signing key')
  if (usable.size > 1) throw new AdmissionDeniedError('unknown-key', 'several different keys share the token\'s "kid"')
  const [x] = usable
  return x as string
}

/** Imports Ed25519 public keys by `x`, remembering a few. One per verifier; no globals. */
export class VerificationKeyCache {
  readonly #keys = new Map<string, Promise<CryptoKey>>()

  /**
   * Returns the public key for `x`. Throws AdmissionDeniedError 'unknown-key' when jose
   * cannot import it (not a valid Ed25519 public key).
   */
  async get(x: string): Promise<CryptoKey> {
    let key = this.#keys.get(x)
    if (key === undefined) {
      if (this.#keys.size >= MAX_CACHED_KEYS) this.#keys.clear()
      // A clean JWK built from `x` alone: nothing else from the JWKS entry reaches jose.
      key = importJWK({ kty: 'OKP', crv: 'Ed25519', x }, ADMISSION_ALG) as Promise<CryptoKey>
      this.#keys.set(x, key)
    }
    try {
      return await key
    } catch (cause) {
      this.#keys.delete(x)
      throw new AdmissionDeniedError('unknown-key', 'the key named by "kid" cannot be imported', { cause })
    }
  }
}

function qualifyingX(jwk: Record<string, unknown>): string | undefined {
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || Object.hasOwn(jwk, 'd')) return undefined
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined
  if (jwk.alg !== undefined && jwk.alg !== ADMISSION_ALG) return undefined
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return undefined
  return typeof jwk.x === 'string' && ED25519_X.test(jwk.x) ? jwk.x : undefined
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
