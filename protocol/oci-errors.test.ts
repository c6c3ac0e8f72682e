import { describe, expect, it } from 'vitest'
import { BlobUnknownError, DigestInvalidError, RangeNotSatisfiableError, UpstreamDeniedError, UpstreamUnauthorizedError } from './errors.js'
import { OCI_ERRORS, isOciErrorCode, ociErrorBody, toOciError } from './oci-errors.js'
import { contentRange, parseRange } from './range.js'

describe('OCI error table', () => {
  it('maps domain errors to their OCI code and status', () => {
    expect(toOciError(new BlobUnknownError('sha256:x'))).toMatchObject({ status: 404, body: { errors: [{ code: 'BLOB_UNKNOWN' }] } })
    expect(toOciError(new DigestInvalidError('bad')).status).toBe(400)
    expect(toOciError(new UpstreamUnauthorizedError('no')).status).toBe(401)
    expect(toOciError(new UpstreamDeniedError('no')).status).toBe(403)
    expect(toOciError(new RangeNotSatisfiableError('bytes=9-', 3)).status).toBe(416)
  })

  it('hides the message of unexpected errors behind INTERNAL', () => {
    const out = toOciError(new Error('/secret/path exploded'))
    expect(out.status).toBe(500)
    expect(JSON.stringify(out.body)).not.toContain('/secret/path')
  })

  it('builds the {"errors":[…]} body with the standard message by default', () => {
    expect(ociErrorBody('NAME_UNKNOWN')).toEqual({ errors: [{ code: 'NAME_UNKNOWN', message: OCI_ERRORS.NAME_UNKNOWN.message }] })
    expect(isOciErrorCode('DENIED')).toBe(true)
    expect(isOciErrorCode('toString')).toBe(false)
  })
})

describe('parseRange', () => {
  it('parses open, closed and suffix ranges', () => {
    expect(parseRange('bytes=0-', 10)).toEqual({ start: 0, end: 9 })
    expect(parseRange('bytes=3-5', 10)).toEqual({ start: 3, end: 5 })
    expect(parseRange('bytes=3-500', 10)).toEqual({ start: 3, end: 9 })
    expect(parseRange('bytes=-4', 10)).toEqual({ start: 6, end: 9 })
    expect(contentRange({ start: 3, end: 5 }, 10)).toBe('bytes 3-5/10')
  })

  it('refuses malformed bytes ranges with RangeNotSatisfiableError', () => {
    for (const h of ['bytes=abc', 'bytes=-', 'bytes=1-2-3', 'bytes=99999999999999999999-', 'bytes= 1-2']) {
      expect(() => parseRange(h, 10)).toThrow(RangeNotSatisfiableError)
    }
  })

  it('ignores absent, multi-part and foreign-unit ranges', () => {
    expect(parseRange(undefined, 10)).toBeUndefined()
    expect(parseRange('bytes=0-1,3-4', 10)).toBeUndefined()
    expect(parseRange('items=0-1', 10)).toBeUndefined()
  })

  it('throws RangeNotSatisfiableError past the end', () => {
    expect(() => parseRange('bytes=10-', 10)).toThrow(RangeNotSatisfiableError)
    expect(() => parseRange('bytes=5-2', 10)).toThrow(RangeNotSatisfiableError)
    expect(() => parseRange('bytes=-0', 10)).toThrow(RangeNotSatisfiableError)
  })
})
