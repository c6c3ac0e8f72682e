/**
 * One provide or one provider lookup through a node's kad-dht, timed, with the query's
 * events counted. The DHT key is what agent/p2p/router.ts provides and looks up
 * (digestToCid: CIDv1, raw codec, sha256 multihash); the calls are the ones DhtRouter wraps,
 * made directly so that every query event can be counted.
 */
import { randomBytes } from 'node:crypto'
import type { PollenNode } from '../../content/p2p/node.js'
import { DEFAULT_FIND_TIMEOUT_MS, DEFAULT_PROVIDE_TIMEOUT_MS, digestToCid } from '../../agent/p2p/router.js'

export interface ProvideSample {
  ms: number
  /** FIND_NODE answers of the closest-peers walk. */
  lookupResponses: number
  /** Peers that acknowledged ADD_PROVIDER (where the record now lives). */
  stored: number
  /** Requests that failed or timed out. */
  errors: number
  /** Deepest hop of the closest-peers walk. */
  hops: number
  complete: boolean
}

export interface FindSample {
  /** Milliseconds to the first provider, or null when none was found. */
  firstMs: number | null
  /** Milliseconds until the query ended (exhausted, or the deadline). */
  completeMs: number
  /** GET_PROVIDERS answers received over the whole query. */
  responses: number
  /** Answers received before the first provider was named. */
  responsesToFirst: number | null
  errors: number
  /** Hop of the peer that named the first provider (0: our own provider store). */
  hopsToFirst: number | null
  /** Deepest hop the query reached. */
  hops: number
  complete: boolean
}

/** A random sha256 digest, as a blob's would be. */
export function randomDigest(): string {
  return `sha256:${randomBytes(32).toString('hex')}`
}

/**
 * Hop depth of each peer a query talks to: the peers it starts from are hop 1, a peer first
 * named in hop h's answer is hop h + 1.
 */
class HopTracker {
  private readonly hop = new Map<string, number>()
  max = 0

  onSend(to: string): void {
    if (!this.hop.has(to)) this.hop.set(to, 1)
  }

  onResponse(from: string, closer: Array<{ id: { toString(): string } }>): number {
    const h = this.hop.get(from) ?? 1
    this.max = Math.max(this.max, h)
    for (const p of closer) {
      const id = p.id.toString()
      if (!this.hop.has(id)) this.hop.set(id, h + 1)
    }
    return h
  }
}

interface AnyEvent {
  name: string
  messageName?: string
  to?: { toString(): string }
  from?: { toString(): string }
  closer?: Array<{ id: { toString(): string } }>
  providers?: Array<{ id: { toString(): string } }>
}

export async function timedProvide(node: PollenNode, digest: string): Promise<ProvideSample> {
  const signal = AbortSignal.timeout(DEFAULT_PROVIDE_TIMEOUT_MS)
  const hops = new HopTracker()
  const s: ProvideSample = { ms: 0, lookupResponses: 0, stored: 0, errors: 0, hops: 0, complete: true }
  const started = performance.now()
  try {
    for await (const e of node.libp2p.services.dht.provide(digestToCid(digest), { signal }) as AsyncIterable<AnyEvent>) {
      if (e.name === 'SEND_QUERY' && e.to !== undefined) hops.onSend(e.to.toString())
      else if (e.name === 'QUERY_ERROR') s.errors++
      else if (e.name === 'PEER_RESPONSE' && e.messageName === 'ADD_PROVIDER') s.stored++
      else if (e.name === 'PEER_RESPONSE' && e.from !== undefined) {
        s.lookupResponses++
        hops.onResponse(e.from.toString(), e.closer ?? [])
      }
    }
  } catch (err) {
    if (!signal.aborted) throw err
    s.complete = false
  }
  s.ms = performance.now() - started
  s.hops = hops.max
  return s
}

export async function timedFind(node: PollenNode, digest: string): Promise<FindSample> {
  const signal = AbortSignal.timeout(DEFAULT_FIND_TIMEOUT_MS)
  const self = node.peerId
  const hops = new HopTracker()
  const s: FindSample = { firstMs: null, completeMs: 0, responses: 0, responsesToFirst: null, errors: 0, hopsToFirst: null, hops: 0, complete: true }
  const started = performance.now()
  let lastHop = 0
  try {
    for await (const e of node.libp2p.services.dht.findProviders(digestToCid(digest), { signal }) as AsyncIterable<AnyEvent>) {
      if (e.name === 'SEND_QUERY' && e.to !== undefined) hops.onSend(e.to.toString())
      else if (e.name === 'QUERY_ERROR') s.errors++
      else if (e.name === 'PEER_RESPONSE' && e.from !== undefined) {
        // Our own provider store answers as a PEER_RESPONSE from ourselves: hop 0, not a message.
        if (e.from.toString() === self) lastHop = 0
        else {
          s.responses++
          lastHop = hops.onResponse(e.from.toString(), e.closer ?? [])
        }
      } else if (e.name === 'PROVIDER' && s.firstMs === null && (e.providers ?? []).some((p) => p.id.toString() !== self)) {
        s.firstMs = performance.now() - started
        s.responsesToFirst = s.responses
        s.hopsToFirst = lastHop
      }
    }
  } catch (err) {
    if (!signal.aborted) throw err
    s.complete = false
  }
  s.completeMs = performance.now() - started
  s.hops = hops.max
  return s
}

/** Nearest-rank percentile (the ceil(p·n)-th smallest); null for no values. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!
}
