import {
  BlobUnknownError,
  ManifestUnknownError,
  UpstreamDeniedError,
  UpstreamRateLimitedError,
  UpstreamUnauthorizedError,
  UpstreamUnavailableError,
  type OciErrorCode,
} from '../../protocol/errors.js'
import { isOciErrorCode } from '../../protocol/oci-errors.js'
import { ERROR_BODY_LIMIT_BYTES } from './constants.js'
import { UpstreamRejectedError } from './errors.js'
import { RetryableError, parseRetryAfter } from './retry.js'
import { headerValue, readPrefix, type Response } from './transport.js'

/** What a request was about, for error messages. */
export interface Subject {
  /** The remote as messages name it: `upstream docker.io`, `seed 10.0.0.5:5000`. */
  who: string
  kind: 'manifest' | 'blob'
  repo: string
  /** The tag or digest. */
  ref: string
  /** Removes secrets from text the upstream sent. */
  redact(text: string): string
}

/**
 * Turns an unwanted upstream response into the error to throw, reading at most
 * ERROR_BODY_LIMIT_BYTES of its body (to name the upstream's OCI code) and releasing the rest.
 * 404 → ManifestUnknownError / BlobUnknownError, 401 → UpstreamUnauthorizedError,
 * 403 → UpstreamDeniedError, 408/429/5xx → RetryableError, other → UpstreamRejectedError.
 */
export async function responseError(res: Response, s: Subject): Promise<Error> {
  const upstream = parseErrorBody(await readPrefix(res.body, ERROR_BODY_LIMIT_BYTES), s.redact)
  const detail = upstream === undefined ? '' : `: ${upstream.code}${upstream.message === '' ? '' : ` ${upstream.message}`}`
  const what = `${s.kind} ${s.repo}${s.kind === 'manifest' && !s.ref.includes(':') ? ':' : '@'}${s.ref}`
  switch (res.status) {
    case 404:
      return s.kind === 'manifest' ? new ManifestUnknownError(s.ref) : new BlobUnknownError(s.ref)
    case 401:
      return new UpstreamUnauthorizedError(`${s.who} refused ${what} (401${detail})`)
    case 403:
      return new UpstreamDeniedError(`${s.who} denied access to ${what}${detail}`)
    case 429:
      return new RetryableError(
        new UpstreamRateLimitedError(`${s.who} is rate limiting requests${detail}`),
        parseRetryAfter(headerValue(res.headers, 'retry-after')),
      )
    case 408:
      return new RetryableError(new UpstreamUnavailableError(`${s.who} timed out the request for ${what}`))
  }
  if (res.status >= 500) return new RetryableError(new UpstreamUnavailableError(`${s.who} answered ${res.status} for ${what}${detail}`))
  return new UpstreamRejectedError(res.status, upstream?.code, `${s.who} answered ${res.status} for ${what}${detail}`)
}

/** The first error of an OCI `{"errors":[…]}` body: its code and a short printable, redacted message. */
export function parseErrorBody(body: Buffer, redact: (text: string) => string): { code: OciErrorCode; message: string } | undefined {
  let doc: unknown
  try {
    doc = JSON.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  const first = (doc as { errors?: unknown } | null)?.errors
  if (!Array.isArray(first) || first.length === 0) return undefined
  const e = first[0] as { code?: unknown; message?: unknown } | null
  if (!isOciErrorCode(e?.code)) return undefined
  const raw = typeof e?.message === 'string' ? e.message : ''
  const message = redact(raw).slice(0, 200).replace(/[^\x20-\x7e]/g, '?')
  return { code: e.code, message }
}
