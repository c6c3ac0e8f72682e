/** The soak's verdict and its printout: request counts, per-process slopes against the thresholds. No I/O. */
import { formatDuration, formatSize } from '../protocol/human-units.js'
import { MAX_FD_SLOPE_PER_HOUR, MAX_RSS_SLOPE_MIB_PER_HOUR, SHORT_RUN_MS, SLOPE_WINDOW_START } from './constants.js'
import type { ProcSample } from './proc-sampler.js'
import type { SoakResult } from './soak.js'
import { floors, pooledSlope, theilSen, type Point, type SlopeFit } from './slope.js'

const MiB = 2 ** 20
const HOUR_MS = 3_600_000
/** RSS and heap are fitted through the lowest sample of each such stretch (the GC troughs). */
const FLOOR_WIDTH_MS = 60_000

export interface ProcessTrend {
  name: string
  /** Incarnations seen in the slope window (more than one: it was killed and restarted). */
  incarnations: number
  /** Samples in the slope window. */
  samples: number
  /**
   * Of those, the ones taken within one sampling period after a major GC, through whose
   * per-minute lows RSS and heap are fitted; undefined when the process does not report its
   * GCs (then every sample's minute low is used).
   */
  afterMajorGc: number | undefined
  /**
   * MiB per hour through the per-minute floors: Theil–Sen (robust to a minute without a GC
   * trough) for a process that lived through the window, least squares with one intercept
   * per life for a restarted one.
   */
  rss: SlopeFit
  /**
   * Whether the RSS slope is judged: only for a process that lived through the whole window.
   * A restarted one is warming up (buffers, JIT, connection pools), which is growth, not a leak.
   */
  rssJudged: boolean
  /** Open fds per hour. */
  fds: SlopeFit
  /** V8 heap used, MiB per hour through the per-minute floors, fitted as `rss`: for telling a JS leak from allocator growth; not judged. */
  heap: SlopeFit
  /**
   * RSS minus what V8 has committed for its heap, fitted as `rss`: the allocator's and native
   * memory (buffers, libuv, LevelDB, code, stacks); not judged. RSS growing here and not in
   * `heap` points at native memory, not at JS objects.
   */
  outsideHeap: SlopeFit
  heapNowMiB: number | undefined
  /** Average CPU use in the window, percent of one core (over every life); undefined without CPU samples. */
  cpuPercent: number | undefined
  rssNowMiB: number
  rssPeakMiB: number
  fdsNow: number
  fdsPeak: number
  rssOk: boolean
  fdsOk: boolean
}

export interface SoakVerdict {
  pass: boolean
  /** One line per broken rule; empty when the soak passed. */
  reasons: string[]
  trends: ProcessTrend[]
  /** From ms since start: the slope window. */
  windowStartMs: number
  thresholds: { rssMiBPerHour: number; fdsPerHour: number }
}

/**
 * Judges a soak: it passes when no request failed, every byte received verified, every
 * killed agent came back, every process's fd slope (least squares over the samples after
 * SLOPE_WINDOW_START of the run, one intercept per incarnation) and the RSS slope of every
 * process that lived through that window are at most the thresholds. The RSS slope is
 * Theil–Sen through per-minute lows, taken among the samples right after a major GC where the
 * process reports its GCs (V8's troughs), else among all samples. A slope that cannot be
 * computed (too few samples) does not fail the run.
 */
export function judge(result: SoakResult): SoakVerdict {
  const windowStartMs = result.ranMs * SLOPE_WINDOW_START
  const trends = Object.entries(result.samples).map(([name, samples]) => trendOf(name, samples.filter((s) => s.atMs >= windowStartMs)))
  const reasons: string[] = []
  const c = result.counters
  if (c.failures > 0) reasons.push(`${c.failures} of ${c.requests} requests failed`)
  if (c.requests === 0) reasons.push('no request was made')
  if (c.bytesVerified !== c.bytesReceived) reasons.push(`${formatSize(c.bytesReceived - c.bytesVerified)} received did not verify`)
  if (result.restartFailures.length > 0) reasons.push(`${result.restartFailures.length} killed agents did not come back`)
  for (const [name, kills] of Object.entries(result.memory.oomKills)) {
    if (kills > 0) reasons.push(`${name} outgrew its ${formatSize(result.memory.limitBytes[name] ?? 0)} memory limit: ${kills} OOM kill${kills === 1 ? '' : 's'}`)
  }
  for (const t of trends) {
    if (!t.rssOk) reasons.push(`${t.name}: RSS grows ${signed(t.rss.slope)} MiB/h (limit ${MAX_RSS_SLOPE_MIB_PER_HOUR})`)
    if (!t.fdsOk) reasons.push(`${t.name}: open fds grow ${signed(t.fds.slope)}/h (limit ${MAX_FD_SLOPE_PER_HOUR})`)
  }
  return { pass: reasons.length === 0, reasons, trends, windowStartMs, thresholds: { rssMiBPerHour: MAX_RSS_SLOPE_MIB_PER_HOUR, fdsPerHour: MAX_FD_SLOPE_PER_HOUR } }
}

function trendOf(name: string, samples: ProcSample[]): ProcessTrend {
  const byIncarnation = new Map<number, ProcSample[]>()
  for (const s of samples) {
    const list = byIncarnation.get(s.incarnation) ?? []
    list.push(s)
    byIncarnation.set(s.incarnation, list)
  }
  const series = (y: (s: ProcSample) => number | undefined): Point[][] =>
    [...byIncarnation.values()].map((list) => list.flatMap((s) => {
      const value = y(s)
      return value === undefined ? [] : [{ x: s.atMs / HOUR_MS, y: value }]
    }))
  const rssJudged = byIncarnation.size === 1
  // V8's old space is a sawtooth whose period can exceed a minute on a busy process: a minute
  // without a major GC has no trough, only a point on the way up. Where the process reports its
  // major GCs, RSS and heap are read in the samples right after one.
  const troughs = afterMajorGc(byIncarnation)
  const floorsOf = (all: Point[][]): Point[][] => all.map((points) => floors(points, FLOOR_WIDTH_MS / HOUR_MS, troughs === undefined ? 0.5 : 0))
  const fit = (all: Point[][]): SlopeFit => (rssJudged ? theilSen(all[0] ?? []) : pooledSlope(all))
  const atTroughs = (y: (s: ProcSample) => number | undefined) => series((s) => (troughs === undefined || troughs.has(s) ? y(s) : undefined))
  const rss = fit(floorsOf(atTroughs((s) => s.rssBytes / MiB)))
  const fds = pooledSlope(series((s) => s.fds))
  const heap = fit(floorsOf(atTroughs((s) => (s.heapUsedBytes === undefined ? undefined : s.heapUsedBytes / MiB))))
  const outsideHeap = fit(floorsOf(atTroughs((s) => (s.heapTotalBytes === undefined ? undefined : (s.rssBytes - s.heapTotalBytes) / MiB))))
  const last = samples.at(-1)
  let cpuSeconds = 0
  let cpuSpanMs = 0
  for (const list of byIncarnation.values()) {
    const timed = list.filter((s) => s.cpuSeconds !== undefined)
    const [first, end] = [timed[0], timed.at(-1)]
    if (first === undefined || end === undefined || end === first) continue
    cpuSeconds += end.cpuSeconds! - first.cpuSeconds!
    cpuSpanMs += end.atMs - first.atMs
  }
  const lastHeap = samples.findLast((s) => s.heapUsedBytes !== undefined)?.heapUsedBytes
  return {
    name,
    incarnations: byIncarnation.size,
    samples: samples.length,
    afterMajorGc: troughs?.size,
    rss,
    rssJudged,
    fds,
    heap,
    outsideHeap,
    heapNowMiB: lastHeap === undefined ? undefined : lastHeap / MiB,
    cpuPercent: cpuSpanMs === 0 ? undefined : (100 * cpuSeconds) / (cpuSpanMs / 1000),
    rssNowMiB: (last?.rssBytes ?? 0) / MiB,
    rssPeakMiB: Math.max(0, ...samples.map((s) => s.rssBytes)) / MiB,
    fdsNow: last?.fds ?? 0,
    fdsPeak: Math.max(0, ...samples.map((s) => s.fds)),
    rssOk: !rssJudged || !(rss.slope > MAX_RSS_SLOPE_MIB_PER_HOUR),
    fdsOk: !(fds.slope > MAX_FD_SLOPE_PER_HOUR),
  }
}

/** The human summary printed at the end of a soak. */
export function formatReport(result: SoakResult, verdict: SoakVerdict): string {
  const c = result.counters
  const lines: string[] = []
  const o = result.options
  lines.push('')
  lines.push(`Soak: ${o.agents} agents + seed + docker-registry for ${formatDuration(result.ranMs)}${result.interrupted ? ' (interrupted)' : ''}, agent cache ${formatSize(o.cacheSizeBytes)}, seed-rng ${o.rngSeed}`)
  lines.push(`  rollouts            ${result.rollouts} (${result.releases} image versions pushed; every pulling agent evicted in ${result.rolloutsEvictingEverywhere}; ${result.evictions} blobs evicted)`)
  lines.push(`  requests            ${c.requests} (${c.manifestRequests} manifests, ${c.blobRequests} blobs)`)
  lines.push(`  failures            ${c.failures}${c.failures === 0 ? '' : '  <-- must be 0'}`)
  lines.push(`  bytes verified      ${formatSize(c.bytesVerified)} of ${formatSize(c.bytesReceived)} received (sha256 while streaming)`)
  lines.push(`  image pulls         ${result.pullSeconds.count}: median ${formatDuration(result.pullSeconds.p50 * 1000)}, p95 ${formatDuration(result.pullSeconds.p95 * 1000)}, slowest ${formatDuration(result.pullSeconds.max * 1000)}`)
  lines.push(`  agents' blob bytes  ${Object.entries(result.bytesBySource).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${formatSize(n)}`).join(', ') || 'none'}`)
  lines.push(`  memory limits       ${result.memory.how}`)
  lines.push(`  faults              ${result.kills} SIGKILLs of an agent and restarts${result.restartFailures.length > 0 ? `, ${result.restartFailures.length} did not come back` : ''}`)
  for (const f of result.failures.slice(0, 10)) lines.push(`    failed at ${formatDuration(f.atMs)} via ${f.agent}: ${f.url}: ${f.error}`)
  if (result.failures.length > 10) lines.push(`    … ${c.failures - 10} more (all in the JSON, up to 50)`)
  lines.push('')
  lines.push(`Trends over the second half (from ${formatDuration(verdict.windowStartMs)}; fds by least squares, one intercept per restart; RSS and heap through each minute's lowest sample among those taken right after a major GC, Theil–Sen for a process that lived through it), limits ${verdict.thresholds.rssMiBPerHour} MiB/h RSS and ${verdict.thresholds.fdsPerHour} fds/h:`)
  lines.push('  RSS is judged for processes that lived through the whole window (the seed, and agent 1, which is never killed); a restarted agent is warming up.')
  const rows = [['', 'samples (after a major GC)', 'RSS now', 'RSS peak', 'RSS slope', '', 'fds now', 'fd slope', '', 'CPU (avg)', 'V8 heap now', 'heap slope (info)', 'RSS outside V8 heap slope (info)']]
  for (const t of verdict.trends) {
    rows.push([
      t.name + (t.incarnations > 1 ? ` (${t.incarnations} lives)` : ''),
      `${t.samples}${t.afterMajorGc === undefined ? '' : ` (${t.afterMajorGc})`}`,
      `${t.rssNowMiB.toFixed(0)} MiB`,
      `${t.rssPeakMiB.toFixed(0)} MiB`,
      `${signed(t.rss.slope)}${plusMinus(t.rss)} MiB/h`,
      t.rssJudged ? (t.rssOk ? 'ok' : 'LEAK?') : 'not judged',
      String(t.fdsNow),
      `${signed(t.fds.slope)} ±${fixed(t.fds.standardError)} /h`,
      t.fdsOk ? 'ok' : 'LEAK?',
      t.cpuPercent === undefined ? '?' : `${t.cpuPercent.toFixed(0)}%`,
      t.heapNowMiB === undefined ? '?' : `${t.heapNowMiB.toFixed(0)} MiB`,
      `${signed(t.heap.slope)}${plusMinus(t.heap)} MiB/h`,
      `${signed(t.outsideHeap.slope)}${plusMinus(t.outsideHeap)} MiB/h`,
    ])
  }
  lines.push(table(rows))
  if (result.ranMs < SHORT_RUN_MS) lines.push(`  (a ${formatDuration(result.ranMs)} run: its slopes are mostly GC and in-flight noise; trust runs of ${formatDuration(SHORT_RUN_MS)} and more)`)
  const tallies = Object.entries(result.logTallies).flatMap(([name, tally]) => Object.entries(tally).map(([msg, t]) => ({ name, msg, ...t })))
  if (tallies.length > 0) {
    lines.push('')
    lines.push('Warnings and errors the processes logged:')
    for (const t of tallies.sort((a, b) => b.count - a.count).slice(0, 15)) lines.push(`  ${t.name}: ${t.level >= 50 ? 'error' : 'warn'} x${t.count}: ${t.msg}`)
  }
  lines.push('')
  for (const t of verdict.trends) {
    lines.push(`${t.rssOk && t.fdsOk ? 'OK  ' : 'FAIL'} ${t.name}: RSS ${signed(t.rss.slope)} MiB/h (${t.rssJudged ? `limit ${verdict.thresholds.rssMiBPerHour}` : 'restarted, not judged'}), fds ${signed(t.fds.slope)}/h (limit ${verdict.thresholds.fdsPerHour})`)
  }
  lines.push(`${c.failures === 0 && c.requests > 0 ? 'OK  ' : 'FAIL'} requests: ${c.failures} of ${c.requests} failed; ${formatSize(c.bytesVerified)} verified`)
  lines.push(verdict.pass ? 'PASS: no failed request, no process over a slope limit.' : `FAIL: ${verdict.reasons.join('; ')}`)
  return lines.join('\n')
}

/**
 * The samples taken right after a major GC: those whose major-GC count is higher than the
 * sample before in the same life. Undefined when no sample carries the count.
 */
function afterMajorGc(byIncarnation: Map<number, ProcSample[]>): Set<ProcSample> | undefined {
  const out = new Set<ProcSample>()
  let reported = false
  for (const list of byIncarnation.values()) {
    let before: number | undefined
    for (const s of list) {
      if (s.majorGcs === undefined) continue
      reported = true
      if (before !== undefined && s.majorGcs > before) out.add(s)
      before = s.majorGcs
    }
  }
  return reported ? out : undefined
}

function signed(n: number): string {
  if (!Number.isFinite(n)) return 'n/a'
  return `${n >= 0 ? '+' : ''}${n.toFixed(1)}`
}

/** ` ±SE` for a least-squares fit; nothing for Theil–Sen, which has no standard error. */
function plusMinus(fit: SlopeFit): string {
  return Number.isFinite(fit.standardError) ? ` ±${fixed(fit.standardError)}` : ''
}

function fixed(n: number): string {
  return Number.isFinite(n) ? n.toFixed(1) : '?'
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => `  ${r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd()).join('\n')
}
