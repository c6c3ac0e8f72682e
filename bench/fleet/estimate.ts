/**
 * How long a run should take, from the link rates alone plus rough per-process overheads
 * measured on a 2-core machine. Used for the estimate printed at start and for each run's
 * deadline; it is not a result.
 */
import { availableParallelism } from 'node:os'

export type SystemName = 'direct' | 'proxy' | 'pollen'

export interface EstimatePlan {
  imageBytes: number
  edgeRateBps: number
  seedRateBps: number
  wanRateBps: number
}

/** TCP/IP headers and tbf's accounting leave about this share of a link for payload. */
const GOODPUT = 0.95
/** Releasing the clients and collecting results (they are started once, before the first run): fixed plus per node, seconds. */
const CLIENT_OVERHEAD = [1, 0.05] as const
/** Starting the seed, the agents (4 at a time), letting the DHT settle and sampling idle CPU (3 s), seconds. */
const POLLEN_STARTUP = [9, 0.7] as const
/**
 * CPU seconds per GiB delivered to one node through Pollen, all processes together: libp2p
 * receive + verify + store on the agent, libp2p send on its uploader, HTTP to the client,
 * the client's own hashing. Measured 46 at N = 8 with a 256 MiB image on a 2-core machine
 * (15% of it busy with other work), 50 with more of it busy.
 */
const POLLEN_CPU_S_PER_GIB = 42

/** Seconds one (system, N) run is expected to take, setup included. */
export function estimateRunSeconds(system: SystemName, nodes: number, plan: EstimatePlan): number {
  const secs = (bytes: number, bps: number): number => (bytes * 8) / (bps * GOODPUT)
  const image = plan.imageBytes
  const perNode = secs(image, plan.edgeRateBps)
  const clients = CLIENT_OVERHEAD[0] + CLIENT_OVERHEAD[1] * nodes
  switch (system) {
    case 'direct':
      return clients + Math.max(perNode, secs(nodes * image, plan.wanRateBps))
    case 'proxy':
      // distribution 2.8's proxy fetches a blob from upstream again for every client that
      // asks while it is still filling: about (N + 1)× over the WAN was measured.
      return clients + Math.max(perNode, secs((nodes + 1) * image, plan.wanRateBps), secs(nodes * image, plan.seedRateBps))
    case 'pollen': {
      const cpuBound = (POLLEN_CPU_S_PER_GIB * nodes * image) / 2 ** 30 / availableParallelism()
      return clients + POLLEN_STARTUP[0] + POLLEN_STARTUP[1] * nodes + Math.max(perNode * 1.1, cpuBound, secs(image, plan.wanRateBps))
    }
  }
}

/** Seconds for every system at every N, plus the network, the shaping check, the image and the clients' start. */
export function estimateTotalSeconds(systems: SystemName[], nodeCounts: number[], plan: EstimatePlan): number {
  const setup = 10 + (plan.imageBytes * 8) / plan.wanRateBps + plan.imageBytes / 150e6 + 0.4 * Math.max(...nodeCounts)
  let total = setup
  for (const n of nodeCounts) for (const s of systems) total += estimateRunSeconds(s, n, plan)
  return total
}
