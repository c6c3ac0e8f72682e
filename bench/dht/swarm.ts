/**
 * A swarm of real Pollen libp2p nodes on loopback, in this process: node 0 plays the seed
 * (the fleet's DHT bootstrap peer, started first with no bootstrap list), every other node
 * bootstraps from it, as agents do from the seed's /v1/bootstrap. Built by createPollenNode
 * without an admission verifier, so connections are not gated (createPollenNode gates only
 * when given `components.admission`).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { createPollenNode, type PollenNode } from '../../content/p2p/node.js'
import type { Spread } from './results.js'

/** Nodes started at once after the seed: a whole fleet dialling the seed in the same instant is not what a rollout looks like. */
const START_BATCH = 8
/** The routing tables count as settled once no table changed for this long. */
const STABLE_MS = 5_000
const POLL_MS = 500

export interface Swarm {
  nodes: PollenNode[]
  /** Seconds from the first start to the last node's createPollenNode resolving. */
  startSeconds: number
  stop(): Promise<void>
}


export async function startSwarm(count: number): Promise<Swarm> {
  const logger = pino({ level: 'error' })
  const started = performance.now()
  const seed = await createPollenNode({ privateKey: await generateKeyPair('Ed25519') }, { logger })
  const bootstrap = seed.multiaddrs()
  const nodes: PollenNode[] = [seed]
  try {
    while (nodes.length < count) {
      const batch = Math.min(START_BATCH, count - nodes.length)
      const made = await Promise.all(
        Array.from({ length: batch }, async () => createPollenNode({ privateKey: await generateKeyPair('Ed25519'), bootstrap }, { logger })),
      )
      nodes.push(...made)
    }
  } catch (err) {
    await Promise.allSettled(nodes.map((n) => n.stop()))
    throw err
  }
  return {
    nodes,
    startSeconds: (performance.now() - started) / 1000,
    async stop() {
      await Promise.allSettled(nodes.map((n) => n.stop()))
    },
  }
}

export function spread(values: number[]): Spread {
  const s = [...values].sort((a, b) => a - b)
  return { min: s[0] ?? 0, median: s[Math.floor((s.length - 1) / 2)] ?? 0, max: s.at(-1) ?? 0 }
}

/**
 * Waits until no node's routing table changed for STABLE_MS (or `timeoutMs` passed) and
 * resolves with how long that took and the final table sizes.
 */
export async function settle(swarm: Swarm, timeoutMs: number): Promise<{ seconds: number; timedOut: boolean; routingTables: Spread; connections: Spread }> {
  const started = performance.now()
  let last = ''
  let stableSince = performance.now()
  let timedOut = false
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS))
    const now = swarm.nodes.map((n) => n.routingTableSize()).join(',')
    if (now !== last) {
      last = now
      stableSince = performance.now()
    }
    if (performance.now() - stableSince >= STABLE_MS) break
    if (performance.now() - started >= timeoutMs) {
      timedOut = true
      break
    }
  }
  return {
    seconds: (performance.now() - started) / 1000,
    timedOut,
    routingTables: spread(swarm.nodes.map((n) => n.routingTableSize())),
    connections: spread(swarm.nodes.map((n) => n.connectedPeers())),
  }
}
