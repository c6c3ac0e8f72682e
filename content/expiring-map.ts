export interface ExpiringMapInit {
  /** How long an entry lives after it was last set, unless set() is given its own. */
  ttlMs: number
  /** Most entries held; past it the least recently set go first. */
  maxEntries: number
}

/**
 * Key → value, each forgotten once its time is up, and at most `maxEntries` of them: memory
 * for "recently seen" facts whose keys come from outside (digests a client asked for, PeerIds
 * that connected), so that no flood of fresh keys grows the process without bound.
 */
export class ExpiringMap<V> {
  readonly #ttlMs: number
  readonly #maxEntries: number
  readonly #now: () => number
  /** Insertion order is set() order, so the first entry is the least recently set. */
  readonly #entries = new Map<string, { value: V; until: number }>()

  /** Throws RangeError unless ttlMs >= 0 and maxEntries is a positive integer. */
  constructor(init: ExpiringMapInit, now: () => number = Date.now) {
    if (!(init.ttlMs >= 0)) throw new RangeError('ttlMs must be >= 0')
    if (!(init.maxEntries >= 1) || !Number.isSafeInteger(init.maxEntries)) throw new RangeError('maxEntries must be a positive integer')
    this.#ttlMs = init.ttlMs
    this.#maxEntries = init.maxEntries
    this.#now = now
  }

  /** Sets `key` for `ttlMs` (the map's own by default) from now, and forgets what expired or overflows. */
  set(key: string, value: V, ttlMs = this.#ttlMs): this {
    const now = this.#now()
    this.#entries.delete(key)
    this.#entries.set(key, { value, until: now + ttlMs })
    for (const [k, entry] of this.#entries) {
      if (entry.until > now && this.#entries.size <= this.#maxEntries) break
      this.#entries.delete(k)
    }
    return this
  }

  /** The value while it lives; undefined once it expired (it is then dropped). */
  get(key: string): V | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.until > this.#now()) return entry.value
    this.#entries.delete(key)
    return undefined
  }

  has(key: string): boolean {
    return this.get(key) !== undefined
  }

  delete(key: string): void {
    this.#entries.delete(key)
  }

  /** Live entries, least recently set first. */
  *entries(): IterableIterator<[string, V]> {
    const now = this.#now()
    for (const [key, entry] of this.#entries) if (entry.until > now) yield [key, entry.value]
  }

  /** Entries held, expired ones included until they are looked up or pushed out. */
  get size(): number {
    return this.#entries.size
  }
}
