import type { Logger } from 'pino'
import type { Digest } from '../protocol/digest.js'
import { DEFAULT_HIGH_WATERMARK, DEFAULT_LOW_WATERMARK } from './constants.js'
import type { ContentStore } from './store.js'

export interface EvictorInit {
  /** The cache's capacity in bytes. */
  maxBytes: number
  /** Start evicting above this fraction of maxBytes (default 0.85). */
  highWatermark?: number
  /** Evict down to this fraction of maxBytes (default 0.70). */
  lowWatermark?: number
}

export interface EvictorComponents {
  store: ContentStore
  logger: Logger
  /** Called for each evicted blob. */
  onEvict?: (digest: Digest, bytes: number) => void
}

/**
 * Keeps the store under its capacity: when committed bytes pass the high watermark it
 * deletes least-recently-used blobs until they are under the low watermark. Blobs being
 * read or filled are pinned and never evicted. One pass runs at a time.
 */
export class Evictor {
  readonly maxBytes: number
  readonly #high: number
  readonly #low: number
  readonly #c: EvictorComponents
  #running: Promise<void> | undefined
  #again = false
  #stopped = false

  constructor(init: EvictorInit, components: EvictorComponents) {
    this.maxBytes = init.maxBytes
    this.#high = init.maxBytes * (init.highWatermark ?? DEFAULT_HIGH_WATERMARK)
    this.#low = init.maxBytes * (init.lowWatermark ?? DEFAULT_LOW_WATERMARK)
    this.#c = components
  }

  /**
   * Subscribes to the store's commits. Returns the stop function: it unsubscribes, and resolves
   * once a pass in progress has ended, before its next delete; then the store may be closed.
   */
  attach(): () => Promise<void> {
    const onCommit = (): void => void this.check()
    this.#c.store.on('commit', onCommit)
    void this.check()
    return async () => {
      this.#stopped = true
      this.#c.store.off('commit', onCommit)
      await this.#running
    }
  }

  /** Starts a pass when over the high watermark. Resolves when the current pass is done. */
  check(): Promise<void> {
    if (this.#stopped || this.#c.store.bytes <= this.#high) return this.#running ?? Promise.resolve()
    if (this.#running !== undefined) {
      this.#again = true
      return this.#running
    }
    this.#running = this.#pass()
      .catch((err: unknown) => this.#c.logger.error({ err }, 'eviction pass failed'))
      .finally(() => {
        this.#running = undefined
        if (this.#again) {
          this.#again = false
          void this.check()
        }
      })
    return this.#running
  }

  async #pass(): Promise<void> {
    const { store, logger } = this.#c
    const candidates: Array<{ digest: Digest; size: number; lastAccess: number }> = []
    for await (const [digest, record] of store.entries()) candidates.push({ digest, size: record.size, lastAccess: record.lastAccess })
    candidates.sort((a, b) => a.lastAccess - b.lastAccess)
    let evicted = 0
    let freed = 0
    let skipped = 0
    for (const candidate of candidates) {
      if (this.#stopped || store.bytes <= this.#low) break
      if (!(await store.delete(candidate.digest))) {
        skipped++
        continue
      }
      evicted++
      freed += candidate.size
      this.#c.onEvict?.(candidate.digest, candidate.size)
    }
    logger.info({ evicted, freed, skippedInUse: skipped, bytes: store.bytes, maxBytes: this.maxBytes }, 'evicted least recently used blobs')
  }
}
