import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { Transform, pipeline, type Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { BlobInfo, BlobSource, OpenOptions, OpenedBlob } from '../../content/blob-source.js'
import { raceAbort } from '../../content/abort.js'
import { BLOB_PROTOCOL, encodeRequest, type BlobResponseOk } from '../../protocol/blob-frames.js'
import type { Digest } from '../../protocol/digest.js'
import { BlobUnknownError, PollenError } from '../../protocol/errors.js'
import type { PollenLibp2p } from '../../content/p2p/node.js'
import type { ProviderInfo } from './router.js'
import { readFrame, readableOf, sendBytes } from './stream-io.js'

export interface PeerSourceInit {
  /** Deadline for the DHT lookup of a digest's providers (default 800 ms). */
  lookupTimeoutMs?: number
  /** Providers tried at most per open (default 3). */
  maxProviders?: number
  /** Start a second provider when the first has not answered within this (default 400 ms). */
  hedgeAfterMs?: number
  /** Deadline for a provider to connect and answer the request (default 3 s). */
  headerTimeoutMs?: number
  /** A transfer with no bytes for this long is abandoned (default 5 s). */
  stallTimeoutMs?: number
  /** How long a peer that sent bytes not matching their digest is banned (default 10 min). */
  banMs?: number
  /** How long a peer whose transfer broke is passed over for that digest (default 60 s). */
  brokenMs?: number
  /** How long the first open of a digest waits for our own announcement to spread (default 1 s). */
  announceWaitMs?: number
  /** Pause after announcing, before looking for providers, so simultaneous starters see each other (default 150 ms). */
  settleMs?: number
}

export interface PeerSourceComponents {
  libp2p: PollenLibp2p
  router: { findProviders(digest: string, options: { signal?: AbortSignal; limit?: number }): AsyncIterable<ProviderInfo> }
  logger: Logger
  /** Announces that we are filling a digest (so others can read from us); bounded by announceWaitMs. */
  announce?: (digest: Digest) => Promise<unknown>
  /** The admission token to send with each request, when admission is on. */
  token?: () => string | undefined
  /**
   * When peers are gated: resolves true once the provider is admitted on the connection just
   * dialled (its token checked), false when it is refused or `signal` aborts. Absent: no wait.
   */
  admitted?: (peerId: string, signal: AbortSignal) => Promise<boolean>
  now?: () => number
}

export class PeerUnavailableError extends PollenError {
  constructor(message: string) {
    super('PeerUnavailableError', 'UNAVAILABLE', message)
  }
}

interface Attempt {
  peer: string
  stream: Stream
  payload: Readable
  header: BlobResponseOk
}

/**
 * Blobs from other agents over `/pollen/blob/1.0.0`. Finds providers in the DHT within a
 * short deadline, asks up to K of them (hedging a slow first one with a second), and
 * streams the bytes with backpressure. A provider that is still filling is used only when
 * its PeerId sorts below ours, so followers form a tree, never a cycle. Peers whose bytes
 * did not match are banned; peers whose transfer broke are passed over for that digest.
 * Throws BlobUnknownError when no peer can serve, so the next source (the seed) takes over.
 */
export class PeerSource implements BlobSource {
  readonly name = 'peer'
  readonly handlesFailover = true
  readonly #init: Required<PeerSourceInit>
  readonly #c: PeerSourceComponents
  readonly #self: string
  readonly #now: () => number
  readonly #banned = new Map<string, number>()
  readonly #broken = new Map<string, number>()
  readonly #servedBy = new Map<string, Set<string>>()
  readonly #announced = new Set<string>()

  constructor(init: PeerSourceInit, components: PeerSourceComponents) {
    this.#init = {
      lookupTimeoutMs: init.lookupTimeoutMs ?? 800,
      maxProviders: init.maxProviders ?? 3,
      hedgeAfterMs: init.hedgeAfterMs ?? 400,
      headerTimeoutMs: init.headerTimeoutMs ?? 4000,
      stallTimeoutMs: init.stallTimeoutMs ?? 5000,
      banMs: init.banMs ?? 600_000,
      brokenMs: init.brokenMs ?? 60_000,
      announceWaitMs: init.announceWaitMs ?? 1000,
      settleMs: init.settleMs ?? 150,
    }
    this.#c = components
    this.#self = components.libp2p.peerId.toString()
    this.#now = components.now ?? Date.now
  }

  /** Peers banned right now (for metrics and tests). */
  bannedPeers(): string[] {
    const now = this.#now()
    return [...this.#banned].filter(([, until]) => until > now).map(([peer]) => peer)
  }

  async stat(digest: Digest, options: OpenOptions = {}): Promise<BlobInfo> {
    const opened = await this.open(digest, options)
    opened.stream.destroy()
    return { digest: digest.value, size: opened.size }
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<OpenedBlob> {
    const offset = options.offset ?? 0
    if (!this.#announced.has(digest.value) && this.#c.announce !== undefined) {
      this.#announced.add(digest.value)
      await raceAbort(this.#c.announce(digest), AbortSignal.timeout(this.#init.announceWaitMs)).catch(() => {})
      // Others starting the same blob at the same moment announce too; let their records land.
      await new Promise((resolve) => setTimeout(resolve, this.#init.settleMs))
    }
    const candidates = await this.#candidates(digest, options.signal)
    if (candidates.length === 0) throw new BlobUnknownError(digest.value)
    const won = await this.#race(candidates, digest, offset, options.signal)
    let served = this.#servedBy.get(digest.value)
    if (served === undefined) this.#servedBy.set(digest.value, (served = new Set()))
    served.add(won.peer)
    return { digest: digest.value, size: won.header.size, stream: this.#watch(won, digest), source: 'peer' }
  }

  /** Bans every peer that served bytes for this digest; another copy may exist (another peer or the next source). */
  async retryAfterMismatch(digest: Digest): Promise<boolean> {
    const until = this.#now() + this.#init.banMs
    for (const peer of this.#servedBy.get(digest.value) ?? []) {
      this.#banned.set(peer, until)
      this.#c.logger.warn({ peer, digest: digest.value }, 'peer sent bytes that do not match their digest; banned')
    }
    this.#servedBy.delete(digest.value)
    return true
  }

  async #candidates(digest: Digest, signal: AbortSignal | undefined): Promise<ProviderInfo[]> {
    const deadline = AbortSignal.timeout(this.#init.lookupTimeoutMs)
    const lookup = signal === undefined ? deadline : AbortSignal.any([signal, deadline])
    const now = this.#now()
    const found: ProviderInfo[] = []
    try {
      for await (const provider of this.#c.router.findProviders(digest.value, { signal: lookup, limit: this.#init.maxProviders * 3 })) {
        if (provider.peerId === this.#self) continue
        if ((this.#banned.get(provider.peerId) ?? 0) > now) continue
        if ((this.#broken.get(`${provider.peerId} ${digest.value}`) ?? 0) > now) continue
        found.push(provider)
        if (found.length >= this.#init.maxProviders * 4) break
      }
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason
      if (!deadline.aborted) this.#c.logger.debug({ digest: digest.value, err: (err as Error).message }, 'provider lookup failed')
    }
    // Peers that sort below us first (they may serve a fill in progress; the others only a
    // complete copy), each group shuffled so that followers spread out into a tree.
    const below = shuffle(found.filter((p) => p.peerId < this.#self))
    const above = shuffle(found.filter((p) => p.peerId > this.#self))
    return [...below, ...above].slice(0, this.#init.maxProviders)
  }

  /** Asks candidates in order, starting the next when the previous is slow or fails; the first usable answer wins. */
  #race(candidates: ProviderInfo[], digest: Digest, offset: number, signal: AbortSignal | undefined): Promise<Attempt> {
    return new Promise((resolve, reject) => {
      const controllers: AbortController[] = []
      let next = 0
      let pending = 0
      let settled = false
      let lastError: unknown = new BlobUnknownError(digest.value)
      let hedge: NodeJS.Timeout | undefined
      const finish = (): void => {
        settled = true
        if (hedge !== undefined) clearTimeout(hedge)
      }
      const launch = (): void => {
        if (settled || next >= candidates.length) return
        const candidate = candidates[next++]!
        const controller = new AbortController()
        controllers.push(controller)
        pending++
        hedge = setTimeout(launch, this.#init.hedgeAfterMs)
        this.#attempt(candidate, digest, offset, controller.signal, signal).then(
          (attempt) => {
            pending--
            if (settled) {
              attempt.payload.destroy()
              return
            }
            finish()
            for (const c of controllers) if (c !== controller) c.abort(new PeerUnavailableError('another peer answered first'))
            resolve(attempt)
          },
          (err: unknown) => {
            pending--
            lastError = err
            if (settled) return
            if (signal?.aborted === true) {
              finish()
              reject(signal.reason)
              return
            }
            if (next < candidates.length) launch()
            else if (pending === 0) {
              finish()
              reject(lastError instanceof PollenError && lastError.ociCode !== 'INTERNAL' ? lastError : new BlobUnknownError(digest.value))
            }
          },
        )
      }
      launch()
    })
  }

  async #attempt(provider: ProviderInfo, digest: Digest, offset: number, hedgeSignal: AbortSignal, callerSignal: AbortSignal | undefined): Promise<Attempt> {
    const signals = [hedgeSignal, AbortSignal.timeout(this.#init.headerTimeoutMs)]
    if (callerSignal !== undefined) signals.push(callerSignal)
    const signal = AbortSignal.any(signals)
    const target = provider.multiaddrs.length > 0 ? provider.multiaddrs.map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${provider.peerId}`)) : peerIdFromString(provider.peerId)
    if (this.#c.admitted !== undefined) {
      // Never ask (nor send our token to) a provider that has not shown a valid token of its own.
      await this.#c.libp2p.dial(target, { signal })
      if (!(await this.#c.admitted(provider.peerId, signal))) {
        signal.throwIfAborted()
        throw new PeerUnavailableError('provider is not admitted')
      }
    }
    const stream = await this.#c.libp2p.dialProtocol(target, BLOB_PROTOCOL, { signal })
    const payload = readableOf(stream)
    try {
      const token = this.#c.token?.()
      await sendBytes(stream, encodeRequest(token === undefined ? { digest: digest.value, offset } : { digest: digest.value, offset, token }), signal)
      const header = await readFrame(payload, 'response', signal, { requestOffset: offset })
      if (header.status !== 'ok') throw header.status === 'not-found' ? new BlobUnknownError(digest.value) : new PeerUnavailableError(`peer answered ${header.status}${header.message === undefined ? '' : `: ${header.message}`}`)
      if (!header.complete && provider.peerId >= this.#self) {
        throw new PeerUnavailableError('peer is still filling and does not sort below us; not following it, to keep followers acyclic')
      }
      return { peer: provider.peerId, stream, payload, header }
    } catch (err) {
      payload.destroy()
      throw err
    }
  }

  /** The payload, failing with PeerUnavailableError when it stalls; a broken peer is passed over for this digest. */
  #watch(attempt: Attempt, digest: Digest): Readable {
    const stallMs = this.#init.stallTimeoutMs
    const watched = new Transform({
      // Chunks pass one by one: a byte-mode readable side would join everything buffered
      // into a new Buffer on each read() of the consumer's async iterator (a copy per byte).
      readableObjectMode: true,
      readableHighWaterMark: 16,
      writableHighWaterMark: 1024 * 1024,
      transform(chunk: Buffer, _enc, callback) {
        timer.refresh()
        callback(null, chunk)
      },
    })
    const timer = setTimeout(() => watched.destroy(new PeerUnavailableError(`peer sent nothing for ${stallMs} ms`)), stallMs)
    pipeline(attempt.payload, watched, (err) => {
      clearTimeout(timer)
      if (err === undefined || err === null) return
      this.#broken.set(`${attempt.peer} ${digest.value}`, this.#now() + this.#init.brokenMs)
      this.#c.logger.info({ peer: attempt.peer, digest: digest.value, err: err.message }, 'peer transfer broke')
    })
    return watched
  }
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}
