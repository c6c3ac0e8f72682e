/**
 * Verifies OIDC tokens (for example Kubernetes projected service-account tokens) that agents
 * present to enroll without a join token. Algorithms are pinned to asymmetric ones; the token
 * never chooses its key (embedded or remote key headers are refused); `iss`, `aud`, `exp`, `nbf`
 * and the lifetime are checked, and optionally `sub` against glob patterns.
 */
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose'
import type { Logger } from 'pino'
import { CLOCK_TOLERANCE_S, MAX_OIDC_TOKEN_LENGTH, wildcardMatch } from '../../protocol/admission.js'
import { DEFAULT_OIDC_MAX_LIFETIME_S, DEFAULT_OIDC_SCOPE, OIDC_ALGORITHMS } from './constants.js'
import { OidcKeysUnavailableError, OidcTokenDeniedError, type OidcDenial } from './errors.js'
import { oidcKeySource, type OidcKeySource } from './oidc-keys.js'

export interface OidcVerifierInit {
  /** Exact `iss` required. */
  issuer: string
  /** A JWKS file path or an http(s) URL with the issuer's public keys. */
  jwks: string
  /** Required among the token's `aud`. */
  audience: string
  /** Repository patterns granted to agents admitted this way; default DEFAULT_OIDC_SCOPE. */
  scope?: readonly string[]
  /** When given, `sub` must match one of these (`*` matches any run of characters). */
  subjects?: readonly string[]
  /** Longest accepted lifetime in seconds; default DEFAULT_OIDC_MAX_LIFETIME_S. */
  maxLifetimeS?: number
  /** Deadline of one JWKS fetch (URLs); see oidc-keys.ts. */
  jwksTimeoutMs?: number
  /** How often a JWKS file is checked for changes; see oidc-keys.ts. */
  jwksFileCheckMs?: number
}

export interface OidcVerifierComponents {
  logger: Logger
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number
  /** The issuer's keys; default a source over `init.jwks`. */
  keys?: OidcKeySource
}

/** Who a valid OIDC token says the agent is, and what it is granted. */
export interface OidcIdentity {
  /** The token's `sub`, e.g. `system:serviceaccount:pollen:agent`. */
  subject: string
  scope: string[]
  /** The OIDC token's expiry, ms since the epoch. */
  expiresAt: number
}

/** Header parameters that would let a token choose its own key. */
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5c', 'x5u'] as const
const MAX_SUBJECT_LENGTH = 512
const PRINTABLE = /^[\x20-\x7e]+$/

export class OidcVerifier {
  readonly #init: OidcVerifierInit
  readonly #keys: OidcKeySource
  readonly #logger: Logger
  readonly #now: () => number
  readonly #maxLifetimeS: number

  /** Throws TypeError for an empty issuer, audience or JWKS location, RangeError for a lifetime that is not positive. */
  constructor(init: OidcVerifierInit, c: OidcVerifierComponents) {
    if (init.issuer === '' || init.audience === '' || init.jwks === '') throw new TypeError('OIDC verifier needs an issuer, an audience and a JWKS')
    this.#maxLifetimeS = init.maxLifetimeS ?? DEFAULT_OIDC_MAX_LIFETIME_S
    if (!(this.#maxLifetimeS > 0)) throw new RangeError('OIDC maximum token lifetime must be positive')
    this.#init = init
    this.#logger = c.logger
    this.#now = c.now ?? Date.now
    this.#keys = c.keys ?? oidcKeySource({ location: init.jwks, timeoutMs: init.jwksTimeoutMs, fileCheckMs: init.jwksFileCheckMs }, { logger: c.logger, now: this.#now })
  }

  /** Reads a JWKS file now, so that a bad one fails at start. Throws OidcKeysUnavailableError. */
  async load(): Promise<void> {
    await this.#keys.load()
  }

  /**
   * Returns the identity in a valid token. Throws OidcTokenDeniedError with the reason:
   * 'missing' (no token), 'malformed', 'algorithm' (not an asymmetric algorithm: none, HS*),
   * 'forbidden-header' (jwk, jku, x5c, x5u), 'unknown-key', 'signature', 'issuer', 'audience',
   * 'expired', 'not-yet-valid', 'subject' (no pattern allows `sub`). Throws
   * OidcKeysUnavailableError when the issuer's keys cannot be had.
   */
  async verify(token: unknown): Promise<OidcIdentity> {
    const header = inspectHeader(token)
    const nowMs = this.#now()
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token as string, this.#keys.getKey, {
        algorithms: [...OIDC_ALGORITHMS],
        issuer: this.#init.issuer,
        audience: this.#init.audience,
        requiredClaims: ['iss', 'aud', 'sub', 'exp'],
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(nowMs),
      }))
    } catch (err) {
      if (err instanceof OidcKeysUnavailableError) this.#logger.warn({ err: err.message, kid: header.kid }, 'OIDC keys unavailable')
      throw fromJoseError(err)
    }
    const subject = subjectOf(payload)
    if (subject === undefined) throw deny('malformed', `"sub" is not a string of 1 to ${MAX_SUBJECT_LENGTH} printable characters`)
    const nowS = Math.floor(nowMs / 1000)
    const exp = payload.exp as number
    if (typeof payload.iat === 'number' && payload.iat > nowS + CLOCK_TOLERANCE_S) throw deny('not-yet-valid', '"iat" is in the future', subject)
    const lifetimeS = exp - (typeof payload.iat === 'number' ? payload.iat : nowS)
    if (lifetimeS > this.#maxLifetimeS) throw deny('malformed', `lifetime exceeds ${this.#maxLifetimeS} s; ask the issuer for shorter-lived tokens`, subject)
    const subjects = this.#init.subjects
    if (subjects !== undefined && subjects.length > 0 && !subjects.some((p) => wildcardMatch(p, subject))) {
      throw deny('subject', `subject "${subject}" is not allowed`, subject)
    }
    return { subject, scope: [...(this.#init.scope ?? DEFAULT_OIDC_SCOPE)], expiresAt: exp * 1000 }
  }
}

/** Structural checks before jose: a bounded compact JWS whose header names an allowed algorithm and no key of its own. */
function inspectHeader(token: unknown): { kid: string | undefined } {
  if (typeof token !== 'string' || token === '') throw deny('missing', 'no OIDC token presented')
  if (token.length > MAX_OIDC_TOKEN_LENGTH) throw deny('malformed', `token is longer than ${MAX_OIDC_TOKEN_LENGTH} characters`)
  if (token.split('.').length !== 3) throw deny('malformed', 'token is not a compact JWS of three parts')
  let header: Record<string, unknown>
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>
  } catch (cause) {
    throw new OidcTokenDeniedError('malformed', 'token header is not base64url JSON', { cause })
  }
  if (typeof header.alg !== 'string' || !OIDC_ALGORITHMS.includes(header.alg)) {
    throw deny('algorithm', `"alg" must be one of ${OIDC_ALGORITHMS.join(', ')}`)
  }
  for (const param of FORBIDDEN_HEADERS) {
    if (Object.hasOwn(header, param)) throw deny('forbidden-header', `header parameter "${param}" is not accepted`)
  }
  return { kid: typeof header.kid === 'string' ? header.kid.slice(0, 100) : undefined }
}

function subjectOf(payload: JWTPayload): string | undefined {
  const sub = payload.sub
  return typeof sub === 'string' && sub.length <= MAX_SUBJECT_LENGTH && PRINTABLE.test(sub) ? sub : undefined
}

function deny(reason: OidcDenial, message: string, subject?: string): OidcTokenDeniedError {
  return new OidcTokenDeniedError(reason, message, subject === undefined ? undefined : { subject })
}

/** Maps a jose failure to a refusal; our own errors pass unchanged, and so do errors that are not jose's (bugs). */
function fromJoseError(err: unknown): unknown {
  if (!(err instanceof errors.JOSEError)) return err
  // Claim failures come after the signature verified: their `sub` is the issuer's word.
  const claims = err instanceof errors.JWTClaimValidationFailed || err instanceof errors.JWTExpired ? err.payload : undefined
  const subject = claims === undefined ? undefined : subjectOf(claims)
  const [reason, message] = joseReason(err)
  return new OidcTokenDeniedError(reason, message, { cause: err, ...(subject === undefined ? {} : { subject }) })
}

function joseReason(err: InstanceType<typeof errors.JOSEError>): [OidcDenial, string] {
  if (err instanceof errors.JWTExpired) return ['expired', 'token has expired']
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason !== 'check_failed') return ['malformed', `claim "${err.claim}" is missing or invalid`]
    if (err.claim === 'iss') return ['issuer', 'token was issued by another issuer']
    if (err.claim === 'aud') return ['audience', 'token is for another audience']
    if (err.claim === 'nbf' || err.claim === 'iat') return ['not-yet-valid', `"${err.claim}" is in the future`]
    return ['malformed', `claim "${err.claim}" is invalid`]
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return ['signature', 'signature does not verify with the issuer\'s key']
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return ['algorithm', 'algorithm not allowed']
  if (err instanceof errors.JWKInvalid || err instanceof errors.JWKSInvalid) return ['unknown-key', 'the issuer\'s key for this token is unusable']
  return ['malformed', 'token failed verification']
}
