import { PollenError } from '../../protocol/errors.js'

/** The seed could not be reached, did not answer within the deadline, or failed (5xx, 408, 429). Worth retrying. */
export class SeedUnavailableError extends PollenError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SeedUnavailableError', 'UNAVAILABLE', message, options)
  }
}

/** The seed answered 200 with a body that is not what the endpoint promises. */
export class SeedAnswerInvalidError extends PollenError {
  constructor(message: string) {
    super('SeedAnswerInvalidError', 'UNAVAILABLE', message)
  }
}

/**
 * The seed refused an enrollment (4xx other than 408/429). `reason` is the seed's denial
 * reason (`missing`, `revoked`, `signature`, …) when its message names one. Never carries a token.
 */
export class AdmissionRefusedError extends PollenError {
  readonly status: number
  readonly reason: string | undefined
  constructor(status: number, reason: string | undefined, message: string) {
    super('AdmissionRefusedError', status === 403 ? 'DENIED' : 'UNAUTHORIZED', message)
    this.status = status
    this.reason = reason
  }
}

/** The OIDC token file could not be read, is empty, or is too long. Worth retrying: projected tokens are rewritten in place. */
export class OidcTokenUnavailableError extends PollenError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OidcTokenUnavailableError', 'UNAVAILABLE', message, options)
  }
}
