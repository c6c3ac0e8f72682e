import type { AdmissionDenialReason } from '../../protocol/admission.js'
import { PollenError } from '../../protocol/errors.js'

/** Domain errors of the seed's admission components. Tests and the HTTP edge match on `code`. */

/**
 * A persisted signing key exists but cannot be used. Never replaced silently: a new key
 * would invalidate every token the old one signed, and a damaged file may be a sign of tampering.
 */
export class SigningKeyInvalidError extends PollenError {
  readonly path: string
  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super('SigningKeyInvalidError', 'INTERNAL', `admission signing key ${path} is unusable (${reason}); restore it from a backup, or delete it to drop that key`, options)
    this.path = path
  }
}

/** An admission state file (join tokens, revocations) exists but cannot be parsed. Never reset silently. */
export class AdmissionStateInvalidError extends PollenError {
  readonly path: string
  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super('AdmissionStateInvalidError', 'INTERNAL', `admission state file ${path} is unusable (${reason}); restore it from a backup`, options)
    this.path = path
  }
}

/** Another process held an admission state file's lock for too long. */
export class AdmissionLockTimeoutError extends PollenError {
  constructor(path: string) {
    super('AdmissionLockTimeoutError', 'UNAVAILABLE', `timed out waiting for lock ${path}`)
  }
}

export type JoinTokenDenial = 'unknown' | 'expired' | 'used-up'

/** A join token was refused. The message never contains the token. */
export class JoinTokenDeniedError extends PollenError {
  readonly reason: JoinTokenDenial
  constructor(reason: JoinTokenDenial) {
    super('JoinTokenDeniedError', 'UNAUTHORIZED', `join token refused: ${reason}`)
    this.reason = reason
  }
}

/** Why an OIDC token was refused: the admission reasons that apply to it. */
export type OidcDenial = Extract<
  AdmissionDenialReason,
  'missing' | 'malformed' | 'expired' | 'not-yet-valid' | 'issuer' | 'audience' | 'signature' | 'unknown-key' | 'algorithm' | 'forbidden-header' | 'subject'
>

/**
 * An OIDC token was refused. `subject` is its `sub` when the signature was verified (so it is
 * the issuer's word, fit for the audit log); the message never contains the token.
 */
export class OidcTokenDeniedError extends PollenError {
  readonly reason: OidcDenial
  readonly subject: string | undefined
  /** The message without the reason prefix. */
  readonly why: string
  constructor(reason: OidcDenial, why: string, options?: { cause?: unknown; subject?: string }) {
    super('OidcTokenDeniedError', reason === 'subject' ? 'DENIED' : 'UNAUTHORIZED', `OIDC token refused (${reason}): ${why}`, options)
    this.reason = reason
    this.subject = options?.subject
    this.why = why
  }
}

/** The OIDC issuer's keys could not be obtained (JWKS file unreadable or invalid, URL unreachable). Worth retrying. */
export class OidcKeysUnavailableError extends PollenError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OidcKeysUnavailableError', 'UNAVAILABLE', message, options)
  }
}


/** A string that should be a libp2p PeerId is not one. */
export class PeerIdInvalidError extends PollenError {
  constructor(value: string) {
    super('PeerIdInvalidError', 'DENIED', `"${value.slice(0, 100)}" is not a libp2p PeerId`)
  }
}

export { AdmissionProofError, type ProofDenial } from '../../content/admission/proof-errors.js'
