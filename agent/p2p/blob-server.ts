import type { Connection, Stream } from '@libp2p/interface'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { CachingSource } from '../../content/caching-source.js'
import type { ContentStore } from '../../content/store.js'
import { raceAbort } from '../../content/abort.js'
import { BLOB_PROTOCOL, FRAME_VERSION, MAX_FRAME_BYTES, encodeResponse, type BlobRequest, type BlobResponse } from '../../protocol/blob-frames.js'
import { parseDigest } from '../../protocol/digest.js'
import { repositoryKey } from '../../protocol/reference.js'
import { PollenError } from '../../protocol/errors.js'
import type { PollenLibp2p } from '../../content/p2p/node.js'
import { RateLimiter } from './rate-limiter.js'
import { readFrame, readableOf, sendBytes } from './stream-io.js'

export interface BlobServerInit {
  /** Concurrent uploads; more get `busy` (default 8). */
  maxUploads?: number
  /** Upload bandwidth for all uploads together, bytes/s; 0 = unlimited (default 0). */
  uploadLimit?: number
  /** Deadline for a peer to send its request frame (default 10 s). */
  requestTimeoutMs?: number
  /** How long a request for a fill that does not know its size yet waits for it (default 2.5 s). */
  readyWaitMs?: number
  /**
   * The same for a follower the seed sent to us (`follow`): our fill may have just started and
   * its source (the seed, or our own parent) may be slow to answer. Default 20 s, within the
   * follower's own deadline (PeerSource parentHeaderTimeoutMs) and its fill's idle deadline.
   */
  followReadyWaitMs?: number
}

export interface BlobServerComponents {
  libp2p: PollenLibp2p
  store: ContentStore
  /** For fills in progress, which are served as they grow. */
  blobs: CachingSource
  logger: Logger
  onUploadBytes?: (n: number) => void
  /** Admission check of every request; absent: every peer is admitted. */
  authorize?: AuthorizeBlobRequest
}

/**
 * Checks a request's admission token against the connection's authenticated peer and the
 * repositories (`ns/name`) the requested blob was seen in, which are undefined when this
 * agent holds no such blob (then only the token is checked). Throws to refuse: the peer
 * gets `unauthorized` with the error's message.
 */
export type AuthorizeBlobRequest = (token: string | undefined, remotePeer: string, repositories: readonly string[] | undefined) => Promise<void>

const DEFAULT_MAX_UPLOADS = 8
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000
const DEFAULT_READY_WAIT_MS = 2_500
const DEFAULT_FOLLOW_READY_WAIT_MS = 20_000

/**
 * Serves `/pollen/blob/1.0.0`: one request frame in, one response header out, then the
 * bytes from the requested offset. Serves only what this agent holds or is filling (a fill
 * is read as it grows, and never yields its last byte before the digest matched); it never
 * fetches onward for a peer. Sends honour backpressure, uploads are bounded in number and
 * bandwidth, and malformed requests get `bad-request` without harming other streams.
 */
export class BlobServer {
  readonly #maxUploads: number
  readonly #requestTimeoutMs: number
  readonly #limiter: RateLimiter
  readonly #c: BlobServerComponents
  readonly #self: string
  readonly #readyWaitMs: number
  readonly #followReadyWaitMs: number
  #active = 0

  constructor(init: BlobServerInit, components: BlobServerComponents) {
    this.#maxUploads = init.maxUploads ?? DEFAULT_MAX_UPLOADS
    this.#requestTimeoutMs = init.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    this.#limiter = new RateLimiter(init.uploadLimit ?? 0)
    this.#c = components
    this.#self = components.libp2p.peerId.toString()
    this.#readyWaitMs = init.readyWaitMs ?? DEFAULT_READY_WAIT_MS
    this.#followReadyWaitMs = init.followReadyWaitMs ?? DEFAULT_FOLLOW_READY_WAIT_MS
  }

  get activeUploads(): number {
    return this.#active
  }

  async start(): Promise<void> {
    await this.#c.libp2p.handle(BLOB_PROTOCOL, (stream, connection) => void this.#serve(stream, connection), {
      maxInboundStreams: this.#maxUploads * 4,
      runOnLimitedConnection: false,
    })
  }

  async stop(): Promise<void> {
    await this.#c.libp2p.unhandle(BLOB_PROTOCOL)
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    const readable = readableOf(stream)
    let body: Readable | undefined
    let counted = false
    try {
      const request = await readFrame(readable, 'request', AbortSignal.timeout(this.#requestTimeoutMs))
      if (this.#c.authorize !== undefined) {
        const repositories = await this.#repositoriesOf(request.digest)
        try {
          await this.#c.authorize(request.token, peer, repositories)
        } catch (err) {
          return await this.#refuse(stream, { status: 'unauthorized', message: (err as Error).message.slice(0, 200) })
        }
      }
      if (this.#active >= this.#maxUploads) return await this.#refuse(stream, { status: 'busy' })
      this.#active++
      counted = true
      const found = await this.#open(request, peer)
      if (found === undefined) return await this.#refuse(stream, { status: 'not-found' })
      if (request.offset > found.size) return await this.#refuse(stream, { status: 'bad-request', message: 'offset past the end' })
      await sendBytes(stream, encodeResponse({ status: 'ok', size: found.size, available: found.available, complete: found.complete }))
      if (request.offset < found.size) {
        body = await found.read(request.offset, found.size - 1)
        for await (const chunk of body) {
          await this.#limiter.take(chunk.byteLength)
          await sendBytes(stream, chunk as Buffer)
          this.#c.onUploadBytes?.(chunk.byteLength)
        }
      }
      await stream.close({ signal: AbortSignal.timeout(this.#requestTimeoutMs) })
    } catch (err) {
      body?.destroy()
      if (err instanceof PollenError && err.name.startsWith('Frame') && stream.status === 'open') {
        this.#c.logger.debug({ peer, err: err.message }, 'malformed blob request')
        await this.#refuse(stream, { status: 'bad-request', message: badRequestMessage(err) }).catch(() => {})
        return
      }
      this.#c.logger.debug({ peer, err: (err as Error).message }, 'blob upload ended early')
      if (stream.status === 'open' || stream.status === 'closing') stream.abort(err as Error)
    } finally {
      readable.destroy()
      if (counted) this.#active--
    }
  }

  async #refuse(stream: Stream, response: BlobResponse): Promise<void> {
    await sendBytes(stream, encodeResponse(response))
    await stream.close({ signal: AbortSignal.timeout(this.#requestTimeoutMs) }).catch(() => stream.abort(new Error('close timed out')))
  }

  /** The repositories a blob we hold (or are filling) was seen in; undefined when we have no such blob. */
  async #repositoriesOf(digest: string): Promise<readonly string[] | undefined> {
    const parsed = parseDigest(digest)
    const record = await this.#c.store.stat(parsed)
    if (record !== undefined) return record.repositories
    const fill = this.#c.blobs.fillOf(parsed)
    if (fill === undefined) return undefined
    return fill.repository === undefined ? [] : [repositoryKey(fill.repository)]
  }

  /** What we can serve for the request: a committed blob, or a fill in progress that knows its size. */
  async #open(request: BlobRequest, peer: string): Promise<{ size: number; available: number; complete: boolean; read(start: number, end: number): Promise<Readable> } | undefined> {
    const digest = parseDigest(request.digest)
    const record = await this.#c.store.stat(digest)
    if (record !== undefined) {
      return { size: record.size, available: record.size, complete: true, read: (start, end) => this.#c.store.createReadStream(digest, { start, end }) }
    }
    const fill = this.#c.blobs.fillOf(digest)
    if (fill === undefined || fill.error !== undefined) return undefined
    // Followers of a fill in progress form a tree ordered by PeerId: a peer that sorts below
    // us must not wait on us (we may be waiting on it), so it is told we do not have it.
    // A follower the seed sent to us is exempt: the seed orders its followers by arrival.
    const follow = request.follow === true
    if (peer < this.#self && !follow) return undefined
    // Our fill may still be finding its own source; wait (bounded) until it knows the size.
    const info = await raceAbort(fill.ready, AbortSignal.timeout(follow ? this.#followReadyWaitMs : this.#readyWaitMs)).catch(() => undefined)
    if (info === undefined || fill.size === undefined) return undefined
    const size = fill.size
    return { size, available: Math.min(fill.written, size), complete: false, read: async (start, end) => fill.createReader(start, end) }
  }
}

/**
 * What a peer that sent a malformed request is told: the kind of fault only. The codec's own
 * message quotes the offending field names and values, which would echo the peer's bytes back.
 */
function badRequestMessage(err: PollenError): string {
  if (err.name === 'FrameTooLargeError') return `request frame too large (at most ${MAX_FRAME_BYTES} bytes)`
  if (err.name === 'FrameVersionError') return `unsupported frame version (expected ${FRAME_VERSION})`
  return 'malformed request frame'
}
