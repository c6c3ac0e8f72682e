import { DEFAULT_PROOF_MAX_SKEW_S, DEFAULT_REPLAY_CACHE_ENTRIES } from './proof-errors.js'

export interface ProofReplayCacheInit {
  /** The verifier's maxSkewS: an entry is kept until a proof with its timestamp would be stale. */
  maxSkewS?: number
  maxEntries?: number
}

/**
 * A Set-like memory of accepted proofs (`<peerId>:<timestamp>`) that forgets an entry
 * once its proof could no longer pass the staleness check, and holds at most `maxEntries`
 * (the oldest go first).
 */
export class ProofReplayCache {
  readonly #ttlMs: number
  readonly #maxEntries: number
  readonly #now: () => number
  readonly #expiry = new Map<string, number>()

  constructor(init: ProofReplayCacheInit = {}, components: { now?: () => number } = {}) {
    this.#ttlMs = 2 * (init.maxSkewS ?? DEFAULT_PROOF_MAX_SKEW_S) * 1000
    this.#maxEntries = init.maxEntries ?? DEFAULT_REPLAY_CACHE_ENTRIES
    this.#now = components.now ?? Date.now
  }

  get size(): number {
    return this.#expiry.size
  }

  has(key: string): boolean {
    const until = this.#expiry.get(key)
    return until !== undefined && until > this.#now()
  }

  add(key: string): this {
    const now = this.#now()
    for (const [k, until] of this.#expiry) {
      if (until > now && this.#expiry.size < this.#maxEntries) break
      this.#expiry.delete(k)
    }
    this.#expiry.delete(key)
    this.#expiry.set(key, now + this.#ttlMs)
    return this
  }
}
