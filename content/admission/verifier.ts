/**
 * Verifies admission tokens at every hop (seed HTTP API, peers over libp2p) and
 * signs them for the seed. Every refusal is an AdmissionDeniedError whose `reason`
 * is a metrics label; the token itself never appears in an error.
 */
import { errors, jwtVerify, SignJWT, type CryptoKey, type KeyObject } from 'jose'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  ADMISSION_ALG,
  AdmissionDeniedError,
  AdmissionKeysUnavailableError,
  CLOCK_TOLERANCE_S,
  checkAdmissionTimes,
  parseAdmissionClaims,
  scopeCovers,
  type AdmissionClaims,
  type AdmissionDenialReason,
} from '../../protocol/admission.js'
import { inspectCompactToken } from './compact-token.js'
import { selectVerificationKey, VerificationKeyCache, type AdmissionJwks } from './key-set.js'

export type { AdmissionJwks } from './key-set.js'

export interface AdmissionVerifierInit {
  /** Exact `iss` required. */
  issuer: string
  /** Exact, single `aud` required. */
  audience: string
  /** Skew tolerated on exp/nbf/iat; default CLOCK_TOLERANCE_S. */
  clockToleranceS?: number
}

export interface AdmissionVerifierComponents {
  /** The seed's JWKS, cached by the caller. Never fetched here. */
  keys: () => AdmissionJwks | Promise<AdmissionJwks>
  /** True when tokens for this PeerId must be refused even though they are valid. */
  revoked?: (peerId: string) => boolean
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number
}

export interface AdmissionExpectation {
  /** The PeerId Noise authenticated on the connection (`peerId.toString()`); `sub` must equal it. */
  peerId?: string
  /** The repository the request is for; the token's scope must cover it. */
  repository?: { ns: string; name: string }
}

const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'iat', 'nbf', 'exp', 'jti', 'scope']
/** Largest clock tolerance accepted at construction; more would make `exp` meaningless. */
const MAX_CLOCK_TOLERANCE_S = 300

export class AdmissionVerifier {
  readonly #issuer: string
  readonly #audience: string
  readonly #toleranceS: number
  readonly #components: AdmissionVerifierComponents
  readonly #cache = new VerificationKeyCache()

  /** Throws TypeError/RangeError for an empty issuer or audience or a tolerance outside 0…300 s. */
  constructor(init: AdmissionVerifierInit, components: AdmissionVerifierComponents) {
    if (typeof init.issuer !== 'string' || init.issuer === '') throw new TypeError('admission verifier needs an issuer')
    if (typeof init.audience !== 'string' || init.audience === '') throw new TypeError('admission verifier needs an audience')
    const tolerance = init.clockToleranceS ?? CLOCK_TOLERANCE_S
    if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > MAX_CLOCK_TOLERANCE_S) {
      throw new RangeError(`clock tolerance must be 0 to ${MAX_CLOCK_TOLERANCE_S} s`)
    }
    this.#issuer = init.issuer
    this.#audience = init.audience
    this.#toleranceS = tolerance
    this.#components = components
  }

  /**
   * Returns the token's claims when it is valid for this verifier and `expect`.
   * Throws AdmissionDeniedError with the reason (see ADMISSION_DENIAL_REASONS), and
   * AdmissionKeysUnavailableError when the keys provider fails or returns no `keys` array.
   * Checks run in this order: structure and header (before jose sees anything), key, signature
   * (jose, EdDSA pinned), claims and times, PeerId binding, revocation, scope.
   */
  async verify(token: string | undefined, expect: AdmissionExpectation = {}): Promise<AdmissionClaims> {
    const { kid } = inspectCompactToken(token)
    const key = await this.#cache.get(selectVerificationKey(await this.#jwks(), kid))
    const nowMs = (this.#components.now ?? Date.now)()
    let payload: unknown
    try {
      ;({ payload } = await jwtVerify(token as string, key, {
        algorithms: [ADMISSION_ALG],
        issuer: this.#issuer,
        audience: this.#audience,
        requiredClaims: REQUIRED_CLAIMS,
        clockTolerance: this.#toleranceS,
        currentDate: new Date(nowMs),
      }))
    } catch (err) {
      throw fromJoseError(err)
    }

    const claims = parseAdmissionClaims(payload)
    if (claims.iss !== this.#issuer) throw new AdmissionDeniedError('issuer', 'token was issued by another issuer')
    if (claims.aud !== this.#audience) throw new AdmissionDeniedError('audience', 'token is for another audience')
    checkAdmissionTimes(claims, Math.floor(nowMs / 1000), this.#toleranceS)
    checkSubject(claims.sub)

    if (expect.peerId !== undefined && claims.sub !== canonicalPeerId(expect.peerId)) {
      throw new AdmissionDeniedError('peer-mismatch', `token is bound to peer ${claims.sub}, not to the peer presenting it`)
    }
    if (this.#components.revoked?.(claims.sub) === true) throw new AdmissionDeniedError('revoked', `peer ${claims.sub} is revoked`)
    if (expect.repository !== undefined && !scopeCovers(claims.scope, expect.repository)) {
      throw new AdmissionDeniedError('scope', 'token scope does not cover the repository')
    }
    return claims
  }

  async #jwks(): Promise<unknown> {
    try {
      return await this.#components.keys()
    } catch (cause) {
      throw new AdmissionKeysUnavailableError('admission keys are unavailable', { cause })
    }
  }
}

/**
 * Signs `claims` as a compact JWS with header {alg: EdDSA, kid, typ: JWT}. Returns the token.
 * Throws AdmissionDeniedError 'malformed' for claims every verifier would refuse as malformed
 * (see parseAdmissionClaims; `sub` must be an Ed25519 PeerId), TypeError for an empty kid.
 * Time validity is not checked: signing an already-expired token is allowed.
 */
export async function signAdmissionToken(claims: AdmissionClaims, privateKey: CryptoKey | KeyObject, kid: string): Promise<string> {
  if (typeof kid !== 'string' || kid === '') throw new TypeError('admission signing needs a kid')
  const clean = parseAdmissionClaims(claims)
  checkSubject(clean.sub)
  return new SignJWT({ ...clean }).setProtectedHeader({ alg: ADMISSION_ALG, kid, typ: 'JWT' }).sign(privateKey)
}

/** Throws AdmissionDeniedError 'malformed' unless `sub` is an Ed25519 PeerId in canonical string form. */
function checkSubject(sub: string): void {
  let canonical: string
  let type: string
  try {
    const peerId = peerIdFromString(sub)
    canonical = peerId.toString()
    type = peerId.type
  } catch (cause) {
    throw new AdmissionDeniedError('malformed', '"sub" is not a PeerId', { cause })
  }
  if (type !== 'Ed25519') throw new AdmissionDeniedError('malformed', '"sub" is not an Ed25519 PeerId')
  if (canonical !== sub) throw new AdmissionDeniedError('malformed', '"sub" is not a PeerId in canonical form')
}

/** The canonical string of an expected PeerId; one that does not parse matches no token. */
function canonicalPeerId(peerId: string): string | undefined {
  try {
    return peerIdFromString(peerId).toString()
  } catch {
    return undefined
  }
}

/**
 * Maps a jose failure to a refusal. Errors that are not jose's (bugs, bad options)
 * propagate unchanged rather than pass for a bad token.
 */
function fromJoseError(err: unknown): unknown {
  if (!(err instanceof errors.JOSEError)) return err
  return new AdmissionDeniedError(joseReason(err), 'token failed verification', { cause: err })
}

function joseReason(err: InstanceType<typeof errors.JOSEError>): AdmissionDenialReason {
  if (err instanceof errors.JWTExpired) return 'expired'
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason !== 'check_failed') return 'malformed'
    if (err.claim === 'iss') return 'issuer'
    if (err.claim === 'aud') return 'audience'
    if (err.claim === 'nbf' || err.claim === 'iat') return 'not-yet-valid'
    return 'malformed'
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature'
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return 'algorithm'
  if (
    err instanceof errors.JWKSNoMatchingKey ||
    err instanceof errors.JWKSMultipleMatchingKeys ||
    err instanceof errors.JWKInvalid ||
    err instanceof errors.JWKSInvalid
  ) {
    return 'unknown-key'
  }
  return 'malformed'
}
