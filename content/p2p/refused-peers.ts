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
  readonly #refuseForMs: number
  readonly #maxPeers: number
  readonly #now: () => number
  /** PeerId → refused until (ms) and why. Insertion order is refusal order, so the first entry is the oldest. */
  readonly #until = new Map<string, { until: number; reason: R }>()

  /** Throws RangeError unless refuseForMs >= 0 and maxPeers >= 1. */
  constructor(init: RefusedPeersInit, now: () => number = Date.now) {
    if (!(init.refuseForMs >= 0)) throw new RangeError('refuseForMs must be >= 0')
    if (!(init.maxPeers >= 1) || !Number.isSafeInteger(init.maxPeers)) throw new RangeError('maxPeers must be a positive integer')
    this.#refuseForMs = init.refuseForMs
    this.#maxPeers = init.maxPeers
    this.#now = now
  }

  /**
   * Refuses `peerId` from now on for refuseForMs. Returns false when it was already refused
   * (it then keeps its first reason).
   */
  add(peerId: string, reason: R): boolean {
    const was = this.has(peerId)
    const first = this.#until.get(peerId)?.reason
    this.#until.delete(peerId)
    this.#until.set(peerId, { until: this.#now() + this.#refuseForMs, reason: was && first !== undefined ? first : reason })
    while (this.#until.size > this.#maxPeers) this.#until.delete(this.#until.keys().next().value as string)
    return !was
  }

  /** True while `peerId` is refused. */
  has(peerId: string): boolean {
    return this.reason(peerId) !== undefined
  }

  /** Why `peerId` is refused; undefined when it is not (any more). */
  reason(peerId: string): R | undefined {
    const entry = this.#until.get(peerId)
    if (entry === undefined) return undefined
    if (entry.until > this.#now()) return entry.reason
    this.#until.delete(peerId)
    return undefined
  }

  delete(peerId: string): void {
    this.#until.delete(peerId)
  }

  /** Entries held, expired ones included until they are looked up or pushed out. */
  get size(): number {
    return this.#until.size
  }
}
