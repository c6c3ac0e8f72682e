import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

/** One scenario's figures, as printed and as written to the results file. */
export interface ScenarioRow {
  scenario: string
  agents: number
  pullsAttempted: number
  pullsCompleted: number
  /** Pulls cut short because their own agent was killed (each was pulled again after the restart). */
  pullsInterrupted: number
  pullsFailed: number
  /** Manifest or blob fetches a client repeated after a failed one (containerd-like). */
  clientRetries: number
  bytesVerified: number
  bytesCorrupted: number
  bytesLost: number
  /** Upstream blob GETs the registry answered 2xx, summed over the image's blobs, and the most for one blob. */
  upstreamBlobGets: number
  upstreamBlobGetsMaxPerBlob: number
  /** Upstream requests answered with an injected error. */
  upstreamFaults: number
  slowestPullSeconds: number
  seconds: number
  /** Scenario specifics (kills, seed downtime, …). */
  notes: Record<string, unknown>
}

const MiB = 1024 * 1024

/** One line: `fleet-faults | <scenario> | pulls 10/10 (2 interrupted, 0 failed, 0 retries) | verified 140.0 MiB | corrupted 0 B | lost 0 B | …`. */
export function formatRow(row: ScenarioRow): string {
  const mib = (n: number): string => (n === 0 ? '0 B' : `${(n / MiB).toFixed(1)} MiB`)
  const notes = Object.entries(row.notes)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ')
  return [
    `fleet-faults | ${row.scenario.padEnd(12)}`,
    `agents ${row.agents}`,
    `pulls ${row.pullsCompleted}/${row.pullsAttempted} completed (${row.pullsInterrupted} interrupted by kill, ${row.pullsFailed} failed, ${row.clientRetries} client retries)`,
    `verified ${mib(row.bytesVerified)}`,
    `corrupted ${mib(row.bytesCorrupted)}`,
    `lost ${mib(row.bytesLost)}`,
    `upstream blob GETs ${row.upstreamBlobGets} (max ${row.upstreamBlobGetsMaxPerBlob}/blob, ${row.upstreamFaults} faults injected)`,
    `slowest pull ${row.slowestPullSeconds.toFixed(1)} s`,
    `scenario ${row.seconds.toFixed(1)} s`,
    notes,
  ].join(' | ')
}

/**
 * Adds (or replaces) the row under its scenario name in the JSON results file at `path`,
 * keeping the other scenarios' rows of the same run; a file from another run is replaced.
 */
export async function recordRow(path: string, run: Record<string, unknown>, row: ScenarioRow): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  let doc: { run: Record<string, unknown>; scenarios: Record<string, ScenarioRow> } = { run, scenarios: {} }
  try {
    const old = JSON.parse(await readFile(path, 'utf8')) as typeof doc
    if (JSON.stringify(old.run) === JSON.stringify(run)) doc = old
  } catch {
    /* no file yet, or not ours */
  }
  doc.scenarios[row.scenario] = row
  await writeFile(path, `${JSON.stringify(doc, null, 2)}\n`)
}
