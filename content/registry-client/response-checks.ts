import { parseDigest, type Digest } from '../../protocol/digest.js'
import { digestOf } from '../../protocol/digest-verifier.js'
import { DigestMismatchError } from '../../protocol/errors.js'
import type { Reference } from '../../protocol/reference.js'
import { UpstreamProtocolError } from './errors.js'
import { headerValue, parseLength, type Response } from './transport.js'

/** Checks of an upstream's successful answers: a 206's Content-Range, a manifest's digests. */

/** The total size from a 206 answer to `bytes=<offset>-`; throws UpstreamProtocolError when it does not cover [offset, end]. */
export function partialSize(res: Response, offset: number, who = 'upstream'): number {
  const header = headerValue(res.headers, 'content-range') ?? ''
  const m = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16})$/.exec(header.trim())
  const [start, end, size] = m === null ? [] : [Number(m[1]), Number(m[2]), Number(m[3])]
  const length = parseLength(headerValue(res.headers, 'content-length'))
  if (start !== offset || end === undefined || size === undefined || end !== size - 1 || (length !== undefined && length !== size - offset)) {
    res.body.destroy()
    throw new UpstreamProtocolError(`${who} answered Range ${`bytes=${offset}-`} with Content-Range "${header.slice(0, 80).replace(/[^\x20-\x7e]/g, '?')}"`)
  }
  return size
}

/**
 * The digest to report for a manifest: the upstream's Docker-Content-Digest when it parses
 * (an unparseable one is ignored), else the digest asked for. Throws DigestMismatchError when
 * `bytes` (GET) do not match the digest asked for or the header, or the header names another
 * digest than the one asked for.
 */
export function checkManifestDigest(header: string | undefined, ref: Reference, bytes: Buffer | undefined): string | undefined {
  let claimed: Digest | undefined
  try {
    claimed = header === undefined ? undefined : parseDigest(header.trim())
  } catch {
    claimed = undefined
  }
  const expected = ref.kind === 'digest' ? ref.digest : undefined
  if (bytes !== undefined) {
    for (const d of [expected, claimed]) {
      if (d === undefined) continue
      const actual = digestOf(bytes, d.algorithm)
      if (actual !== d.value) throw new DigestMismatchError(d.value, actual)
    }
  } else if (expected !== undefined && claimed !== undefined && claimed.algorithm === expected.algorithm && claimed.value !== expected.value) {
    throw new DigestMismatchError(expected.value, claimed.value)
  }
  return claimed?.value ?? expected?.value
}
