import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { isDigest, parseDigest } from './digest.js'
import { DigestVerifier, createVerifyingStream, digestOf } from './digest-verifier.js'
import { DigestInvalidError, DigestMismatchError, SizeMismatchError, UnsupportedDigestAlgorithmError } from './errors.js'

const sha256 = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`
const sha512 = (s: string) => `sha512:${createHash('sha512').update(s).digest('hex')}`

describe('parseDigest', () => {
  it('accepts sha256 and sha512 digests in lowercase hex', () => {
    expect(parseDigest(sha256('a'))).toMatchObject({ algorithm: 'sha256', hex: sha256('a').slice(7) })
    expect(parseDigest(sha512('a')).algorithm).toBe('sha512')
  })

  it('rejects uppercase hex with DigestInvalidError', () => {
    expect(() => parseDigest(sha256('a').toUpperCase().replace('SHA256', 'sha256'))).toThrow(DigestInvalidError)
  })

  it.each([
    ['', 'empty'],
    ['sha256', 'no colon'],
    [':abc', 'no algorithm'],
    ['sha256:', 'no hex'],
    ['sha256:abc', 'too short'],
    [`${sha256('a')}0`, 'too long'],
    [`sha256:${'g'.repeat(64)}`, 'not hex'],
    [`sha512:${'a'.repeat(64)}`, 'sha512 with sha256 length'],
    [`SHA256:${'a'.repeat(64)}`, 'uppercase algorithm'],
    [`sha256:${'a'.repeat(63)}/`, 'path character'],
    [`sha256:../../${'a'.repeat(58)}`, 'path traversal'],
    [`sha256:${'a'.repeat(1000)}`, 'oversized'],
  ])('rejects %j (%s) with DigestInvalidError', (input) => {
    expect(() => parseDigest(input)).toThrow(DigestInvalidError)
  })

  it.each(['md5:d41d8cd98f00b204e9800998ecf8427e', `sha384:${'a'.repeat(96)}`, `blake3:${'a'.repeat(64)}`])(
    'rejects the well-formed but unsupported %s with UnsupportedDigestAlgorithmError',
    (input) => {
      expect(() => parseDigest(input)).toThrow(UnsupportedDigestAlgorithmError)
      expect(isDigest(input)).toBe(false)
    },
  )
})

describe('DigestVerifier', () => {
  it('accepts content that matches in any chunking', () => {
    const v = new DigestVerifier(parseDigest(sha256('hello world')), 11)
    for (const part of ['hel', 'lo', ' ', 'world']) v.update(Buffer.from(part))
    expect(() => v.verify()).not.toThrow()
  })

  it('throws DigestMismatchError for wrong bytes of the right length', () => {
    const v = new DigestVerifier(parseDigest(sha256('hello world')), 11)
    v.update(Buffer.from('hello World'))
    expect(() => v.verify()).toThrow(DigestMismatchError)
  })

  it('throws SizeMismatchError as soon as more than the expected size arrives', () => {
    const v = new DigestVerifier(parseDigest(sha256('abc')), 3)
    v.update(Buffer.from('ab'))
    expect(() => v.update(Buffer.from('cd'))).toThrow(SizeMismatchError)
  })

  it('throws SizeMismatchError for short content', () => {
    const v = new DigestVerifier(parseDigest(sha256('abc')), 3)
    v.update(Buffer.from('ab'))
    expect(() => v.verify()).toThrow(SizeMismatchError)
  })

  it('verifies sha512 content', () => {
    const v = new DigestVerifier(parseDigest(sha512('abc')))
    v.update(Buffer.from('abc'))
    expect(() => v.verify()).not.toThrow()
  })
})

describe('createVerifyingStream', () => {
  it('passes matching bytes through unchanged', async () => {
    const out: Buffer[] = []
    await pipeline(Readable.from([Buffer.from('ab'), Buffer.from('c')]), createVerifyingStream(parseDigest(sha256('abc'))), async (src) => {
      for await (const c of src) out.push(c as Buffer)
    })
    expect(Buffer.concat(out).toString()).toBe('abc')
  })

  it('fails the pipeline with DigestMismatchError for wrong bytes', async () => {
    const run = pipeline(Readable.from([Buffer.from('abd')]), createVerifyingStream(parseDigest(sha256('abc'))), async (src) => {
      for await (const _ of src) void _
    })
    await expect(run).rejects.toBeInstanceOf(DigestMismatchError)
  })

  it('digestOf returns the canonical digest string', () => {
    expect(digestOf(Buffer.from('abc'))).toBe(sha256('abc'))
    expect(digestOf(Buffer.from('abc'), 'sha512')).toBe(sha512('abc'))
  })
})
