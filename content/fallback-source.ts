import type { Logger } from 'pino'
import type { Digest } from '../protocol/digest.js'
import { BlobUnknownError } from '../protocol/errors.js'
import { ExpiringMap } from './expiring-map.js'
import type { BlobInfo, BlobSource, OpenOptions, OpenedBlob } from './blob-source.js'

/** How long a source whose stream broke is passed over for that digest. */
const BROKEN_SOURCE_MS = 60_000
/** Most broken (source, digest) pairs remembered; the oldest go first. */
const MAX_BROKEN = 4096

/**
 * A chain of sources tried in order (peers, then the seed): the first that has the blob
 * serves it. A source that fails in any way hands over to the next one; the last source's
 * error is the one the caller sees. Each call starts at the front again,
 * so a fill that resumes after a break tries the cheaper sources first, unless it asks for
 * the last resort (`lastResort`): then only the final source is asked.
 */
export class FallbackSource implements BlobSource {
  readonly name: string
  readonly #sources: readonly BlobSource[]
  readonly #logger: Logger
  /** `<source> <digest>` whose stream broke lately: that source is skipped for that digest. */
  readonly #broken: ExpiringMap<true>

  constructor(sources: readonly BlobSource[], components: { logger: Logger; now?: () => number }, name = 'chain') {
    if (sources.length === 0) throw new TypeError('FallbackSource needs at least one source')
    this.#sources = sources
    this.#logger = components.logger
    this.#broken = new ExpiringMap({ ttlMs: BROKEN_SOURCE_MS, maxEntries: MAX_BROKEN }, components.now)
    this.name = name
  }

  async stat(digest: Digest, options?: OpenOptions): Promise<BlobInfo> {
    return this.#first(digest, options, (source) => source.stat(digest, options))
  }

  async open(digest: Digest, options?: OpenOptions): Promise<OpenedBlob> {
    return this.#first(digest, options, async (source) => {
      const opened = await source.open(digest, options)
      // A source whose stream breaks is passed over for this digest for a while, so the
      // resume goes to the next source instead of the one that just failed.
      if (source.handlesFailover !== true) {
        opened.stream.once('error', () => this.#broken.set(`${source.name} ${digest.value}`, true))
      }
      return { ...opened, source: opened.source ?? source.name }
    })
  }

  async retryAfterMismatch(digest: Digest): Promise<boolean> {
    let retry = false
    for (const source of this.#sources) if ((await source.retryAfterMismatch?.(digest)) === true) retry = true
    return retry
  }

  async #first<T>(digest: Digest, options: OpenOptions | undefined, attempt: (source: BlobSource) => Promise<T>): Promise<T> {
    let last: unknown = new BlobUnknownError(digest.value)
    for (const [i, source] of this.#sources.entries()) {
      options?.signal?.throwIfAborted()
      const final = i === this.#sources.length - 1
      if (options?.lastResort === true && !final) continue
      if (!final && this.#broken.has(`${source.name} ${digest.value}`)) continue
      try {
        return await attempt(source)
      } catch (err) {
        last = err
        options?.signal?.throwIfAborted()
        if (!final) this.#logger.debug({ digest: digest.value, source: source.name, err: (err as Error).message }, 'source cannot serve; trying the next')
      }
    }
    throw last
  }
}
