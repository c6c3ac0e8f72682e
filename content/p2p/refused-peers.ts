import { ExpiringMap } from '../expiring-map.js'

export interface RefusedPeersInit {
  /** How long a peer stays refused. */
  refuseForMs: number
  /** Most peers held; past it the oldest refusal is forgotten first. */
  maxPeers: number
}

/**
 * PeerIds refused recently, each with why, until its refusal expires: a bounded, expiring
 * set, so that a flood of fresh identities costs memory only up to `maxPeers` entries.
 */
export class RefusedPeers<R extends string = string> {
  /** PeerId → why it is refused, until its refusal expires. */
  readonly #refused: ExpiringMap<R>

  /** Throws RangeError unless refuseForMs >= 0 and maxPeers >= 1. */
  constructor(init: RefusedPeersInit, now: () => number = Date.now) {
    if (!(init.refuseForMs >= 0)) throw new RangeError('refuseForMs must be >= 0')
    if (!(init.maxPeers >= 1) || !Number.isSafeInteger(init.maxPeers)) throw new RangeError('maxPeers must be a positive integer')
    this.#refused = new ExpiringMap({ ttlMs: init.refuseForMs, maxEntries: init.maxPeers }, now)
  }

  /**
   * Refuses `peerId` from now on for refuseForMs. Returns false when it was already refused
   * (it then keeps its first reason).
   */
  add(peerId: string, reason: R): boolean {
    const first = this.#refused.get(peerId)
    this.#refused.set(peerId, first ?? reason)
    return first === undefined
  }

  /** True while `peerId` is refused. */
  has(peerId: string): boolean {
    return this.#refused.has(peerId)
  }

  /** Why `peerId` is refused; undefined when it is not (any more). */
  reason(peerId: string): R | undefined {
    return this.#refused.get(peerId)
  }

  delete(peerId: string): void {
    this.#refused.delete(peerId)
  }

  /** Entries held, expired ones included until they are looked up or pushed out. */
  get size(): number {
    return this.#refused.size
  }
}
