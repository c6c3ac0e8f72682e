import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { Transform, pipeline, type Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { BlobInfo, BlobSource, OpenOptions, OpenedBlob } from '../../content/blob-source.js'
import { raceAbort } from '../../content/abort.js'
import { ExpiringMap } from '../../content/expiring-map.js'
import { BLOB_PROTOCOL, encodeRequest, type BlobResponseOk } from '../../protocol/blob-frames.js'
import type { Digest } from '../../protocol/digest.js'
import { BlobUnknownError, PollenError } from '../../protocol/errors.js'
import type { PollenLibp2p } from '../../content/p2p/node.js'
import type { ProviderInfo } from './router.js'
import type { AskParent } from './seed-parents.js'
import { readFrame, readableOf, sendBytes } from './stream-io.js'

/** Most digests or peers each of the source's memories holds (bans, broken transfers, who served what). */
const MAX_REMEMBERED = 4096
/** How long after its last byte a digest's servers are remembered (a mismatch bans them), and an announcement counts. */
const SERVED_BY_MS = 10 * 60_000

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
  /**
   * Deadline for the parent the seed named to answer: its own fill may have just started
   * (default 22 s: the parent waits up to 20 s for its source, and the fill that asks us gives
   * up on a silent source after DEFAULT_FILL_IDLE_TIMEOUT_MS, 30 s).
   */
  parentHeaderTimeoutMs?: number
  /**
   * A transfer from the parent the seed named is abandoned after this long without bytes
   * (default 25 s). Longer than stallTimeoutMs: a parent whose own source hiccups pauses its
   * whole chain, and it resumes its source itself (its fill's idle deadline); the followers
   * should wait for it rather than all fall back to the seed at once.
   */
  parentStallTimeoutMs?: number
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
  /**
   * Asks the seed where to fetch from (seed-parents.ts). With an answer, fills in progress are
   * followed only as the seed plans (its parent), and other peers serve only complete copies;
   * without one (absent, or the seed could not say) followers order themselves by PeerId.
   */
  askParent?: AskParent
  now?: () => number
}

export class PeerUnavailableError extends PollenError {
  constructor(message: string) {
    super('PeerUnavailableError', 'UNAVAILABLE', message)
  }
}

/** A provider to ask, and whether a copy still filling is acceptable from it. */
interface Candidate extends ProviderInfo {
  /** The seed named it our parent: follow its fill in progress. */
  follow?: boolean
  /** Accept only a complete copy (the seed plans who follows whom). */
  completeOnly?: boolean
}

interface Attempt {
  peer: string
  /** The transfer follows the parent the seed named. */
  follow: boolean
  stream: Stream
  payload: Readable
  header: BlobResponseOk
}

/**
 * Blobs from other agents over `/pollen/blob/1.0.0`. Finds providers in the DHT within a
 * short deadline, asks up to K of them (hedging a slow first one with a second), and
 * streams the bytes with backpressure. During a rollout the seed names a parent to follow
 * (askParent): an agent already fetching the blob, whose fill is read as it grows; other
 * peers then serve only complete copies. Without the seed's plan, a provider that is still
 * filling is used only when its PeerId sorts below ours, so followers form a tree, never a cycle. Peers whose bytes
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
  /** PeerIds whose bytes did not match, for banMs. */
  readonly #banned: ExpiringMap<true>
  /** `<peer> <digest>` whose transfer broke, for brokenMs. */
  readonly #broken: ExpiringMap<true>
  /** Digest → peers that served it, kept until a while after the last byte, for banning on a mismatch. */
  readonly #servedBy: ExpiringMap<Set<string>>
  /** Digests announced lately (once per fetch, not once per resume). */
  readonly #announced: ExpiringMap<true>

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
      parentHeaderTimeoutMs: init.parentHeaderTimeoutMs ?? 22_000,
      parentStallTimeoutMs: init.parentStallTimeoutMs ?? 25_000,
    }
    this.#c = components
    this.#self = components.libp2p.peerId.toString()
    this.#now = components.now ?? Date.now
    // Keys come from clients (any digest) and peers: bounded, so no flood grows the agent.
    this.#banned = new ExpiringMap({ ttlMs: this.#init.banMs, maxEntries: MAX_REMEMBERED }, this.#now)
    this.#broken = new ExpiringMap({ ttlMs: this.#init.brokenMs, maxEntries: MAX_REMEMBERED }, this.#now)
    this.#servedBy = new ExpiringMap({ ttlMs: SERVED_BY_MS, maxEntries: MAX_REMEMBERED }, this.#now)
    this.#announced = new ExpiringMap({ ttlMs: SERVED_BY_MS, maxEntries: MAX_REMEMBERED }, this.#now)
  }

  /** Peers banned right now (for metrics and tests). */
  bannedPeers(): string[] {
    return [...this.#banned.entries()].map(([peer]) => peer)
  }

  async stat(digest: Digest, options: OpenOptions = {}): Promise<BlobInfo> {
    const opened = await this.open(digest, options)
    opened.stream.destroy()
    return { digest: digest.value, size: opened.size }
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<OpenedBlob> {
    const offset = options.offset ?? 0
    const parent = await this.#c.askParent?.(digest, options.signal)
    options.signal?.throwIfAborted()
    const planned = parent !== undefined
    if (!this.#announced.has(digest.value) && this.#c.announce !== undefined) {
      this.#announced.set(digest.value, true)
      const announced = this.#c.announce(digest)
      if (planned) {
        // The seed orders this rollout; the record is for later fetchers.
        void announced.catch(() => {})
      } else {
        await raceAbort(announced, AbortSignal.timeout(this.#init.announceWaitMs)).catch(() => {})
        // Others starting the same blob at the same moment announce too; let their records land.
        await new Promise((resolve) => setTimeout(resolve, this.#init.settleMs))
      }
    }
    let won: Attempt | undefined
    if (parent !== null && parent !== undefined && !this.#unusable(parent.peerId, digest)) {
      won = await this.#race([{ ...parent, follow: true }], digest, offset, options.signal).catch((err: unknown) => {
        options.signal?.throwIfAborted()
        this.#c.logger.info({ peer: parent.peerId, digest: digest.value, err: (err as Error).message }, 'the parent the seed named could not serve; trying others')
        return undefined
      })
    }
    if (won === undefined) {
      const candidates = (await this.#candidates(digest, options.signal)).map((p): Candidate => ({ ...p, completeOnly: planned }))
      if (candidates.length === 0) throw new BlobUnknownError(digest.value)
      won = await this.#race(candidates, digest, offset, options.signal)
    }
    const served = this.#servedBy.get(digest.value) ?? new Set()
    this.#servedBy.set(digest.value, served.add(won.peer))
    return { digest: digest.value, size: won.header.size, stream: this.#watch(won, digest), source: 'peer' }
  }

  /** Bans every peer that served bytes for this digest; another copy may exist (another peer or the next source). */
  async retryAfterMismatch(digest: Digest): Promise<boolean> {
    for (const peer of this.#servedBy.get(digest.value) ?? []) {
      this.#banned.set(peer, true)
      this.#c.logger.warn({ peer, digest: digest.value }, 'peer sent bytes that do not match their digest; banned')
    }
    this.#servedBy.delete(digest.value)
    return true
  }

  async #candidates(digest: Digest, signal: AbortSignal | undefined): Promise<ProviderInfo[]> {
    const deadline = AbortSignal.timeout(this.#init.lookupTimeoutMs)
    const lookup = signal === undefined ? deadline : AbortSignal.any([signal, deadline])
    const found: ProviderInfo[] = []
    try {
      for await (const provider of this.#c.router.findProviders(digest.value, { signal: lookup, limit: this.#init.maxProviders * 3 })) {
        if (this.#unusable(provider.peerId, digest)) continue
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

  /** True for ourselves, a banned peer, and a peer whose transfer of this digest broke lately. */
  #unusable(peer: string, digest: Digest): boolean {
    return peer === this.#self || this.#banned.has(peer) || this.#broken.has(`${peer} ${digest.value}`)
  }

  /** Asks candidates in order, starting the next when the previous is slow or fails; the first usable answer wins. */
  #race(candidates: Candidate[], digest: Digest, offset: number, signal: AbortSignal | undefined): Promise<Attempt> {
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

  async #attempt(provider: Candidate, digest: Digest, offset: number, hedgeSignal: AbortSignal, callerSignal: AbortSignal | undefined): Promise<Attempt> {
    const follow = provider.follow === true
    const signals = [hedgeSignal, AbortSignal.timeout(follow ? this.#init.parentHeaderTimeoutMs : this.#init.headerTimeoutMs)]
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
      await sendBytes(stream, encodeRequest({ digest: digest.value, offset, ...(token === undefined ? {} : { token }), ...(follow ? { follow } : {}) }), signal)
      const header = await readFrame(payload, 'response', signal, { requestOffset: offset })
      if (header.status !== 'ok') throw header.status === 'not-found' ? new BlobUnknownError(digest.value) : new PeerUnavailableError(`peer answered ${header.status}${header.message === undefined ? '' : `: ${header.message}`}`)
      if (!header.complete && !follow && (provider.completeOnly === true || provider.peerId >= this.#self)) {
        throw new PeerUnavailableError('peer is still filling and is not ours to follow; not following it, to keep followers acyclic')
      }
      return { peer: provider.peerId, follow, stream, payload, header }
    } catch (err) {
      payload.destroy()
      throw err
    }
  }

  /** The payload, failing with PeerUnavailableError when it stalls; a broken peer is passed over for this digest. */
  #watch(attempt: Attempt, digest: Digest): Readable {
    const stallMs = attempt.follow ? this.#init.parentStallTimeoutMs : this.#init.stallTimeoutMs
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
      // The fill verifies after the last byte: remember who served it for a while from now.
      const served = this.#servedBy.get(digest.value)
      if (served !== undefined) this.#servedBy.set(digest.value, served)
      if (err === undefined || err === null) return
      this.#broken.set(`${attempt.peer} ${digest.value}`, true)
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
