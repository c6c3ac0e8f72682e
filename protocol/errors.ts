/**
 * Domain errors shared by every Pollen component. Each has a stable `name` and
 * `code`; the translation to a wire (OCI) error happens once, at the HTTP edge.
 */
export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'RANGE_INVALID'
  | 'UNAVAILABLE'
  | 'INTERNAL'

/** Base class: every Pollen domain error carries the OCI code it maps to at the edge. */
export class PollenError extends Error {
  readonly ociCode: OciErrorCode
  readonly detail?: unknown
  constructor(name: string, ociCode: OciErrorCode, message: string, options?: { cause?: unknown; detail?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = name
    this.ociCode = ociCode
    this.detail = options?.detail
  }
  get code(): string {
    return this.name
  }
}

export class DigestInvalidError extends PollenError {
  constructor(message: string) {
    super('DigestInvalidError', 'DIGEST_INVALID', message)
  }
}

export class UnsupportedDigestAlgorithmError extends PollenError {
  constructor(algorithm: string) {
    super('UnsupportedDigestAlgorithmError', 'DIGEST_INVALID', `unsupported digest algorithm "${algorithm}" (sha256 and sha512 are supported)`)
  }
}

export class DigestMismatchError extends PollenError {
  readonly expected: string
  readonly actual: string
  constructor(expected: string, actual: string) {
    super('DigestMismatchError', 'DIGEST_INVALID', `content does not match digest: expected ${expected}, got ${actual}`)
    this.expected = expected
    this.actual = actual
  }
}

export class SizeMismatchError extends PollenError {
  constructor(expected: number, actual: number) {
    super('SizeMismatchError', 'SIZE_INVALID', `content size ${actual} does not match expected size ${expected}`)
  }
}

export class NameInvalidError extends PollenError {
  constructor(message: string) {
    super('NameInvalidError', 'NAME_INVALID', message)
  }
}

export class ReferenceInvalidError extends PollenError {
  constructor(message: string) {
    super('ReferenceInvalidError', 'MANIFEST_INVALID', message)
  }
}

export class RegistryUnknownError extends PollenError {
  constructor(ns: string) {
    super('RegistryUnknownError', 'NAME_UNKNOWN', `registry "${ns}" is not configured on this server`)
  }
}

export class BlobUnknownError extends PollenError {
  constructor(digest: string) {
    super('BlobUnknownError', 'BLOB_UNKNOWN', `blob ${digest} is unknown`)
  }
}

export class ManifestUnknownError extends PollenError {
  constructor(reference: string) {
    super('ManifestUnknownError', 'MANIFEST_UNKNOWN', `manifest ${reference} is unknown`)
  }
}

export class ManifestInvalidError extends PollenError {
  constructor(message: string) {
    super('ManifestInvalidError', 'MANIFEST_INVALID', message)
  }
}

export class RangeNotSatisfiableError extends PollenError {
  readonly size: number
  constructor(range: string, size: number) {
    super('RangeNotSatisfiableError', 'RANGE_INVALID', `range "${range}" cannot be satisfied for a blob of ${size} bytes`)
    this.size = size
  }
}

/** A method the pull API does not serve; answered 405 with `Allow` listing the methods it does. */
export class MethodNotAllowedError extends PollenError {
  readonly allow: readonly string[]
  constructor(method: string, allow: readonly string[]) {
    super('MethodNotAllowedError', 'UNSUPPORTED', `method ${method.slice(0, 16)} is not supported; this is a pull-only registry (${allow.join(', ')})`)
    this.allow = allow
  }
}

export class UpstreamUnauthorizedError extends PollenError {
  constructor(message: string) {
    super('UpstreamUnauthorizedError', 'UNAUTHORIZED', message)
  }
}

export class UpstreamDeniedError extends PollenError {
  constructor(message: string) {
    super('UpstreamDeniedError', 'DENIED', message)
  }
}

export class UpstreamRateLimitedError extends PollenError {
  constructor(message: string) {
    super('UpstreamRateLimitedError', 'TOOMANYREQUESTS', message)
  }
}

export class UpstreamUnavailableError extends PollenError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UpstreamUnavailableError', 'UNAVAILABLE', message, options)
  }
}

export class ForeignRealmError extends PollenError {
  constructor(realmHost: string, registryHost: string) {
    super(
      'ForeignRealmError',
      'UNAUTHORIZED',
      `upstream ${registryHost} asked for credentials at foreign realm host ${realmHost}; refused (allow it with a realm host list for that upstream)`,
    )
  }
}

export class StoreFullError extends PollenError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('StoreFullError', 'UNAVAILABLE', message, options)
  }
}
