import type { Logger } from 'pino'
import type { ContentStore } from '../../content/store.js'
import type { Digest } from '../../protocol/digest.js'

/** What the advertiser needs from the DHT router. */
export interface Announcer {
  provide(digest: string, signal?: AbortSignal): Promise<unknown>
  withdraw(digest: string): Promise<void>
}

export interface AdvertiserComponents {
  store: ContentStore
  router: Announcer
  logger: Logger
}

/** Provides running at once; the rest wait their turn. */
const CONCURRENT_PROVIDES = 4
const PROVIDE_DEADLINE_MS = 30_000

/**
 * Keeps the DHT in step with the store: every committed blob or manifest digest is provided
 * (kad-dht re-provides it on its schedule), an evicted one is withdrawn, and on start-up
 * everything already held is provided in the background. Tags never pass through here.
 */
export class Advertiser {
  readonly #c: AdvertiserComponents
  readonly #queue: string[] = []
  readonly #queued = new Set<string>()
  #running = 0
  #stopped = false
  readonly #onCommit = (digest: Digest): void => this.announce(digest.value)
  readonly #onDelete = (digest: Digest): void => {
    void this.#c.router.withdraw(digest.value).catch((err: unknown) => this.#c.logger.debug({ err }, 'withdraw failed'))
  }

  constructor(components: AdvertiserComponents) {
    this.#c = components
  }

  /** Subscribes to the store and queues every blob it already holds. */
  async start(): Promise<void> {
    this.#c.store.on('commit', this.#onCommit)
    this.#c.store.on('delete', this.#onDelete)
    for await (const [digest] of this.#c.store.entries()) this.announce(digest.value)
  }

  stop(): void {
    this.#stopped = true
    this.#c.store.off('commit', this.#onCommit)
    this.#c.store.off('delete', this.#onDelete)
  }

  /** Queues a provide of `digest` (deduplicated while queued). */
  announce(digest: string): void {
    if (this.#stopped || this.#queued.has(digest)) return
    this.#queued.add(digest)
    this.#queue.push(digest)
    this.#pump()
  }

  #pump(): void {
    while (!this.#stopped && this.#running < CONCURRENT_PROVIDES && this.#queue.length > 0) {
      const digest = this.#queue.shift()!
      this.#running++
      this.#c.router
        .provide(digest, AbortSignal.timeout(PROVIDE_DEADLINE_MS))
        .catch((err: unknown) => this.#c.logger.debug({ digest, err: (err as Error).message }, 'provide failed'))
        .finally(() => {
          this.#running--
          this.#queued.delete(digest)
          this.#pump()
        })
    }
  }
}
