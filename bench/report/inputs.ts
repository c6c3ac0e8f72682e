/**
 * What the renderer reads: the parts of each bench's JSON it uses (written by
 * bench/throughput/report.ts, bench/fleet/main.ts and bench/dht/main.ts), the suite's own
 * record of the run, and the machine. Fields a bench may leave out are optional.
 */
import type { DhtResults } from '../dht/results.js'
import type { ResultRow } from '../throughput/report.js'

/** One row of bench/results/throughput.json, as the throughput suite writes it. */
export type ThroughputRow = ResultRow

export interface ThroughputJson {
  suite: 'throughput'
  generatedAt: string
  sizeMiB: number
  runs: number
  rows: ThroughputRow[]
  notes?: string[]
}

export interface FleetRun {
  system: 'direct' | 'proxy' | 'pollen'
  nodes: number
  imageBytes: number
  idealSeconds: number
  failures: number
  completion: { p50: number | null; p95: number | null; max: number | null }
  upstreamTxBytes: number
  seedTxBytes: number
}

export interface FleetJson {
  bench: 'fleet-fanout'
  writtenAt: string
  config: { imageBytes?: number; imageMiB?: number; edgeRateBps?: number; seedRateBps?: number; wanRateBps?: number }
  results: FleetRun[]
  errors?: Array<{ system: string; nodes: number; error: string }>
  targets?: Array<{ target: string; measured: string; pass: boolean }>
  cpuVerdicts?: string[]
}

export type DhtJson = DhtResults

export interface PartRun {
  name: 'throughput' | 'fleet' | 'dht'
  command: string
  /** Exit code; null when the part was skipped or killed by a signal. */
  exitCode: number | null
  signal?: string | null
  seconds: number
  skipped?: boolean
}

export interface SuiteRun {
  startedAt: string
  endedAt: string
  estimateSeconds: number
  elapsedSeconds: number
  parts: PartRun[]
}

export interface Machine {
  cpu: string
  cores: number
  ramGiB: number
  kernel: string
  node: string
  dockerRegistry: string
}

export interface ReportInput {
  suite: SuiteRun
  machine: Machine
  throughput?: ThroughputJson
  fleet?: FleetJson
  dht?: DhtJson
}
