import { parseDigest } from './digest.js'
import { PollenError } from './errors.js'

/**
 * Wire format of the peer blob protocol. No I/O.
 *
 * A client opens a stream and sends ONE request frame. The server answers with ONE
 * response-header frame and, when the status is 'ok', the raw blob bytes from the
 * requested offset until the end of the stream.
 *
 * Frame: a 4-byte big-endian unsigned length N, then N bytes: byte 0 is the version
 * (FRAME_VERSION), byte 1 the frame type (1 request, 2 response header), the rest a
 * UTF-8 JSON object. N is at most MAX_FRAME_BYTES.
 *
 * Bodies are validated strictly, on decode and on encode alike: an unknown field is
 * rejected, not ignored. A change of the body schema therefore needs a new version
 * (or protocol id), and a hostile peer cannot smuggle data past the validator.
 * With duplicate JSON keys the last one wins (JSON.parse semantics).
 */

export const BLOB_PROTOCOL = '/pollen/blob/1.0.0'
export const FRAME_VERSION = 1
/** Largest accepted N (version byte + type byte + JSON body). */
export const MAX_FRAME_BYTES = 16 * 1024
/** Largest accepted admission token, in UTF-8 bytes. */
export const MAX_TOKEN_BYTES = 8 * 1024
/** Largest accepted response `message`, in UTF-16 code units. */
export const MAX_MESSAGE_CHARS = 256

const LENGTH_BYTES = 4
const FRAME_TYPE = { request: 1, response: 2 } as const
/** Version, type and the shortest JSON object `{}`. */
const MIN_FRAME_BYTES = 4

/*
 * These errors say a peer spoke the protocol wrongly. The serving side answers such a
 * request with status 'bad-request' and never surfaces the error over HTTP. On the fetching side the
 * peer is one source among several; if the error ever reaches the HTTP edge it means
 * "this source is broken, try again", so UNAVAILABLE (503). A 4xx such as
 * BLOB_UPLOAD_INVALID would blame containerd for a fault it did not cause.
 */

/** The declared frame length exceeds MAX_FRAME_BYTES. */
export class FrameTooLargeError extends PollenError {
  readonly declared: number
  constructor(declared: number) {
    super('FrameTooLargeError', 'UNAVAILABLE', `frame declares ${declared} bytes; at most ${MAX_FRAME_BYTES} are allowed`)
    this.declared = declared
  }
}

/** The frame's version byte is not FRAME_VERSION. */
export class FrameVersionError extends PollenError {
  readonly version: number
  constructor(version: number) {
    super('FrameVersionError', 'UNAVAILABLE', `frame version ${version} is not supported (expected ${FRAME_VERSION})`)
    this.version = version
  }
}

/** The frame is malformed: too short, truncated, wrong type, not JSON, or a body that breaks the schema. */
export class FrameInvalidError extends PollenError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('FrameInvalidError', 'UNAVAILABLE', message, options)
  }
}

export interface BlobRequest {
  /** Canonical digest (`sha256:` or `sha512:` + lowercase hex). */
  readonly digest: string
  /** First byte wanted; a safe non-negative integer. */
  readonly offset: number
  /** Admission token (a JWT); absent when the client has none. */
  readonly token?: string
  /**
   * The seed named the server as the client's parent for this blob (protocol/fanout.ts): serve
   * a fill in progress whatever the PeerIds' order. Absent or false: the server follows its own
   * rule for fills in progress (serve only peers that sort above it).
   */
  readonly follow?: boolean
}

export type BlobResponseStatus = 'ok' | 'not-found' | 'unauthorized' | 'busy' | 'bad-request' | 'error'

/**
 * After 'ok' the server sends bytes offset..size-1, possibly fewer if the stream dies;
 * a client must never accept more than `size - offset` payload bytes.
 */
export interface BlobResponseOk {
  readonly status: 'ok'
  /** Total size of the blob. */
  readonly size: number
  /** Bytes the server holds right now: offset <= available <= size. */
  readonly available: number
  /** True when the server holds the whole blob (then available === size); false while it is still filling it. */
  readonly complete: boolean
  readonly message?: string
}

/** A refusal carries no size fields, at most a message. */
export interface BlobResponseRefusal {
  readonly status: Exclude<BlobResponseStatus, 'ok'>
  readonly message?: string
}

export type BlobResponse = BlobResponseOk | BlobResponseRefusal

export type FrameKind = keyof typeof FRAME_TYPE
export interface FrameOf {
  request: BlobRequest
  response: BlobResponse
}

export interface DecodedFrame<K extends FrameKind> {
  readonly frame: FrameOf[K]
  /** The bytes of the pushed chunk after the frame (start of the payload); a view, not a copy. May be empty. */
  readonly rest: Uint8Array
}

export interface FrameReaderOptions {
  /** For responses: the offset that was requested, so that an 'ok' with available < offset is rejected. */
  readonly requestOffset?: number
}

const RESPONSE_STATUSES: ReadonlySet<string> = new Set<BlobResponseStatus>(['ok', 'not-found', 'unauthorized', 'busy', 'bad-request', 'error'])
const REQUEST_FIELDS: ReadonlySet<string> = new Set(['digest', 'offset', 'token', 'follow'])
const OK_FIELDS: ReadonlySet<string> = new Set(['status', 'size', 'available', 'complete', 'message'])
const REFUSAL_FIELDS: ReadonlySet<string> = new Set(['status', 'message'])
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const utf8Encoder = new TextEncoder()

/** Encodes a request frame. Throws FrameInvalidError when `req` breaks the schema. */
export function encodeRequest(req: BlobRequest): Uint8Array {
  const r = validateRequest(req)
  const body: Record<string, unknown> = { digest: r.digest, offset: r.offset }
  if (r.token !== undefined) body.token = r.token
  if (r.follow === true) body.follow = true
  return encodeFrame(FRAME_TYPE.request, body)
}

/** Encodes a response-header frame. Throws FrameInvalidError when `res` breaks the schema (e.g. message over 256 chars). */
export function encodeResponse(res: BlobResponse): Uint8Array {
  const r = validateResponse(res, undefined)
  const body: Record<string, unknown> = { status: r.status }
  if (r.status === 'ok') Object.assign(body, { size: r.size, available: r.available, complete: r.complete })
  if (r.message !== undefined) body.message = r.message
  return encodeFrame(FRAME_TYPE.response, body)
}

function encodeFrame(type: number, body: object): Uint8Array {
  const json = utf8Encoder.encode(JSON.stringify(body))
  const n = 2 + json.length
  if (n > MAX_FRAME_BYTES) throw new FrameTooLargeError(n)
  const out = new Uint8Array(LENGTH_BYTES + n)
  new DataView(out.buffer).setUint32(0, n, false)
  out[4] = FRAME_VERSION
  out[5] = type
  out.set(json, 6)
  return out
}

/**
 * Incremental decoder for one frame of kind `expect`. Feed it chunks as they arrive,
 * split anywhere. It holds at most MAX_FRAME_BYTES + 4 bytes and fails as early as it can:
 * on the length prefix, then the version byte, then the type byte.
 *
 * Single use: after push() returned a frame, push() throws a plain Error (a programming
 * fault). After push() threw a frame error, every later push() throws that error again.
 */
export class FrameReader<K extends FrameKind> {
  private readonly header = new Uint8Array(LENGTH_BYTES)
  private headerFill = 0
  private body: Uint8Array | undefined
  private bodyFill = 0
  private done = false
  private failure: PollenError | undefined

  constructor(
    readonly expect: K,
    private readonly options: FrameReaderOptions = {},
  ) {}

  /**
   * Consumes `chunk`. Returns the frame and the bytes after it once the frame is
   * complete, undefined while more bytes are needed.
   * Throws FrameTooLargeError, FrameVersionError or FrameInvalidError.
   */
  push(chunk: Uint8Array): DecodedFrame<K> | undefined {
    if (this.done) throw new Error('FrameReader already returned its frame; use a new reader')
    if (this.failure !== undefined) throw this.failure
    try {
      return this.consume(chunk)
    } catch (err) {
      this.failure = err instanceof PollenError ? err : new FrameInvalidError('frame could not be decoded', { cause: err })
      throw this.failure
    }
  }

  /** Call at end of stream. Throws FrameInvalidError when the stream ended before a whole frame arrived. */
  finish(): void {
    if (this.done) return
    if (this.failure !== undefined) throw this.failure
    const got = this.headerFill + this.bodyFill
    const want = this.body === undefined ? 'a length prefix' : `${LENGTH_BYTES + this.body.length} bytes`
    this.failure = new FrameInvalidError(`stream ended after ${got} bytes, before a complete ${this.expect} frame (${want})`)
    throw this.failure
  }

  private consume(chunk: Uint8Array): DecodedFrame<K> | undefined {
    let at = 0
    if (this.body === undefined) {
      const take = Math.min(LENGTH_BYTES - this.headerFill, chunk.length)
      this.header.set(chunk.subarray(0, take), this.headerFill)
      this.headerFill += take
      at = take
      if (this.headerFill < LENGTH_BYTES) return undefined
      const n = new DataView(this.header.buffer).getUint32(0, false)
      if (n > MAX_FRAME_BYTES) throw new FrameTooLargeError(n)
      if (n < MIN_FRAME_BYTES) throw new FrameInvalidError(`frame declares ${n} bytes; at least ${MIN_FRAME_BYTES} are needed`)
      this.body = new Uint8Array(n)
    }
    const body = this.body
    const before = this.bodyFill
    const take = Math.min(body.length - before, chunk.length - at)
    body.set(chunk.subarray(at, at + take), before)
    this.bodyFill += take
    if (before < 1 && this.bodyFill >= 1 && body[0] !== FRAME_VERSION) throw new FrameVersionError(body[0] ?? 0)
    if (before < 2 && this.bodyFill >= 2) this.checkType(body[1] ?? 0)
    if (this.bodyFill < body.length) return undefined
    const frame = decodeBody(this.expect, body.subarray(2), this.options)
    this.done = true
    return { frame, rest: chunk.subarray(at + take) }
  }

  private checkType(type: number): void {
    if (type === FRAME_TYPE[this.expect]) return
    const known = Object.entries(FRAME_TYPE).find(([, v]) => v === type)?.[0]
    throw new FrameInvalidError(
      known === undefined ? `unknown frame type ${type}` : `expected a ${this.expect} frame, got a ${known} frame`,
    )
  }
}

/**
 * Decodes one whole frame from `bytes` (which may carry payload after it).
 * Throws like FrameReader.push, and FrameInvalidError when `bytes` ends mid-frame.
 */
export function decodeFrame<K extends FrameKind>(expect: K, bytes: Uint8Array, options?: FrameReaderOptions): DecodedFrame<K> {
  const reader = new FrameReader(expect, options)
  const out = reader.push(bytes)
  if (out === undefined) reader.finish()
  return out as DecodedFrame<K>
}

function decodeBody<K extends FrameKind>(expect: K, bytes: Uint8Array, options: FrameReaderOptions): FrameOf[K] {
  let value: unknown
  try {
    value = JSON.parse(utf8.decode(bytes))
  } catch (err) {
    throw new FrameInvalidError(`${expect} frame body is not UTF-8 JSON`, { cause: err })
  }
  const frame = expect === 'request' ? validateRequest(value) : validateResponse(value, options.requestOffset)
  return frame as FrameOf[K]
}

function validateRequest(value: unknown): BlobRequest {
  const o = plainObject(value, 'request', REQUEST_FIELDS)
  if (typeof o.digest !== 'string') throw new FrameInvalidError('request "digest" must be a string')
  try {
    parseDigest(o.digest)
  } catch (err) {
    // Not parseDigest's message: it may echo a long algorithm name in full.
    throw new FrameInvalidError(`request "digest" ${excerpt(o.digest)} is not sha256: or sha512: with lowercase hex`, { cause: err })
  }
  const offset = safeCount(o.offset, 'request "offset"')
  if (o.follow !== undefined && typeof o.follow !== 'boolean') throw new FrameInvalidError('request "follow" must be a boolean when present')
  const follow = o.follow === true ? { follow: true } : {}
  if (o.token === undefined) return { digest: o.digest, offset, ...follow }
  if (typeof o.token !== 'string' || o.token.length === 0) throw new FrameInvalidError('request "token" must be a non-empty string when present')
  if (Buffer.byteLength(o.token, 'utf8') > MAX_TOKEN_BYTES) throw new FrameInvalidError(`request "token" exceeds ${MAX_TOKEN_BYTES} bytes`)
  return { digest: o.digest, offset, token: o.token, ...follow }
}

function validateResponse(value: unknown, requestOffset: number | undefined): BlobResponse {
  const o = plainObject(value, 'response', OK_FIELDS)
  const status = o.status
  if (typeof status !== 'string' || !RESPONSE_STATUSES.has(status)) {
    throw new FrameInvalidError(`response "status" ${excerpt(status)} is not one of ${[...RESPONSE_STATUSES].join(', ')}`)
  }
  let message: string | undefined
  if (o.message !== undefined) {
    if (typeof o.message !== 'string') throw new FrameInvalidError('response "message" must be a string')
    if (o.message.length > MAX_MESSAGE_CHARS) throw new FrameInvalidError(`response "message" exceeds ${MAX_MESSAGE_CHARS} characters`)
    message = o.message
  }
  if (status !== 'ok') {
    plainObject(o, `'${status}' response`, REFUSAL_FIELDS)
    const refusal = { status: status as BlobResponseRefusal['status'] }
    return message === undefined ? refusal : { ...refusal, message }
  }
  const size = safeCount(o.size, "'ok' response \"size\"")
  const available = safeCount(o.available, "'ok' response \"available\"")
  if (typeof o.complete !== 'boolean') throw new FrameInvalidError(`'ok' response "complete" must be a boolean`)
  const complete = o.complete
  if (available > size) throw new FrameInvalidError(`'ok' response has available ${available} > size ${size}`)
  if (complete && available !== size) throw new FrameInvalidError(`'ok' response is complete but available ${available} != size ${size}`)
  if (requestOffset !== undefined && available < requestOffset) {
    throw new FrameInvalidError(`'ok' response has available ${available} < requested offset ${requestOffset}`)
  }
  const ok = { status: 'ok' as const, size, available, complete }
  return message === undefined ? ok : { ...ok, message }
}

/** Returns `value` as a record of own fields, all in `allowed`; throws FrameInvalidError otherwise. */
function plainObject(value: unknown, what: string, allowed: ReadonlySet<string>): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FrameInvalidError(`${what} body must be a JSON object`)
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (!allowed.has(key)) throw new FrameInvalidError(`${what} has unknown field ${excerpt(key)}`)
  }
  // Read own fields only, so an inherited property can never pass for a field.
  const own: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  for (const key of allowed) if (Object.hasOwn(record, key)) own[key] = record[key]
  return own
}

function safeCount(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new FrameInvalidError(`${what} must be a safe non-negative integer, got ${excerpt(value)}`)
  }
  return value === 0 ? 0 : value // normalise -0
}

/** A short, printable rendering of attacker-controlled input for error messages. */
function excerpt(value: unknown): string {
  let text: string
  try {
    text = typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? typeof value)
  } catch {
    text = typeof value
  }
  const cut = text.length > 64 ? `${text.slice(0, 64)}…` : text
  return cut.replace(/[^\x20-\x7e…]/g, '?')
}
