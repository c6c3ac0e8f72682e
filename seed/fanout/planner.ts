/**
 * Who fetches a blob from whom during a rollout. The seed answers the first `direct`
 * agents that ask for a blob "from me"; every later one gets a parent among the agents
 * fetching it, at the least depth with a free child slot, so the agents form `direct`
 * pipelined chains (with `children` = 1) or trees. An agent that asks again for a blob it
 * was already told about lost its source: it is sent to the seed, so a broken parent costs
 * the seed one resume, never a failed pull. Pure logic; no I/O.
 */

export const DEFAULT_FANOUT_DIRECT = 2
export const DEFAULT_FANOUT_CHILDREN = 1
/** How long a fetcher is remembered as a possible parent after it was told where to fetch from. */
export const DEFAULT_FANOUT_TTL_MS = 10 * 60_000
/** Blobs tracked at once; the least recently asked for are forgotten first. */
export const DEFAULT_FANOUT_MAX_BLOBS = 10_000
/** Fetchers tracked per blob; beyond it every newcomer is answered "from me". */
const MAX_FETCHERS_PER_BLOB = 10_000

export interface FanoutPlannerInit {
  /** Agents per blob sent to the seed itself (0 turns fan-out off: everyone is). */
  direct?: number
  /** Followers one agent serves at once. */
  children?: number
  ttlMs?: number
  maxBlobs?: number
}

export interface FanoutPlannerComponents {
  /** False for an agent that cannot serve as a parent now (not connected). Default: every agent can. */
  online?: (peerId: string) => boolean
  now?: () => number
}

export type FanoutDecision = { from: 'seed'; reason: 'first' | 'again' | 'no-parent' | 'off' } | { from: 'peer'; parent: string; depth: number }

interface Fetcher {
  parent: string | undefined
  children: number
  depth: number
}

interface BlobPlan {
  fetchers: Map<string, Fetcher>
  direct: number
  touched: number
}

export class FanoutPlanner {
  readonly #direct: number
  readonly #children: number
  readonly #ttlMs: number
  readonly #maxBlobs: number
  readonly #online: (peerId: string) => boolean
  readonly #now: () => number
  /** Insertion order is recency: a blob asked for again moves to the end. */
  readonly #blobs = new Map<string, BlobPlan>()

  /** Throws RangeError for a negative or fractional bound. */
  constructor(init: FanoutPlannerInit = {}, c: FanoutPlannerComponents = {}) {
    this.#direct = count(init.direct ?? DEFAULT_FANOUT_DIRECT, 'direct', 0)
    this.#children = count(init.children ?? DEFAULT_FANOUT_CHILDREN, 'children', 1)
    this.#ttlMs = count(init.ttlMs ?? DEFAULT_FANOUT_TTL_MS, 'ttlMs', 1)
    this.#maxBlobs = count(init.maxBlobs ?? DEFAULT_FANOUT_MAX_BLOBS, 'maxBlobs', 1)
    this.#online = c.online ?? (() => true)
    this.#now = c.now ?? Date.now
  }

  /** Blobs tracked now (for metrics and tests). */
  get blobs(): number {
    return this.#blobs.size
  }

  /** Where `peer` should fetch `digest` from; records the answer. */
  assign(digest: string, peer: string): FanoutDecision {
    if (this.#direct === 0) return { from: 'seed', reason: 'off' }
    const now = this.#now()
    this.#expire(now)
    let plan = this.#blobs.get(digest)
    if (plan === undefined) plan = { fetchers: new Map(), direct: 0, touched: now }
    this.#blobs.delete(digest)
    this.#blobs.set(digest, plan)
    plan.touched = now
    if (this.#blobs.size > this.#maxBlobs) this.#blobs.delete(this.#blobs.keys().next().value!)

    const known = plan.fetchers.get(peer)
    if (known !== undefined) {
      // Asked again: its source broke (or it lost the blob). The seed serves it; its followers stay with it.
      this.#leave(plan, known)
      known.parent = undefined
      known.depth = 0
      return { from: 'seed', reason: 'again' }
    }
    if (plan.direct < this.#direct || plan.fetchers.size >= MAX_FETCHERS_PER_BLOB) {
      plan.direct++
      plan.fetchers.set(peer, { parent: undefined, children: 0, depth: 0 })
      return { from: 'seed', reason: 'first' }
    }
    let best: [string, Fetcher] | undefined
    for (const entry of plan.fetchers) {
      const [id, f] = entry
      if (f.children >= this.#children || id === peer) continue
      if (best !== undefined && f.depth >= best[1].depth) continue
      if (!this.#online(id)) continue
      best = entry
    }
    if (best === undefined) {
      plan.direct++
      plan.fetchers.set(peer, { parent: undefined, children: 0, depth: 0 })
      return { from: 'seed', reason: 'no-parent' }
    }
    const [parent, p] = best
    p.children++
    plan.fetchers.set(peer, { parent, children: 0, depth: p.depth + 1 })
    return { from: 'peer', parent, depth: p.depth + 1 }
  }

  #leave(plan: BlobPlan, fetcher: Fetcher): void {
    if (fetcher.parent === undefined) return
    const parent = plan.fetchers.get(fetcher.parent)
    if (parent !== undefined && parent.children > 0) parent.children--
  }

  #expire(now: number): void {
    for (const [digest, plan] of this.#blobs) {
      if (now - plan.touched < this.#ttlMs) break
      this.#blobs.delete(digest)
    }
  }
}

function count(value: number, name: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`fan-out ${name} must be an integer of at least ${min}`)
  return value
}
