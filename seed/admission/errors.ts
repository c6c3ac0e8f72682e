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


/** A proof of PeerId key possession was refused. */

/** A string that should be a libp2p PeerId is not one. */
export class PeerIdInvalidError extends PollenError {
  constructor(value: string) {
    super('PeerIdInvalidError', 'DENIED', `"${value.slice(0, 100)}" is not a libp2p PeerId`)
  }
}

export { AdmissionProofError, type ProofDenial } from '../../content/admission/proof-errors.js'
