/** The markdown table, the targets (pass/miss) and where the CPU went, printed after the runs. */
import { formatRate } from './rates.js'
import type { RunResult } from './run-result.js'

const MiB = 2 ** 20
/** Header allowance for "the upstream serves exactly once". */
export const UPSTREAM_ONCE_MAX = 1.02
export const SEED_MAX = 2
export const POLLEN_P95_MAX = 1.5
export const TARGET_NODES = 32
/** "~N×" for the baselines: at least this share of N. */
const BASELINE_MIN_SHARE = 0.9
/** Mean machine CPU at or above this marks a run as CPU-bound. */
const CPU_BOUND = 0.9
/** CPU used by neither the bench's processes nor the kernel's packet work, above which a run is called disturbed. */
const OTHER_LOAD = 0.25

const x = (v: number): string => `${v.toFixed(2)}×`
/** The retransmitted share of segments, when it is worth a mention. */
const rtx = (share: number): string => (share >= 0.005 ? ` (rtx ${(100 * share).toFixed(0)}%)` : '')
const secs = (v: number | null, ideal: number): string => (v === null ? 'failed' : `${v.toFixed(1)} (${x(v / ideal)})`)

/** One row per (system, N). */
export function resultsTable(results: RunResult[]): string {
  const head = [
    '| system | N | failed | p50 s (× ideal) | p95 s (× ideal) | max s (× ideal) | upstream out (× image) | seed/cache out (× image) | machine CPU mean (saturated s) | agent peak RSS MiB max / median | agent CPU s total (per agent) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  const rows = results.map((r) => {
    const c = r.completion
    const p = r.pollen
    return `| ${r.system} | ${r.nodes} | ${r.failures} | ${secs(c.p50, r.idealSeconds)} | ${secs(c.p95, r.idealSeconds)} | ${secs(c.max, r.idealSeconds)} | ${x(r.upstreamTxBytes / r.imageBytes)}${rtx(r.upstreamRetransShare)} | ${r.system === 'direct' ? '—' : `${x(r.seedTxBytes / r.imageBytes)}${rtx(r.seedRetransShare)}`} | ${(100 * r.cpu.mean).toFixed(0)}% (${(100 * r.cpu.saturatedShare).toFixed(0)}%) | ${p ? `${(p.agentPeakRssBytes.max / MiB).toFixed(0)} / ${(p.agentPeakRssBytes.median / MiB).toFixed(0)}` : '—'} | ${p ? `${p.agentCpuSeconds.total.toFixed(1)} (${p.agentCpuSeconds.mean.toFixed(2)})` : '—'} |`
  })
  return [...head, ...rows].join('\n')
}

export interface TargetCheck {
  target: string
  measured: string
  pass: boolean
}

/** The issue's targets, each with the figure it was judged on. */
export function checkTargets(results: RunResult[]): TargetCheck[] {
  const checks: TargetCheck[] = []
  const pollen = results.filter((r) => r.system === 'pollen')
  const largest = pollen.reduce<RunResult | undefined>((best, r) => (best === undefined || r.nodes > best.nodes ? r : best), undefined)
  if (largest !== undefined) {
    const at = pollen.find((r) => r.nodes === TARGET_NODES) ?? largest
    const p95 = at.completion.p95
    const where = at.nodes === TARGET_NODES ? `N = ${TARGET_NODES}` : `N = ${at.nodes} (N = ${TARGET_NODES} not run)`
    checks.push({
      target: `Pollen p95 ≤ ${POLLEN_P95_MAX}× ideal at ${where}`,
      measured: p95 === null ? `${at.failures} pulls failed` : x(p95 / at.idealSeconds) + (at.failures === 0 ? '' : ` (${at.failures} pulls failed)`),
      pass: p95 !== null && at.failures === 0 && p95 / at.idealSeconds <= POLLEN_P95_MAX,
    })
  }
  for (const r of pollen) {
    const up = r.upstreamTxBytes / r.imageBytes
    const seed = r.seedTxBytes / r.imageBytes
    const note = r.failures === 0 ? '' : ` (${r.failures} pulls failed)`
    checks.push({ target: `Pollen N = ${r.nodes}: upstream serves 1× (≤ ${UPSTREAM_ONCE_MAX}×)`, measured: x(up) + note, pass: r.failures === 0 && up <= UPSTREAM_ONCE_MAX })
    checks.push({ target: `Pollen N = ${r.nodes}: seed serves ≤ ${SEED_MAX}×`, measured: x(seed) + note, pass: r.failures === 0 && seed <= SEED_MAX })
  }
  for (const r of results.filter((r) => r.system !== 'pollen')) {
    const served = (r.system === 'direct' ? r.upstreamTxBytes : r.seedTxBytes) / r.imageBytes
    const who = r.system === 'direct' ? 'upstream' : 'cache'
    checks.push({ target: `baseline ${r.system} N = ${r.nodes}: ${who} serves ~N× (≥ ${BASELINE_MIN_SHARE * r.nodes}×)`, measured: x(served), pass: served >= BASELINE_MIN_SHARE * r.nodes })
  }
  return checks
}

export function targetsTable(checks: TargetCheck[]): string {
  return ['| target | measured | |', '|---|---|---|', ...checks.map((c) => `| ${c.target} | ${c.measured} | ${c.pass ? 'pass' : 'MISS'} |`)].join('\n')
}

/**
 * One line per run on where the machine's CPU went (the bench's processes, the kernel moving
 * packets, anything else), and for Pollen whether the CPU rather than the links set the
 * times: the link rate its processes could carry at the CPU cost per byte they showed.
 */
export function cpuVerdict(results: RunResult[], edgeRateBps: number): string[] {
  return results.map((r) => {
    const ours = Object.values(r.processCpuSeconds).reduce((a, b) => a + b, 0)
    const oursShare = ours / (r.cpu.seconds * r.cpu.cores)
    const other = Math.max(0, r.cpu.mean - oursShare - r.cpu.irq)
    const pct = (v: number): string => `${(100 * v).toFixed(0)}%`
    const parts = Object.entries(r.processCpuSeconds).map(([role, s]) => `${role} ${s.toFixed(1)}`)
    let line = `${r.system} N = ${r.nodes}: machine CPU ${pct(r.cpu.mean)} of ${r.cpu.cores} cores (≥ 95% busy in ${pct(r.cpu.saturatedShare)} of the seconds): the bench's processes ${pct(oursShare)} (CPU s: ${parts.join(', ')}), kernel interrupts and softirqs ${pct(r.cpu.irq)}, everything else ${pct(other)}.`
    if (other >= OTHER_LOAD) line += ` OTHER LOAD: something besides the bench used ${pct(other)} of the machine; these times are pessimistic, rerun on a quiet machine.`
    if (r.system !== 'pollen') return line
    const delivered = r.nodes * r.imageBytes
    const perNodeBps = ((r.cpu.cores / (ours / delivered)) * 8) / r.nodes
    line += ` Idle, the ${r.nodes} agents used ${r.pollen!.agentIdleCores.toFixed(2)} cores between them before the pull. Pollen's processes spent ${(ours / (delivered / 2 ** 30)).toFixed(1)} CPU s per GiB delivered; at that cost ${r.cpu.cores} cores carry about ${formatRate(perNodeBps)} per node at N = ${r.nodes}.`
    if (r.cpu.mean >= CPU_BOUND || r.cpu.saturatedShare >= 0.5) {
      const suggest = Math.max(1, Math.floor((0.7 * perNodeBps) / 1e6))
      return `${line} CPU-BOUND: these times measure this machine's CPU, not the ${formatRate(edgeRateBps)} links; rerun with --edge-rate ${suggest}mbit (or on more cores) to measure the links.`
    }
    return `${line} Not CPU-bound: the links set the pace.`
  })
}

/** One line per Pollen run: where the bytes the agents served came from. */
export function pollenSources(results: RunResult[]): string[] {
  return results.flatMap((r) => {
    if (r.pollen === undefined) return []
    const bySource = r.pollen.blobBytesBySource
    const total = Object.values(bySource).reduce((a, b) => a + b, 0)
    const shares = Object.entries(bySource)
      .sort(([, a], [, b]) => b - a)
      .map(([source, bytes]) => `${source} ${((100 * bytes) / Math.max(total, 1)).toFixed(0)}%`)
    return [`Pollen N = ${r.nodes}: the agents' blob bytes came from ${shares.join(', ')}; the agents uploaded ${x(r.pollen.peerUploadBytes / r.imageBytes)} the image to each other; DHT routing tables at the start held ${r.pollen.routingTables.min}–${r.pollen.routingTables.median} peers (min–median).`]
  })
}
