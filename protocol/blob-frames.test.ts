import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  BLOB_PROTOCOL,
  FRAME_VERSION,
  FrameInvalidError,
  FrameReader,
  FrameTooLargeError,
  FrameVersionError,
  MAX_FRAME_BYTES,
  MAX_TOKEN_BYTES,
  decodeFrame,
  encodeRequest,
  encodeResponse,
  type BlobRequest,
  type BlobResponse,
  type FrameKind,
} from './blob-frames.js'
import { PollenError } from './errors.js'

const DIGEST = `sha256:${createHash('sha256').update('layer').digest('hex')}`
const DIGEST512 = `sha512:${createHash('sha512').update('layer').digest('hex')}`

/** A frame with the given length prefix, version, type and body (string bodies are UTF-8 encoded). */
function rawFrame(body: string | Uint8Array, opts: { version?: number; type?: number; length?: number } = {}): Uint8Array {
  const json = typeof body === 'string' ? new TextEncoder().encode(body) : body
  const out = new Uint8Array(6 + json.length)
  new DataView(out.buffer).setUint32(0, opts.length ?? json.length + 2)
  out[4] = opts.version ?? FRAME_VERSION
  out[5] = opts.type ?? 1
  out.set(json, 6)
  return out
}

const requestFrame = (body: unknown) => rawFrame(JSON.stringify(body), { type: 1 })
const responseFrame = (body: unknown) => rawFrame(JSON.stringify(body), { type: 2 })

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}

/** Pushes `bytes` one byte at a time; returns the decoded frame or undefined, then asserts the rest. */
function pushBytewise<K extends FrameKind>(reader: FrameReader<K>, bytes: Uint8Array) {
  for (let i = 0; i < bytes.length; i++) {
    const out = reader.push(bytes.subarray(i, i + 1))
    if (out !== undefined) return { out, consumed: i + 1 }
  }
  return undefined
}

describe('constants', () => {
  it('names the protocol and version', () => {
    expect(BLOB_PROTOCOL).toBe('/pollen/blob/1.0.0')
    expect(FRAME_VERSION).toBe(1)
    expect(MAX_FRAME_BYTES).toBe(16384)
  })
})

describe('round trips', () => {
  const requests: BlobRequest[] = [
    { digest: DIGEST, offset: 0 },
    { digest: DIGEST512, offset: Number.MAX_SAFE_INTEGER },
    { digest: DIGEST, offset: 12345, token: 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMiJ9.c2ln' },
    { digest: DIGEST, offset: 1, token: 'x'.repeat(MAX_TOKEN_BYTES) },
    { digest: DIGEST, offset: 7, token: 'a.b.c', follow: true },
  ]
  it.each(requests)('decodes an encoded request back to itself (%#)', (req) => {
    expect(decodeFrame('request', encodeRequest(req))).toEqual({ frame: req, rest: new Uint8Array() })
  })

  const responses: BlobResponse[] = [
    { status: 'ok', size: 100, available: 100, complete: true },
    { status: 'ok', size: 0, available: 0, complete: true },
    { status: 'ok', size: 100, available: 40, complete: false, message: 'still filling' },
    { status: 'ok', size: 100, available: 100, complete: false },
    { status: 'not-found' },
    { status: 'unauthorized', message: 'token expired' },
    { status: 'busy' },
    { status: 'bad-request', message: 'm'.repeat(256) },
    { status: 'error' },
  ]
  it.each(responses)('decodes an encoded response back to itself (%#)', (res) => {
    expect(decodeFrame('response', encodeResponse(res))).toEqual({ frame: res, rest: new Uint8Array() })
  })

  it('writes a big-endian length, the version and the type before the JSON body', () => {
    const bytes = encodeRequest({ digest: DIGEST, offset: 7 })
    const json = `{"digest":"${DIGEST}","offset":7}`
    expect(new DataView(bytes.buffer).getUint32(0)).toBe(json.length + 2)
    expect([bytes[4], bytes[5]]).toEqual([1, 1])
    expect(Buffer.from(bytes.subarray(6)).toString()).toBe(json)
    expect(encodeResponse({ status: 'busy' })[5]).toBe(2)
  })

  it('does not serialise fields outside the schema and rejects them on encode', () => {
    expect(() => encodeRequest({ digest: DIGEST, offset: 0, extra: 1 } as BlobRequest)).toThrow(FrameInvalidError)
    expect(() => encodeResponse({ status: 'busy', size: 3 } as BlobResponse)).toThrow(FrameInvalidError)
  })

  it('refuses to encode what it would refuse to decode', () => {
    expect(() => encodeRequest({ digest: DIGEST.toUpperCase(), offset: 0 })).toThrow(FrameInvalidError)
    expect(() => encodeRequest({ digest: DIGEST, offset: -1 })).toThrow(FrameInvalidError)
    expect(() => encodeRequest({ digest: DIGEST, offset: 0, token: 'x'.repeat(MAX_TOKEN_BYTES + 1) })).toThrow(FrameInvalidError)
    expect(() => encodeResponse({ status: 'error', message: 'm'.repeat(257) })).toThrow(FrameInvalidError)
    expect(() => encodeResponse({ status: 'ok', size: 1, available: 2, complete: false })).toThrow(FrameInvalidError)
  })
})

describe('FrameReader with arbitrary splits', () => {
  it('decodes a request pushed one byte at a time', () => {
    const req = { digest: DIGEST, offset: 99, token: 'tok' }
    const bytes = encodeRequest(req)
    const got = pushBytewise(new FrameReader('request'), bytes)
    expect(got?.consumed).toBe(bytes.length)
    expect(got?.out).toEqual({ frame: req, rest: new Uint8Array() })
  })

  it('decodes a response pushed one byte at a time', () => {
    const res: BlobResponse = { status: 'ok', size: 10, available: 5, complete: false }
    expect(pushBytewise(new FrameReader('response'), encodeResponse(res))?.out.frame).toEqual(res)
  })

  it('returns the payload bytes that arrive in the same chunk as the header intact', () => {
    const payload = new Uint8Array([0, 1, 2, 0xff, 4, 0, 0, 0, 9])
    const header = encodeResponse({ status: 'ok', size: 9, available: 9, complete: true })
    const out = new FrameReader('response').push(concat(header, payload))
    expect(out?.frame.status).toBe('ok')
    expect(out?.rest).toEqual(payload)
  })

  it('returns the leftover bytes when the header ends mid-chunk after several chunks', () => {
    const all = concat(encodeResponse({ status: 'ok', size: 3, available: 3, complete: true }), new Uint8Array([7, 8, 9]))
    const reader = new FrameReader('response')
    expect(reader.push(all.subarray(0, 3))).toBeUndefined()
    expect(reader.push(all.subarray(3, 10))).toBeUndefined()
    expect(reader.push(all.subarray(10))?.rest).toEqual(new Uint8Array([7, 8, 9]))
  })

  it('accepts empty chunks without progressing', () => {
    const reader = new FrameReader('request')
    expect(reader.push(new Uint8Array())).toBeUndefined()
    expect(reader.push(encodeRequest({ digest: DIGEST, offset: 0 }))?.frame.offset).toBe(0)
  })

  it('refuses to be reused after returning its frame', () => {
    const reader = new FrameReader('request')
    reader.push(encodeRequest({ digest: DIGEST, offset: 0 }))
    expect(() => reader.push(new Uint8Array([1]))).toThrow(/already returned/)
    expect(() => reader.finish()).not.toThrow()
  })

  it('throws the same error again when pushed to after a failure', () => {
    const reader = new FrameReader('request')
    expect(() => reader.push(rawFrame('{}', { version: 9 }))).toThrow(FrameVersionError)
    expect(() => reader.push(new Uint8Array([1]))).toThrow(FrameVersionError)
    expect(() => reader.finish()).toThrow(FrameVersionError)
  })
})

describe('truncated frames', () => {
  const bytes = encodeRequest({ digest: DIGEST, offset: 5 })
  it.each([0, 1, 3, 4, 5, 6, bytes.length - 1])('waits without throwing on a frame cut at %i bytes, then reports truncation at finish', (cut) => {
    const reader = new FrameReader('request')
    expect(reader.push(bytes.subarray(0, cut))).toBeUndefined()
    expect(() => reader.finish()).toThrow(FrameInvalidError)
    expect(() => reader.finish()).toThrow(/stream ended/)
  })

  it('reports truncation from decodeFrame as FrameInvalidError', () => {
    expect(() => decodeFrame('request', bytes.subarray(0, 10))).toThrow(FrameInvalidError)
  })
})

describe('frame envelope errors', () => {
  it('rejects an oversized declared length as soon as the 4-byte prefix arrives', () => {
    const reader = new FrameReader('request')
    const prefix = new Uint8Array(4)
    new DataView(prefix.buffer).setUint32(0, MAX_FRAME_BYTES + 1)
    expect(reader.push(prefix.subarray(0, 3))).toBeUndefined()
    expect(() => reader.push(prefix.subarray(3))).toThrow(FrameTooLargeError)
  })

  it('rejects a 4 GiB declared length without allocating it', () => {
    expect(() => new FrameReader('response').push(new Uint8Array([0xff, 0xff, 0xff, 0xff]))).toThrow(FrameTooLargeError)
  })

  it('accepts a frame of exactly MAX_FRAME_BYTES up to the schema', () => {
    const body = `{"digest":"${DIGEST}","offset":0}`.padEnd(MAX_FRAME_BYTES - 2, ' ')
    expect(decodeFrame('request', rawFrame(body)).frame.offset).toBe(0)
  })

  it('refuses to encode a frame larger than MAX_FRAME_BYTES with FrameTooLargeError', () => {
    // Each control character escapes to six JSON bytes, so an 8 KiB token makes a 48 KiB body.
    expect(() => encodeRequest({ digest: DIGEST, offset: 0, token: '\x01'.repeat(MAX_TOKEN_BYTES) })).toThrow(FrameTooLargeError)
  })

  it.each([0, 1, 2, 3])('rejects a declared length of %i as FrameInvalidError', (n) => {
    const bytes = new Uint8Array(4 + n).fill(1)
    new DataView(bytes.buffer).setUint32(0, n)
    expect(() => new FrameReader('request').push(bytes)).toThrow(FrameInvalidError)
  })

  it.each([0, 2, 255])('rejects version %i with FrameVersionError as soon as the version byte arrives', (version) => {
    const bytes = rawFrame('{}', { version })
    const reader = new FrameReader('request')
    expect(reader.push(bytes.subarray(0, 4))).toBeUndefined()
    expect(() => reader.push(bytes.subarray(4, 5))).toThrow(FrameVersionError)
  })

  it('rejects a response frame where a request is expected', () => {
    expect(() => decodeFrame('request', encodeResponse({ status: 'busy' }))).toThrow(/expected a request frame, got a response frame/)
  })

  it('rejects a request frame where a response is expected', () => {
    expect(() => decodeFrame('response', encodeRequest({ digest: DIGEST, offset: 0 }))).toThrow(FrameInvalidError)
  })

  it.each([0, 3, 255])('rejects the unknown frame type %i', (type) => {
    expect(() => decodeFrame('request', rawFrame('{}', { type }))).toThrow(FrameInvalidError)
  })

  it('rejects HTTP and TLS garbage instead of waiting for it', () => {
    // "GET " declares 0x47455420 bytes; a TLS ClientHello declares a length over 16 KiB too.
    expect(() => new FrameReader('request').push(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toThrow(FrameTooLargeError)
    expect(() => new FrameReader('request').push(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00]))).toThrow(FrameTooLargeError)
  })
})

describe('body errors', () => {
  it.each([
    ['truncated JSON', '{"digest":'],
    ['an empty body', ''],
    ['a JSON array', '[]'],
    ['JSON null', 'null'],
    ['a JSON string', '"sha256:abc"'],
    ['a byte-order mark', `\uFEFF{"digest":"${DIGEST}","offset":0}`],
    ['trailing garbage', `{"digest":"${DIGEST}","offset":0}x`],
  ])('rejects %s as FrameInvalidError', (_, body) => {
    expect(() => decodeFrame('request', rawFrame(body))).toThrow(FrameInvalidError)
  })

  it('rejects bytes that are not UTF-8', () => {
    const body = concat(Buffer.from('{"digest":"'), new Uint8Array([0xc3, 0x28]), Buffer.from('"}'))
    expect(() => decodeFrame('request', rawFrame(body))).toThrow(/not UTF-8 JSON/)
  })

  it.each([
    ['an uppercase digest', { digest: DIGEST.toUpperCase(), offset: 0 }],
    ['uppercase hex', { digest: `sha256:${DIGEST.slice(7).toUpperCase()}`, offset: 0 }],
    ['an md5 digest', { digest: 'md5:d41d8cd98f00b204e9800998ecf8427e', offset: 0 }],
    ['a short digest', { digest: 'sha256:abc', offset: 0 }],
    ['a numeric digest', { digest: 42, offset: 0 }],
    ['a missing digest', { offset: 0 }],
    ['a missing offset', { digest: DIGEST }],
    ['a negative offset', { digest: DIGEST, offset: -1 }],
    ['a fractional offset', { digest: DIGEST, offset: 1.5 }],
    ['an unsafe offset', { digest: DIGEST, offset: 2 ** 53 }],
    ['a string offset', { digest: DIGEST, offset: '5' }],
    ['a null offset', { digest: DIGEST, offset: null }],
    ['an empty token', { digest: DIGEST, offset: 0, token: '' }],
    ['a numeric token', { digest: DIGEST, offset: 0, token: 5 }],
    ['an oversize token', { digest: DIGEST, offset: 0, token: 'x'.repeat(MAX_TOKEN_BYTES + 1) }],
    ['a token over 8 KiB in UTF-8 bytes', { digest: DIGEST, offset: 0, token: 'é'.repeat(MAX_TOKEN_BYTES / 2 + 1) }],
    ['an unknown field', { digest: DIGEST, offset: 0, range: '0-1' }],
    ['a __proto__ field', JSON.parse(`{"digest":"${DIGEST}","offset":0,"__proto__":{"token":"x"}}`)],
  ])('rejects a request with %s as FrameInvalidError', (_, body) => {
    expect(() => decodeFrame('request', requestFrame(body))).toThrow(FrameInvalidError)
  })

  it('rejects an offset written as 1e400 (Infinity)', () => {
    expect(() => decodeFrame('request', rawFrame(`{"digest":"${DIGEST}","offset":1e400}`))).toThrow(/got Infinity/)
  })

  it('rejects a "follow" that is not a boolean, and drops follow: false', () => {
    expect(() => decodeFrame('request', rawFrame(`{"digest":"${DIGEST}","offset":0,"follow":"yes"}`))).toThrow(/"follow" must be a boolean/)
    expect(decodeFrame('request', rawFrame(`{"digest":"${DIGEST}","offset":0,"follow":false}`)).frame).toEqual({ digest: DIGEST, offset: 0 })
  })

  it('accepts an offset written as -0 or 1e3 and returns plain integers', () => {
    expect(Object.is(decodeFrame('request', rawFrame(`{"digest":"${DIGEST}","offset":-0}`)).frame.offset, 0)).toBe(true)
    expect(decodeFrame('request', rawFrame(`{"digest":"${DIGEST}","offset":1e3}`)).frame.offset).toBe(1000)
  })

  it.each([
    ['an unknown status', { status: 'teapot' }],
    ['a missing status', { size: 1 }],
    ['an ok without size', { status: 'ok', available: 0, complete: false }],
    ['an ok without available', { status: 'ok', size: 1, complete: false }],
    ['an ok without complete', { status: 'ok', size: 1, available: 1 }],
    ['an ok with a string complete', { status: 'ok', size: 1, available: 1, complete: 'true' }],
    ['an ok with a negative size', { status: 'ok', size: -1, available: 0, complete: false }],
    ['an ok with a fractional available', { status: 'ok', size: 2, available: 0.5, complete: false }],
    ['an ok with available beyond size', { status: 'ok', size: 1, available: 2, complete: false }],
    ['a complete ok with available short of size', { status: 'ok', size: 2, available: 1, complete: true }],
    ['a refusal with a size', { status: 'not-found', size: 1 }],
    ['a numeric message', { status: 'error', message: 1 }],
    ['a message over 256 characters', { status: 'error', message: 'm'.repeat(257) }],
    ['an unknown field', { status: 'busy', retryAfter: 5 }],
  ])('rejects a response with %s as FrameInvalidError', (_, body) => {
    expect(() => decodeFrame('response', responseFrame(body))).toThrow(FrameInvalidError)
  })

  it('rejects an ok whose available is below the requested offset when the offset is known', () => {
    const bytes = encodeResponse({ status: 'ok', size: 100, available: 10, complete: false })
    expect(decodeFrame('response', bytes, { requestOffset: 10 }).frame.status).toBe('ok')
    expect(() => decodeFrame('response', bytes, { requestOffset: 11 })).toThrow(/below|< requested offset/)
  })

  it('never echoes more than about 100 characters of attacker input in a message', () => {
    const long = 'A'.repeat(5000)
    const bodies: Array<[FrameKind, unknown]> = [
      ['request', { digest: `${'a'.repeat(250)}:x`, offset: 0 }],
      ['request', { digest: DIGEST, offset: 0, [long]: 1 }],
      ['request', { digest: long, offset: 0 }],
      ['response', { status: long }],
    ]
    for (const [kind, body] of bodies) {
      const bytes = kind === 'request' ? requestFrame(body) : responseFrame(body)
      let message = ''
      try {
        decodeFrame(kind, bytes)
      } catch (err) {
        message = (err as Error).message
      }
      expect(message).not.toBe('')
      expect(message.length).toBeLessThan(200)
    }
  })

  it('gives the frame errors stable names and codes', () => {
    const errors = [new FrameTooLargeError(1), new FrameVersionError(2), new FrameInvalidError('x')]
    expect(errors.map((e) => [e.name, e.code, e.ociCode, e instanceof PollenError])).toEqual([
      ['FrameTooLargeError', 'FrameTooLargeError', 'UNAVAILABLE', true],
      ['FrameVersionError', 'FrameVersionError', 'UNAVAILABLE', true],
      ['FrameInvalidError', 'FrameInvalidError', 'UNAVAILABLE', true],
    ])
  })
})
