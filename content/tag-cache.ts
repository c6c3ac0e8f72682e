import { MAX_CACHED_TAGS } from './constants.js'

export interface TagEntry {
  digest: string
  mediaType: string
  /** When the upstream last confirmed it (ms since epoch). */
  fetchedAt: number
}

/**
 * Tag → digest answers from the upstream, kept past their TTL for stale-if-error,
 * bounded in count (least recently used forgotten first).
 */
export class TagCache {
  readonly #entries = new Map<string, TagEntry>()
  readonly #max: number

  constructor(max: number = MAX_CACHED_TAGS) {
    this.#max = max
  }

  get(key: string): TagEntry | undefined {
    const entry = this.#entries.get(key)
    if (entry !== undefined) {
      this.#entries.delete(key)
      this.#entries.set(key, entry)
    }
    return entry
  }

  set(key: string, entry: TagEntry): void {
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    if (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value
      if (oldest !== undefined) this.#entries.delete(oldest)
    }
  }
}
