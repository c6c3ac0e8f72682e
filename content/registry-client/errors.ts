import { PollenError, type OciErrorCode } from '../../protocol/errors.js'

/** The Docker config file given for upstream credentials cannot be used. The message never holds a secret. */
export class CredentialsFileError extends PollenError {
  constructor(message: string) {
    super('CredentialsFileError', 'INTERNAL', message)
  }
}

/** An https upstream named an http token realm; credentials would travel in clear. */
export class InsecureRealmError extends PollenError {
  constructor(realmHost: string, registryHost: string) {
    super('InsecureRealmError', 'UNAUTHORIZED', `upstream ${registryHost} asked for credentials at plain-http realm ${realmHost}; refused`)
  }
}

/** The upstream broke the protocol (a bad Content-Range, no length, a bad redirect). Resumable like an outage. */
export class UpstreamProtocolError extends PollenError {
  constructor(message: string) {
    super('UpstreamProtocolError', 'UNAVAILABLE', message)
  }
}

/** Codes of an upstream's 4xx error body that are passed on as they are; any other code becomes UNAVAILABLE. */
const PASSED_ON = new Set<OciErrorCode>([
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'MANIFEST_BLOB_UNKNOWN',
  'BLOB_UNKNOWN',
  'DIGEST_INVALID',
  'SIZE_INVALID',
  'UNSUPPORTED',
])

/** The upstream answered with a 4xx that has no dedicated error (400, 405, 415…). `status` is the upstream's. */
export class UpstreamRejectedError extends PollenError {
  readonly status: number
  constructor(status: number, upstreamCode: OciErrorCode | undefined, message: string) {
    super('UpstreamRejectedError', upstreamCode !== undefined && PASSED_ON.has(upstreamCode) ? upstreamCode : 'UNAVAILABLE', message)
    this.status = status
  }
}

/** A blob was asked of the upstream source without the repository it belongs to. */
export class RepositoryRequiredError extends PollenError {
  constructor(digest: string) {
    super('RepositoryRequiredError', 'INTERNAL', `blob ${digest} cannot be fetched upstream without its repository`)
  }
}
