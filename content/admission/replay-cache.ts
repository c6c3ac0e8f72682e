import { ExpiringMap } from '../expiring-map.js'
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
  readonly #seen: ExpiringMap<true>

  constructor(init: ProofReplayCacheInit = {}, components: { now?: () => number } = {}) {
    this.#seen = new ExpiringMap(
      { ttlMs: 2 * (init.maxSkewS ?? DEFAULT_PROOF_MAX_SKEW_S) * 1000, maxEntries: init.maxEntries ?? DEFAULT_REPLAY_CACHE_ENTRIES },
      components.now,
    )
  }

  get size(): number {
    return this.#seen.size
  }

  has(key: string): boolean {
    return this.#seen.has(key)
  }

  add(key: string): this {
    this.#seen.set(key, true)
    return this
  }
}
