/** What one (system, N) run measured, as written to the JSON results. */
import type { NodePull } from './clients.js'
import type { CpuLoad } from './cpu-load.js'
import type { SystemName } from './estimate.js'

export interface Percentiles {
  /** Seconds from the barrier to a node's last byte; null when that rank is a failed pull. */
  p50: number | null
  p95: number | null
  max: number | null
}

export interface PollenFigures {
  agentPeakRssBytes: { max: number; median: number }
  /** Agent CPU seconds over the pull (from the barrier to the last node's end). */
  agentCpuSeconds: { total: number; mean: number; max: number }
  /** CPU the whole idle fleet of agents used per second (in cores) over 3 s before the pull. */
  agentIdleCores: number
  seedCpuSeconds: number
  routingTables: { min: number; median: number }
  blobBytesBySource: Record<string, number>
  remoteBytes: number
  peerUploadBytes: number
}

export interface RunResult {
  system: SystemName
  nodes: number
  imageBytes: number
  /** Image size ÷ edge link rate. */
  idealSeconds: number
  /** From the barrier to the last node's end. */
  wallSeconds: number
  failures: number
  completion: Percentiles
  /** tx_bytes of the upstream's veth (namespace side) over the pull. */
  upstreamTxBytes: number
  /** tx_bytes of the seed's (or cache's) veth over the pull; in `direct` the seed namespace is idle. */
  seedTxBytes: number
  /** Retransmitted share of the TCP segments the upstream's and the seed's namespaces sent over the pull (drops at a full tbf queue). */
  upstreamRetransShare: number
  seedRetransShare: number
  /** Machine-wide CPU over the pull. */
  cpu: CpuLoad
  /** CPU seconds over the pull of the bench's own processes, by role (upstream, cache, seed, agents, clients). */
  processCpuSeconds: Record<string, number>
  pollen?: PollenFigures
  pulls: NodePull[]
}

/** Nearest-rank percentile (the ceil(p·n)-th smallest) of completion times, failures ranking last. */
export function percentiles(pulls: NodePull[]): Percentiles {
  const times = pulls.map((p) => (p.ok ? p.seconds : Infinity)).sort((a, b) => a - b)
  const at = (p: number): number | null => {
    const v = times[Math.max(0, Math.ceil(p * times.length) - 1)]
    return v === undefined || !Number.isFinite(v) ? null : v
  }
  return { p50: at(0.5), p95: at(0.95), max: at(1) }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? 0 : sorted[Math.floor((sorted.length - 1) / 2)]!
}
