import { describe, expect, it } from 'vitest'
import { digestOf } from '../../protocol/digest-verifier.js'
import { DigestMismatchError } from '../../protocol/errors.js'
import { parseReference } from '../../protocol/reference.js'
import { UpstreamProtocolError } from './errors.js'
import { checkManifestDigest, partialSize } from './response-checks.js'
import type { Response } from './transport.js'

const manifest = Buffer.from('{"schemaVersion":2}')
const good = digestOf(manifest)
const other = digestOf(Buffer.from('something else'))

describe('checkManifestDigest', () => {
  it('reports the upstream header, or the digest asked for when the header is absent or does not parse', () => {
    expect(checkManifestDigest(good, parseReference('latest'), manifest)).toBe(good)
    expect(checkManifestDigest(undefined, parseReference(good), manifest)).toBe(good)
    expect(checkManifestDigest('not-a-digest', parseReference(good), manifest)).toBe(good)
    expect(checkManifestDigest(undefined, parseReference('latest'), manifest)).toBeUndefined()
  })

  it('rejects bytes that match neither the digest asked for nor the header', () => {
    expect(() => checkManifestDigest(undefined, parseReference(other), manifest)).toThrow(DigestMismatchError)
    expect(() => checkManifestDigest(other, parseReference('latest'), manifest)).toThrow(DigestMismatchError)
  })

  it('rejects a HEAD whose header names another digest than the one asked for', () => {
    expect(() => checkManifestDigest(other, parseReference(good), undefined)).toThrow(DigestMismatchError)
    expect(checkManifestDigest(good, parseReference(good), undefined)).toBe(good)
  })
})

describe('partialSize', () => {
  function answer(headers: Record<string, string>): Response & { destroyed: boolean } {
    const res = { status: 206, headers, url: new URL('http://127.0.0.1/'), destroyed: false, body: { destroy: () => void (res.destroyed = true) } }
    return res as unknown as Response & { destroyed: boolean }
  }

  it('returns the total size of a 206 that covers the rest of the blob from the offset', () => {
    expect(partialSize(answer({ 'content-range': 'bytes 100-999/1000', 'content-length': '900' }), 100)).toBe(1000)
    expect(partialSize(answer({ 'content-range': 'bytes 100-999/1000' }), 100)).toBe(1000)
  })

  it('rejects, and drops the body of, a 206 for another start, a shorter range or a mismatched length', () => {
    const cases: Array<Record<string, string>> = [
      { 'content-range': 'bytes 0-999/1000' },
      { 'content-range': 'bytes 100-500/1000' },
      { 'content-range': 'bytes 100-999/1000', 'content-length': '10' },
      { 'content-range': 'bytes */1000' },
      {},
    ]
    for (const headers of cases) {
      const res = answer(headers)
      expect(() => partialSize(res, 100), JSON.stringify(headers)).toThrow(UpstreamProtocolError)
      expect(res.destroyed).toBe(true)
    }
  })
})
