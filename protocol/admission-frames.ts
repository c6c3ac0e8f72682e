/**
 * Wire format of the connection admission protocol. No I/O.
 *
 * On every new connection, each side that holds an admission token opens ONE stream and
 * sends ONE presentation frame with it; the other side checks the token against the
 * PeerId Noise authenticated and answers with ONE verdict frame, then the stream closes.
 *
 * Frame: a 4-byte big-endian unsigned length N, then N bytes: byte 0 is the version
 * (ADMISSION_FRAME_VERSION), byte 1 the frame type (1 presentation, 2 verdict), the rest a
 * UTF-8 JSON object. N is at most MAX_ADMISSION_FRAME_BYTES. As in blob-frames.ts, bodies are
 * validated strictly on decode and encode: an unknown field or value is rejected.
 */
import { ADMISSION_DENIAL_REASONS, MAX_TOKEN_LENGTH } from './admission.js'
import { FrameInvalidError, FrameVersionError } from './blob-frames.js'

export const ADMISSION_PROTOCOL = '/pollen/admission/1.0.0'
export const ADMISSION_FRAME_VERSION = 1
/** Largest accepted N: a token of MAX_TOKEN_LENGTH characters and some JSON around it. */
export const MAX_ADMISSION_FRAME_BYTES = MAX_TOKEN_LENGTH + 256

/**
 * Why a peer was refused (or asked to retry); a bounded set, usable as a metrics label.
 * The token verifier's reasons, plus `not-presented` (connected, but presented no token
 * within the deadline), `unavailable` (we could not check it: no keys) and `error`
 * (anything unexpected).
 */
export const ADMISSION_GATE_REASONS = [...ADMISSION_DENIAL_REASONS, 'not-presented', 'unavailable', 'error'] as const
export type AdmissionGateReason = (typeof ADMISSION_GATE_REASONS)[number]

export interface AdmissionPresentation {
  /** The presenter's admission token (a compact JWT). */
  readonly token: string
}

/**
 * `ok`: admitted. `refused`: the connection is about to be closed. `retry`: the token could
 * not be checked yet (e.g. signed by a key we have not fetched); present it again shortly.
 */
export type AdmissionVerdict =
  | { readonly status: 'ok' }
  | { readonly status: 'refused'; readonly reason: AdmissionGateReason }
  | { readonly status: 'retry'; readonly reason: AdmissionGateReason }

export interface AdmissionFrameOf {
  presentation: AdmissionPresentation
  verdict: AdmissionVerdict
}
export type AdmissionFrameKind = keyof AdmissionFrameOf

const LENGTH_BYTES = 4
const FRAME_TYPE = { presentation: 1, verdict: 2 } as const
const REASONS: ReadonlySet<string> = new Set(ADMISSION_GATE_REASONS)
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const utf8Encoder = new TextEncoder()

/** Encodes a presentation frame. Throws FrameInvalidError for an empty or overlong token. */
export function encodePresentation(p: AdmissionPresentation): Uint8Array {
  return encodeFrame('presentation', { token: validatePresentation(p).token })
}

/** Encodes a verdict frame. Throws FrameInvalidError for an unknown status or reason. */
export function encodeVerdict(v: AdmissionVerdict): Uint8Array {
  const ok = validateVerdict(v)
  return encodeFrame('verdict', ok.status === 'ok' ? { status: 'ok' } : { status: ok.status, reason: ok.reason })
}

function encodeFrame(kind: AdmissionFrameKind, body: object): Uint8Array {
  const json = utf8Encoder.encode(JSON.stringify(body))
  const n = 2 + json.length
  if (n > MAX_ADMISSION_FRAME_BYTES) throw new FrameInvalidError(`admission ${kind} frame of ${n} bytes exceeds ${MAX_ADMISSION_FRAME_BYTES}`)
  const out = new Uint8Array(LENGTH_BYTES + n)
  new DataView(out.buffer).setUint32(0, n, false)
  out[4] = ADMISSION_FRAME_VERSION
  out[5] = FRAME_TYPE[kind]
  out.set(json, 6)
  return out
}

/**
 * Incremental decoder of one frame of kind `expect`; chunks may be split anywhere. It holds
 * at most MAX_ADMISSION_FRAME_BYTES + 4 bytes and fails as early as it can. push() returns the
 * frame once complete (bytes after it are ignored: the protocol sends one frame per direction).
 * Throws FrameInvalidError or FrameVersionError, and keeps throwing it on later pushes.
 */
export class AdmissionFrameReader<K extends AdmissionFrameKind> {
  #buffered: Uint8Array = new Uint8Array(0)
  #failure: Error | undefined
  #done = false

  constructor(readonly expect: K) {}

  push(chunk: Uint8Array): AdmissionFrameOf[K] | undefined {
    if (this.#done) throw new Error('AdmissionFrameReader already returned its frame')
    if (this.#failure !== undefined) throw this.#failure
    try {
      const kept = Math.min(chunk.length, LENGTH_BYTES + MAX_ADMISSION_FRAME_BYTES - this.#buffered.length)
      const next = new Uint8Array(this.#buffered.length + kept)
      next.set(this.#buffered)
      next.set(chunk.subarray(0, kept), this.#buffered.length)
      this.#buffered = next
      return this.#consume()
    } catch (err) {
      this.#failure = err instanceof FrameInvalidError || err instanceof FrameVersionError ? err : new FrameInvalidError('admission frame could not be decoded', { cause: err })
      throw this.#failure
    }
  }

  /** Call at end of stream. Throws FrameInvalidError when no whole frame arrived. */
  finish(): void {
    if (this.#done) return
    if (this.#failure !== undefined) throw this.#failure
    this.#failure = new FrameInvalidError(`stream ended after ${this.#buffered.length} bytes, before a complete admission ${this.expect} frame`)
    throw this.#failure
  }

  #consume(): AdmissionFrameOf[K] | undefined {
    const b = this.#buffered
    if (b.length < LENGTH_BYTES) return undefined
    const n = new DataView(b.buffer, b.byteOffset).getUint32(0, false)
    if (n > MAX_ADMISSION_FRAME_BYTES) throw new FrameInvalidError(`admission frame declares ${n} bytes; at most ${MAX_ADMISSION_FRAME_BYTES} are allowed`)
    if (n < 4) throw new FrameInvalidError(`admission frame declares ${n} bytes; at least 4 are needed`)
    if (b.length > LENGTH_BYTES && b[4] !== ADMISSION_FRAME_VERSION) throw new FrameVersionError(b[4] ?? 0)
    if (b.length > LENGTH_BYTES + 1 && b[5] !== FRAME_TYPE[this.expect]) throw new FrameInvalidError(`expected an admission ${this.expect} frame, got type ${b[5]}`)
    if (b.length < LENGTH_BYTES + n) return undefined
    let value: unknown
    try {
      value = JSON.parse(utf8.decode(b.subarray(6, LENGTH_BYTES + n)))
    } catch (err) {
      throw new FrameInvalidError(`admission ${this.expect} frame body is not UTF-8 JSON`, { cause: err })
    }
    const frame = (this.expect === 'presentation' ? validatePresentation(value) : validateVerdict(value)) as AdmissionFrameOf[K]
    this.#done = true
    return frame
  }
}

/** Decodes one whole frame from `bytes`. Throws like AdmissionFrameReader. */
export function decodeAdmissionFrame<K extends AdmissionFrameKind>(expect: K, bytes: Uint8Array): AdmissionFrameOf[K] {
  const reader = new AdmissionFrameReader(expect)
  const frame = reader.push(bytes)
  if (frame === undefined) reader.finish()
  return frame as AdmissionFrameOf[K]
}

function validatePresentation(value: unknown): AdmissionPresentation {
  const o = fields(value, 'presentation', ['token'])
  if (typeof o.token !== 'string' || o.token.length === 0) throw new FrameInvalidError('presentation "token" must be a non-empty string')
  if (o.token.length > MAX_TOKEN_LENGTH) throw new FrameInvalidError(`presentation "token" exceeds ${MAX_TOKEN_LENGTH} characters`)
  return { token: o.token }
}

function validateVerdict(value: unknown): AdmissionVerdict {
  const o = fields(value, 'verdict', ['status', 'reason'])
  if (o.status === 'ok') {
    if (o.reason !== undefined) throw new FrameInvalidError('an "ok" verdict carries no reason')
    return { status: 'ok' }
  }
  if (o.status !== 'refused' && o.status !== 'retry') throw new FrameInvalidError('verdict "status" must be ok, refused or retry')
  if (typeof o.reason !== 'string' || !REASONS.has(o.reason)) throw new FrameInvalidError(`verdict "reason" must be one of ${ADMISSION_GATE_REASONS.join(', ')}`)
  return { status: o.status, reason: o.reason as AdmissionGateReason }
}

/** `value` as a record of own fields, all in `allowed`; throws FrameInvalidError otherwise. */
function fields(value: unknown, what: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FrameInvalidError(`admission ${what} body must be a JSON object`)
  const record = value as Record<string, unknown>
  const own: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) throw new FrameInvalidError(`admission ${what} has an unknown field`)
    own[key] = record[key]
  }
  return own
}
