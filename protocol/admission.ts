/**
 * Admission tokens: the claims schema, the scope-pattern grammar and the typed
 * refusals every hop raises. Pure (no I/O, no crypto); the verifier that checks
 * signatures lives in `content/admission/`.
 *
 * Scope patterns name repositories as `[<host>/]<name>`, glob per path component:
 *   - `*` as a whole component matches exactly one name component; `**` (only ever a whole
 *     component) matches any number of them, zero included. Inside a component `*` matches
 *     any run of characters within that component (`alp*` covers `alpine`, never `alp/x`).
 *     Globs never match the host.
 *   - The first component is a registry host when the pattern has at least two
 *     components and the first contains `.` or `:` or is `localhost` (Docker's rule).
 *     It must then be a literal host[:port]; it is canonicalised like a request's `ns`
 *     (lowercase, `index.docker.io` → `docker.io`) and must equal the repository's `ns`.
 *   - Without such a host the pattern matches the name on every registry:
 *     `library/*` covers `docker.io/library/alpine` and `ghcr.io/library/x`.
 *     (A name whose first component contains a dot can therefore only be scoped with a host.)
 *   - Names are matched in canonical form, so Docker Hub's implicit `library/` is
 *     spelt out: `docker.io/library/alpine`, never `docker.io/alpine`.
 * Examples: `library/*` covers `library/alpine`, not `library/a/b`; `team-a/**` covers
 * `team-a`, `team-a/x` and `team-a/x/y`; `**` covers every repository.
 */
import { PollenError, type OciErrorCode } from './errors.js'
import { parseRegistryHost, parseRepository, type Repository } from './reference.js'

/** The only JWS algorithm an admission token may use (Ed25519). */
export const ADMISSION_ALG = 'EdDSA'
/** Longest lifetime (`exp - iat`) any verifier accepts. */
export const MAX_TOKEN_LIFETIME_S = 3600
/** Lifetime the seed gives a token when nobody asks for another. */
export const DEFAULT_TOKEN_LIFETIME_S = 600
/** Clock skew tolerated on `exp`, `nbf` and `iat`. */
export const CLOCK_TOLERANCE_S = 30
/** Longest compact token (characters) looked at; longer ones are refused unparsed. */
export const MAX_TOKEN_LENGTH = 8192
/** Longest OIDC token (characters) an agent sends or the seed looks at at enrollment. */
export const MAX_OIDC_TOKEN_LENGTH = 12 * 1024
/** Most scope patterns one token may carry. */
export const MAX_SCOPE_PATTERNS = 64
/** Longest scope pattern (a host of 255 plus a name of 255, and the slash). */
export const MAX_SCOPE_PATTERN_LENGTH = 511
/** A component with `*` inside: name-grammar characters and single stars. */
const PARTIAL_GLOB = /^[a-z0-9._*-]+$/
/** Longest `iss`, `sub`, `jti` or `aud` accepted. */
const MAX_CLAIM_STRING_LENGTH = 256

/** Claims of an admission token, as issued by the seed and returned by a verifier. */
export interface AdmissionClaims {
  iss: string
  /** Exactly one audience; a single-element array on the wire is normalised to its element. */
  aud: string
  /** The agent's libp2p PeerId (`peerId.toString()`). */
  sub: string
  iat: number
  nbf: number
  exp: number
  jti: string
  /** Repository patterns, see the module comment. */
  scope: string[]
}

/** Every reason a token is refused; stable, usable as a metrics label. */
export const ADMISSION_DENIAL_REASONS = [
  'missing',
  'malformed',
  'expired',
  'not-yet-valid',
  'issuer',
  'audience',
  'signature',
  'unknown-key',
  'algorithm',
  'forbidden-header',
  'peer-mismatch',
  'revoked',
  'scope',
  'subject',
] as const
export type AdmissionDenialReason = (typeof ADMISSION_DENIAL_REASONS)[number]

/**
 * Reasons where the caller is known but not allowed (403); all others are 401.
 * 'subject': a valid OIDC token whose `sub` no configured subject pattern allows.
 */
const FORBIDDEN_REASONS: ReadonlySet<AdmissionDenialReason> = new Set(['revoked', 'scope', 'subject'])

/**
 * A request was refused for want of a valid admission token. `reason` says why.
 * The message never contains the token; attacker-supplied strings are clipped and sanitised.
 */
export class AdmissionDeniedError extends PollenError {
  readonly reason: AdmissionDenialReason
  constructor(reason: AdmissionDenialReason, message: string, options?: { cause?: unknown }) {
    const ociCode: OciErrorCode = FORBIDDEN_REASONS.has(reason) ? 'DENIED' : 'UNAUTHORIZED'
    super('AdmissionDeniedError', ociCode, `admission token refused (${reason}): ${message}`, options)
    this.reason = reason
  }
}

/** The verification keys could not be obtained (the caller's JWKS provider failed or returned junk). */
export class AdmissionKeysUnavailableError extends PollenError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('AdmissionKeysUnavailableError', 'UNAVAILABLE', message, options)
  }
}

/** A scope pattern does not follow the grammar in this module's comment. */
export class ScopePatternInvalidError extends PollenError {
  constructor(pattern: unknown, why: string) {
    super('ScopePatternInvalidError', 'NAME_INVALID', `invalid scope pattern ${quote(pattern)}: ${why}`)
  }
}

/** A parsed scope pattern. */
export interface ScopePattern {
  /** Canonical registry host, or undefined when the pattern matches on every registry. */
  readonly host: string | undefined
  /** Name components: literals, `*` or `**`. */
  readonly components: readonly string[]
}

/**
 * Parses a scope pattern (grammar in the module comment).
 * Throws ScopePatternInvalidError for a non-string, empty or overlong pattern, an empty
 * component, `.`/`..`, `**` inside a component, a glob in the host, or a character outside
 * the OCI name grammar (plus `*`).
 */
export function parseScopePattern(pattern: unknown): ScopePattern {
  if (typeof pattern !== 'string' || pattern.length === 0) throw new ScopePatternInvalidError(pattern, 'not a non-empty string')
  if (pattern.length > MAX_SCOPE_PATTERN_LENGTH) throw new ScopePatternInvalidError(pattern, `longer than ${MAX_SCOPE_PATTERN_LENGTH} characters`)
  const parts = pattern.split('/')
  for (const part of parts) {
    if (part === '') throw new ScopePatternInvalidError(pattern, 'empty path component')
    if (part === '.' || part === '..') throw new ScopePatternInvalidError(pattern, `"${part}" is not a path component`)
  }
  let host: string | undefined
  const first = parts[0] ?? ''
  if (parts.length >= 2 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (first.includes('*')) throw new ScopePatternInvalidError(pattern, 'globs are not allowed in the registry host')
    try {
      host = parseRegistryHost(first)
    } catch {
      throw new ScopePatternInvalidError(pattern, 'invalid registry host')
    }
    parts.shift()
  }
  for (const part of parts) {
    if (part === '*' || part === '**') continue
    if (part.includes('**')) throw new ScopePatternInvalidError(pattern, '"**" must be a whole path component')
    if (part.includes('*')) {
      if (!PARTIAL_GLOB.test(part)) throw new ScopePatternInvalidError(pattern, 'component outside the OCI name grammar')
      continue
    }
    if (!isNameComponent(part)) throw new ScopePatternInvalidError(pattern, 'component outside the OCI name grammar')
  }
  return { host, components: parts }
}

/**
 * True when `pattern` covers `repository`, which must already be canonical
 * (`ns` from parseRegistryHost, `name` from parseRepository).
 */
export function scopePatternCovers(pattern: ScopePattern, repository: Repository): boolean {
  if (pattern.host !== undefined && pattern.host !== repository.ns) return false
  return globMatch(pattern.components, repository.name.split('/'))
}

/**
 * True when at least one of `patterns` covers `repository`. The repository is
 * canonicalised first; an invalid one (empty `ns`, bad host, bad name) is covered by nothing.
 * A malformed pattern grants nothing (validate configured patterns with parseScopePattern).
 */
export function scopeCovers(patterns: readonly string[], repository: { ns: string; name: string }): boolean {
  let canonical: Repository
  try {
    if (typeof repository.ns !== 'string' || repository.ns === '') return false
    canonical = parseRepository(parseRegistryHost(repository.ns), repository.name)
  } catch {
    return false
  }
  for (const raw of patterns) {
    let pattern: ScopePattern
    try {
      pattern = parseScopePattern(raw)
    } catch {
      continue
    }
    if (scopePatternCovers(pattern, canonical)) return true
  }
  return false
}

/**
 * Returns a clean copy of a token's claims (unknown claims dropped).
 * Throws AdmissionDeniedError 'malformed' when a claim is missing or of the wrong type,
 * a time is not a non-negative integer, `exp` is not after `iat` and `nbf`, the lifetime
 * `exp - iat` exceeds MAX_TOKEN_LIFETIME_S, or a scope pattern is invalid; and
 * 'audience' when `aud` is an array of other than exactly one audience.
 * `sub` is only checked to be a string here: PeerId validation needs libp2p (see the verifier).
 */
export function parseAdmissionClaims(payload: unknown): AdmissionClaims {
  if (!isRecord(payload)) throw malformed('claims are not a JSON object')
  const iss = claimString(payload, 'iss')
  const sub = claimString(payload, 'sub')
  const jti = claimString(payload, 'jti')
  const aud = audience(payload.aud)
  const iat = claimTime(payload, 'iat')
  const nbf = claimTime(payload, 'nbf')
  const exp = claimTime(payload, 'exp')
  if (exp <= iat || exp <= nbf) throw malformed('"exp" is not after "iat" and "nbf"')
  if (exp - iat > MAX_TOKEN_LIFETIME_S) throw malformed(`lifetime exceeds ${MAX_TOKEN_LIFETIME_S} s`)
  const rawScope = payload.scope
  if (!Array.isArray(rawScope)) throw malformed('"scope" is not an array')
  if (rawScope.length > MAX_SCOPE_PATTERNS) throw malformed(`"scope" has more than ${MAX_SCOPE_PATTERNS} patterns`)
  const scope: string[] = []
  for (const entry of rawScope as unknown[]) {
    try {
      parseScopePattern(entry)
    } catch (cause) {
      throw new AdmissionDeniedError('malformed', 'invalid "scope" pattern', { cause })
    }
    scope.push(entry as string)
  }
  return { iss, aud, sub, iat, nbf, exp, jti, scope }
}

/**
 * Checks the token's times against `nowS` (seconds since the epoch) with `toleranceS`
 * of skew, with jose's boundaries. Throws AdmissionDeniedError 'not-yet-valid' when
 * `nbf` or `iat` is later than now + tolerance, 'expired' when `exp <= now - tolerance`.
 */
export function checkAdmissionTimes(claims: Pick<AdmissionClaims, 'iat' | 'nbf' | 'exp'>, nowS: number, toleranceS: number): void {
  if (claims.nbf > nowS + toleranceS) throw new AdmissionDeniedError('not-yet-valid', '"nbf" is in the future')
  if (claims.iat > nowS + toleranceS) throw new AdmissionDeniedError('not-yet-valid', '"iat" is in the future')
  if (claims.exp <= nowS - toleranceS) throw new AdmissionDeniedError('expired', 'token has expired')
}

/** A claim or pattern for a message: clipped, printable, quoted. Never used on tokens. */
function quote(value: unknown): string {
  if (typeof value !== 'string') return `(${value === null ? 'null' : typeof value})`
  const cut = value.length > 64 ? `${value.slice(0, 64)}…` : value
  return `"${cut.replace(/[^\x20-\x7e…]/g, '?')}"`
}

function isNameComponent(part: string): boolean {
  try {
    // ns '' keeps parseRepository from applying Docker Hub's library/ rule.
    parseRepository('', part)
    return true
  } catch {
    return false
  }
}

/** Component-wise glob match, O(p·n), no backtracking blow-up. */
function globMatch(pattern: readonly string[], name: readonly string[]): boolean {
  // reach[j]: pattern[0..i) matches name[0..j)
  let reach = new Array<boolean>(name.length + 1).fill(false)
  reach[0] = true
  for (const p of pattern) {
    const next = new Array<boolean>(name.length + 1).fill(false)
    for (let j = 0; j <= name.length; j++) {
      if (p === '**') {
        next[j] = (reach[j] ?? false) || (j > 0 && (next[j - 1] ?? false))
      } else if (j > 0 && (reach[j - 1] ?? false)) {
        next[j] = componentMatches(p, name[j - 1] ?? '')
      }
    }
    reach = next
  }
  return reach[name.length] ?? false
}

function componentMatches(pattern: string, component: string): boolean {
  if (pattern === '*') return true
  if (!pattern.includes('*')) return pattern === component
  return wildcardMatch(pattern, component)
}

/** True when `text` matches `pattern`, where `*` matches any run of characters (`/` and `:` included); O(p·s) at worst. */
export function wildcardMatch(pattern: string, text: string): boolean {
  let p = 0
  let t = 0
  let star = -1
  let mark = 0
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++
      t++
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++
      mark = t
    } else if (star !== -1) {
      p = star + 1
      t = ++mark
    } else {
      return false
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++
  return p === pattern.length
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function malformed(message: string): AdmissionDeniedError {
  return new AdmissionDeniedError('malformed', message)
}

function claimString(payload: Record<string, unknown>, claim: string): string {
  const value = Object.hasOwn(payload, claim) ? payload[claim] : undefined
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_CLAIM_STRING_LENGTH) {
    throw malformed(`"${claim}" is not a string of 1 to ${MAX_CLAIM_STRING_LENGTH} characters`)
  }
  return value
}

function claimTime(payload: Record<string, unknown>, claim: string): number {
  const value = Object.hasOwn(payload, claim) ? payload[claim] : undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw malformed(`"${claim}" is not a non-negative integer`)
  return value
}

function audience(value: unknown): string {
  if (Array.isArray(value) && value.length !== 1) throw new AdmissionDeniedError('audience', 'token must name exactly one audience')
  const single: unknown = Array.isArray(value) ? value[0] : value
  if (typeof single !== 'string' || single.length === 0 || single.length > MAX_CLAIM_STRING_LENGTH) throw malformed('"aud" is not a string')
  return single
}
