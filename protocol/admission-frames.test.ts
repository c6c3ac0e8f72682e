import { describe, expect, it } from 'vitest'
import {
  ADMISSION_FRAME_VERSION,
  ADMISSION_PROTOCOL,
  AdmissionFrameReader,
  MAX_ADMISSION_FRAME_BYTES,
  decodeAdmissionFrame,
  encodePresentation,
  encodeVerdict,
} from './admission-frames.js'
import { MAX_TOKEN_LENGTH } from './admission.js'

function rawFrame(body: string, opts: { version?: number; type?: number; length?: number } = {}): Uint8Array {
  const json = new TextEncoder().encode(body)
  const out = new Uint8Array(6 + json.length)
  new DataView(out.buffer).setUint32(0, opts.length ?? json.length + 2)
  out[4] = opts.version ?? ADMISSION_FRAME_VERSION
  out[5] = opts.type ?? 1
  out.set(json, 6)
  return out
}
const invalid = expect.objectContaining({ name: 'FrameInvalidError' })

describe('admission frames', () => {
  it('round-trips a presentation and every kind of verdict', () => {
    expect(ADMISSION_PROTOCOL).toBe('/pollen/admission/1.0.0')
    expect(decodeAdmissionFrame('presentation', encodePresentation({ token: 'a.b.c' }))).toEqual({ token: 'a.b.c' })
    expect(decodeAdmissionFrame('verdict', encodeVerdict({ status: 'ok' }))).toEqual({ status: 'ok' })
    expect(decodeAdmissionFrame('verdict', encodeVerdict({ status: 'refused', reason: 'peer-mismatch' }))).toEqual({ status: 'refused', reason: 'peer-mismatch' })
    expect(decodeAdmissionFrame('verdict', encodeVerdict({ status: 'retry', reason: 'unknown-key' }))).toEqual({ status: 'retry', reason: 'unknown-key' })
  })

  it('decodes a frame split into one-byte chunks', () => {
    const bytes = encodePresentation({ token: 'x'.repeat(100) })
    const reader = new AdmissionFrameReader('presentation')
    let frame
    for (let i = 0; i < bytes.length; i++) {
      frame = reader.push(bytes.subarray(i, i + 1))
      if (i < bytes.length - 1) expect(frame).toBeUndefined()
    }
    expect(frame).toEqual({ token: 'x'.repeat(100) })
  })

  it('accepts the longest token and refuses a longer one on encode and decode', () => {
    const longest = 'a'.repeat(MAX_TOKEN_LENGTH)
    expect(decodeAdmissionFrame('presentation', encodePresentation({ token: longest })).token).toBe(longest)
    expect(() => encodePresentation({ token: `${longest}a` })).toThrowError(invalid)
    expect(() => decodeAdmissionFrame('presentation', rawFrame(JSON.stringify({ token: `${longest}a` })))).toThrowError(invalid)
  })

  it('fails on the length prefix alone when a peer declares an oversized frame', () => {
    const reader = new AdmissionFrameReader('presentation')
    const prefix = new Uint8Array(4)
    new DataView(prefix.buffer).setUint32(0, MAX_ADMISSION_FRAME_BYTES + 1)
    expect(() => reader.push(prefix)).toThrowError(invalid)
    expect(() => reader.push(new Uint8Array(1))).toThrowError(invalid)
  })

  it('refuses a wrong version, a wrong frame type, junk JSON, unknown fields and unknown reasons', () => {
    const body = JSON.stringify({ token: 't' })
    expect(() => decodeAdmissionFrame('presentation', rawFrame(body, { version: 9 }))).toThrowError(expect.objectContaining({ name: 'FrameVersionError' }))
    expect(() => decodeAdmissionFrame('presentation', rawFrame(body, { type: 2 }))).toThrowError(invalid)
    expect(() => decodeAdmissionFrame('presentation', rawFrame('{not json'))).toThrowError(invalid)
    expect(() => decodeAdmissionFrame('presentation', rawFrame(JSON.stringify({ token: 't', extra: 1 })))).toThrowError(invalid)
    expect(() => decodeAdmissionFrame('presentation', rawFrame(JSON.stringify({ token: 7 })))).toThrowError(invalid)
    expect(() => decodeAdmissionFrame('presentation', rawFrame('[]'))).toThrowError(invalid)
    expect(() => decodeAdmissionFrame('verdict', rawFrame(JSON.stringify({ status: 'refused', reason: 'because' }), { type: 2 }))).toThrowError(invalid)
    expect(() => decodeAdmissionFrame('verdict', rawFrame(JSON.stringify({ status: 'maybe' }), { type: 2 }))).toThrowError(invalid)
    expect(() => decodeAdmissionFrame('verdict', rawFrame(JSON.stringify({ status: 'ok', reason: 'missing' }), { type: 2 }))).toThrowError(invalid)
    expect(() => decodeAdmissionFrame('presentation', rawFrame(JSON.stringify({ __proto__: { token: 't' } })))).toThrowError(invalid)
  })

  it('refuses a stream that ends mid-frame', () => {
    const bytes = encodePresentation({ token: 'abc' })
    const reader = new AdmissionFrameReader('presentation')
    expect(reader.push(bytes.subarray(0, 5))).toBeUndefined()
    expect(() => reader.finish()).toThrowError(invalid)
  })
})
