/**
 * A Monte-Carlo model of a kad-dht 16 lookup in a fleet of N nodes, to put numbers on the
 * projection's hop and message counts where no machine can run the nodes. What it models:
 *  - routing tables as kad-dht 16 builds them: a trie over absolute key bits split to depth
 *    PREFIX_LENGTH, so each table holds up to K random members of each of the 2^p key prefixes;
 *  - the query as query/manager.ts and query-path.ts run it: the querier's K closest known
 *    peers spread over `disjointPaths` paths sharing one seen-set, each path querying up to
 *    ALPHA peers per round closest first, following only answers closer than the answerer and
 *    able to enter the path's K-closest list;
 *  - provider records on the K closest peers the provider's own walk found.
 * What it leaves out: latency (a round is one hop), failures, churn, and the connection
 * manager. 64-bit keys stand in for 256-bit ones (N ≪ 2^64).
 */

import { createRng } from '../../test/helpers/rng.js'

export interface SimParams {
  nodes: number
  k: number
  alpha: number
  disjointPaths: number
  prefixLength: number
  lookups: number
  seed?: number
}

export interface SimResult {
  nodes: number
  lookups: number
  /** Rounds until the first provider was named (0: the looker holds the record). */
  hopsToFirst: { p50: number; p99: number }
  /** Rounds until the query drained. */
  hopsComplete: { p50: number; p99: number }
  messagesToFirst: { mean: number; p99: number }
  messagesComplete: { mean: number; p99: number }
  provideMessages: { mean: number }
  found: number
}

const pct = (values: number[], p: number): number => {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.max(0, Math.ceil(p * s.length) - 1)] ?? 0
}

export function simulateLookups(p: SimParams): SimResult {
  const rand = createRng(p.seed ?? 7).next
  const hi = new Uint32Array(p.nodes)
  const lo = new Uint32Array(p.nodes)
  for (let i = 0; i < p.nodes; i++) {
    hi[i] = Math.floor(rand() * 2 ** 32)
    lo[i] = Math.floor(rand() * 2 ** 32)
  }
  const shift = 32 - p.prefixLength
  const groups: number[][] = Array.from({ length: 2 ** p.prefixLength }, () => [])
  for (let i = 0; i < p.nodes; i++) groups[hi[i]! >>> shift]!.push(i)

  const tables = new Map<number, Int32Array>()
  /** Node v's routing table: up to K random members of each prefix group, never v. */
  const table = (v: number): Int32Array => {
    let t = tables.get(v)
    if (t !== undefined) return t
    const r = createRng(v * 2654435761 + 1).next
    const out: number[] = []
    for (const g of groups) {
      const members = g.filter((m) => m !== v)
      if (members.length <= p.k) out.push(...members)
      else {
        for (let i = 0; i < p.k; i++) {
          const j = i + Math.floor(r() * (members.length - i))
          ;[members[i], members[j]] = [members[j]!, members[i]!]
          out.push(members[i]!)
        }
      }
    }
    t = Int32Array.from(out)
    tables.set(v, t)
    return t
  }
  /** Negative when a is closer to the key than b. */
  const cmp = (a: number, b: number, kh: number, kl: number): number => {
    const ah = (hi[a]! ^ kh) >>> 0
    const bh = (hi[b]! ^ kh) >>> 0
    if (ah !== bh) return ah - bh
    return ((lo[a]! ^ kl) >>> 0) - ((lo[b]! ^ kl) >>> 0)
  }
  const closest = (v: number, kh: number, kl: number): number[] => Array.from(table(v)).sort((a, b) => cmp(a, b, kh, kl)).slice(0, p.k)

  /** One walk; `holders` ends it early at the first answer from a holder (findProviders' first provider). */
  const walk = (from: number, kh: number, kl: number, holders?: Set<number>) => {
    const seen = new Set<number>([from])
    const start = closest(from, kh, kl)
    const paths = Array.from({ length: Math.min(p.disjointPaths, start.length) }, () => ({ queue: [] as Array<{ v: number; hop: number }>, best: [] as number[] }))
    start.forEach((v, i) => {
      seen.add(v)
      paths[i % paths.length]!.queue.push({ v, hop: 1 })
    })
    const canAdd = (best: number[], v: number): boolean => best.length < p.k || cmp(v, best[best.length - 1]!, kh, kl) < 0
    let messages = 0
    let firstHop: number | null = holders?.has(from) === true ? 0 : null
    let firstMessages: number | null = firstHop === 0 ? 0 : null
    let maxHop = 0
    let all: number[] = []
    for (let round = 1; paths.some((x) => x.queue.length > 0); round++) {
      for (const path of paths) {
        path.queue.sort((a, b) => cmp(a.v, b.v, kh, kl))
        const batch = path.queue.splice(0, p.alpha)
        for (const { v, hop } of batch) {
          if (!canAdd(path.best, v)) continue
          messages++
          maxHop = Math.max(maxHop, hop)
          if (firstHop === null && holders?.has(v) === true) {
            firstHop = hop
            firstMessages = messages
          }
          path.best.push(v)
          path.best.sort((a, b) => cmp(a, b, kh, kl))
          if (path.best.length > p.k) path.best.pop()
          all.push(v)
          for (const c of closest(v, kh, kl)) {
            if (seen.has(c) || cmp(c, v, kh, kl) >= 0 || !canAdd(path.best, c)) continue
            seen.add(c)
            path.queue.push({ v: c, hop: hop + 1 })
          }
        }
      }
    }
    all = [...new Set(all)].sort((a, b) => cmp(a, b, kh, kl)).slice(0, p.k)
    return { messages, maxHop, firstHop, firstMessages, closest: all }
  }

  const toFirst: number[] = []
  const complete: number[] = []
  const msgFirst: number[] = []
  const msgComplete: number[] = []
  const provideMsgs: number[] = []
  let found = 0
  for (let i = 0; i < p.lookups; i++) {
    const kh = Math.floor(rand() * 2 ** 32)
    const kl = Math.floor(rand() * 2 ** 32)
    const provider = Math.floor(rand() * p.nodes)
    let looker = Math.floor(rand() * p.nodes)
    if (looker === provider) looker = (looker + 1) % p.nodes
    const provided = walk(provider, kh, kl)
    provideMsgs.push(provided.messages + provided.closest.length)
    const holders = new Set(provided.closest)
    const r = walk(looker, kh, kl, holders)
    complete.push(r.maxHop)
    msgComplete.push(r.messages)
    if (r.firstHop !== null) {
      found++
      toFirst.push(r.firstHop)
      msgFirst.push(r.firstMessages!)
    }
  }
  const mean = (v: number[]): number => (v.length === 0 ? 0 : v.reduce((a, b) => a + b, 0) / v.length)
  return {
    nodes: p.nodes,
    lookups: p.lookups,
    hopsToFirst: { p50: pct(toFirst, 0.5), p99: pct(toFirst, 0.99) },
    hopsComplete: { p50: pct(complete, 0.5), p99: pct(complete, 0.99) },
    messagesToFirst: { mean: mean(msgFirst), p99: pct(msgFirst, 0.99) },
    messagesComplete: { mean: mean(msgComplete), p99: pct(msgComplete, 0.99) },
    provideMessages: { mean: mean(provideMsgs) },
    found,
  }
}
