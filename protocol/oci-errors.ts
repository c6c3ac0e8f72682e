import type { OciErrorCode } from './errors.js'
import { MethodNotAllowedError, PollenError } from './errors.js'

/** The OCI distribution error table: each code, its HTTP status and its standard message. */
export const OCI_ERRORS: Readonly<Record<OciErrorCode, { status: number; message: string }>> = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 404, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 415, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  INTERNAL: { status: 500, message: 'internal error' },
}

export interface OciErrorBody {
  errors: Array<{ code: OciErrorCode; message: string; detail?: unknown }>
}

/** Builds the `{"errors":[…]}` body. */
export function ociErrorBody(code: OciErrorCode, message?: string, detail?: unknown): OciErrorBody {
  const entry: OciErrorBody['errors'][number] = { code, message: message ?? OCI_ERRORS[code].message }
  if (detail !== undefined) entry.detail = detail
  return { errors: [entry] }
}

/**
 * Maps any thrown value to an HTTP status and OCI error body. Pollen domain errors keep
 * their code and message; anything else becomes INTERNAL with a generic message, so
 * internals (paths, stack traces) never reach a client.
 */
export function toOciError(err: unknown): { status: number; body: OciErrorBody } {
  // The OCI table has no code of its own for a method not allowed: UNSUPPORTED, with HTTP's 405.
  if (err instanceof MethodNotAllowedError) return { status: 405, body: ociErrorBody(err.ociCode, err.message) }
  if (err instanceof PollenError) {
    return { status: OCI_ERRORS[err.ociCode].status, body: ociErrorBody(err.ociCode, err.message, err.detail) }
  }
  return { status: 500, body: ociErrorBody('INTERNAL') }
}

/** True when `code` is one of the table's codes (for parsing an upstream's error body). */
export function isOciErrorCode(code: unknown): code is OciErrorCode {
  return typeof code === 'string' && Object.hasOwn(OCI_ERRORS, code)
}
