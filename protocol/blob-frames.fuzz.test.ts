import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  FrameInvalidError,
  FrameReader,
  FrameTooLargeError,
  FrameVersionError,
  decodeFrame,
  encodeRequest,
  encodeResponse,
  type BlobRequest,
  type BlobResponse,
  type FrameKind,
} from './blob-frames.js'
import type { PollenError } from './errors.js'

// Property: whatever bytes arrive on /pollen/blob/1.0.0, in whatever pieces, the reader yields
// a frame that the encoder itself accepts (and that survives a round trip), or throws one of
// its three typed errors; nothing else. The e2e version (test/hostile-frames.e2e.test.ts)
// sends such bytes to a running agent over libp2p.

const DIGEST = `sha256:${createHash('sha256').update('hostile').digest('hex')}`
const DIGEST512 = `sha512:${createHash('sha512').update('hostile').digest('hex')}`
const VALID: Array<[FrameKind, Uint8Array]> = [
  ['request', encodeRequest({ digest: DIGEST, offset: 0 })],
  ['request', encodeRequest({ digest: DIGEST512, offset: 77, token: 'a.b.c' })],
  ['response', encodeResponse({ status: 'ok', size: 10, available: 3, complete: false, message: 'hi' })],
  ['response', encodeResponse({ status: 'not-found' })],
  ['response', encodeResponse({ status: 'ok', size: 5, available: 5, complete: true })],
]
const JSON_BYTES = [...'{}[]":,0123456789eE.\\ '].map((c) => c.charCodeAt(0))

type Edit =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'insert'; at: number; byte: number }
  | { op: 'delete'; at: number; run: number }
  | { op: 'truncate'; at: number }
  | { op: 'relength'; delta: number }

const byte = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(...JSON_BYTES))
const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), run: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('relength' as const), delta: fc.integer({ min: -4, max: 4 }) }),
)

function applyEdits(input: Uint8Array, edits: Edit[]): Uint8Array {
  const bytes = Array.from(input)
  for (const e of edits) {
    if (e.op === 'relength') {
      // The length prefix rewritten near the true length, so that the body parser is reached.
      if (bytes.length < 4) continue
      const n = Math.max(0, bytes.length - 4 + e.delta)
      bytes.splice(0, 4, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255)
      continue
    }
    const at = e.at % (bytes.length + 1)
    if (e.op === 'insert') bytes.splice(at, 0, e.byte)
    else if (e.op === 'delete') bytes.splice(at, e.run)
    else if (e.op === 'truncate') bytes.length = at
    else if (bytes.length > 0 && e.op === 'flip') bytes[at % bytes.length]! ^= 1 << e.bit
    else if (bytes.length > 0 && e.op === 'set') bytes[at % bytes.length] = e.byte
  }
  return new Uint8Array(bytes)
}

/** Random bytes, half of them behind a plausible small length prefix, version 1 and type 1 or 2. */
const noise = fc.tuple(fc.uint8Array({ maxLength: 64 }), fc.boolean(), fc.integer({ min: 1, max: 2 })).map(([raw, framed, type]) => {
  const out = new Uint8Array(raw)
  if (framed && out.length >= 6) {
    new DataView(out.buffer).setUint32(0, out.length - 4)
    out[4] = 1
    out[5] = type
  }
  return out
})

const input = fc.record({
  base: fc.constantFrom(...VALID),
  /** One in ten is read as the other kind of frame. */
  swapKind: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  bytes: fc.oneof(noise, fc.tuple(fc.constantFrom(...VALID.map(([, b]) => b)), fc.array(edit, { minLength: 1, maxLength: 4 })).map(([b, edits]) => applyEdits(b, edits))),
  pieces: fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 16 }),
})

describe('blob frames from a hostile peer', () => {
  it('yield a valid frame or one of the three typed errors, for 2,000 random and mutated inputs in random pieces', () => {
    const seen = { frame: 0, FrameTooLargeError: 0, FrameVersionError: 0, FrameInvalidError: 0 }
    fc.assert(
      fc.property(input, ({ base: [kind], swapKind, bytes, pieces }) => {
        const expected: FrameKind = !swapKind ? kind : kind === 'request' ? 'response' : 'request'
        const reader = new FrameReader(expected)
        try {
          let out: ReturnType<typeof reader.push>
          for (let at = 0, i = 0; at < bytes.length && out === undefined; i++) {
            const step = pieces[i % pieces.length]!
            out = reader.push(bytes.subarray(at, at + step))
            at += step
          }
          if (out === undefined) reader.finish()
          else {
            // A decoded frame satisfies the encoder's own validation and survives a round trip.
            const again = expected === 'request' ? encodeRequest(out.frame as BlobRequest) : encodeResponse(out.frame as BlobResponse)
            expect(decodeFrame(expected, again).frame).toEqual(out.frame)
            seen.frame++
          }
        } catch (err) {
          const typed = err instanceof FrameTooLargeError || err instanceof FrameVersionError || err instanceof FrameInvalidError
          if (!typed) throw err
          seen[(err as PollenError).name as keyof typeof seen]++
        }
      }),
      { numRuns: 2_000, seed: 0x9011e4 },
    )
    // Every outcome is exercised, so the property is not vacuous.
    expect(seen.frame).toBeGreaterThan(0)
    expect(seen.FrameTooLargeError).toBeGreaterThan(0)
    expect(seen.FrameVersionError).toBeGreaterThan(0)
    expect(seen.FrameInvalidError).toBeGreaterThan(0)
  })
})
