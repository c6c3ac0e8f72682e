/**
 * Renders bench/RESULTS.md and its SVG charts from the benches' JSON. Pure: no I/O, so it can
 * be tested from fixtures (test/bench-report/). Every figure stands beside its baseline and its
 * limit, every target says pass or MISS, and a miss carries the bottleneck its bench named.
 */
import type { DhtJson, FleetJson, FleetRun, Machine, PartRun, ReportInput, SuiteRun, ThroughputJson, ThroughputRow } from './inputs.js'
import { groupedBarChart } from './svg.js'
import { DATACENTER_NICE } from '../fleet/network.js'
import { POLLEN_P95_MAX as FLEET_P95_MAX, SEED_MAX as FLEET_SEED_MAX, UPSTREAM_ONCE_MAX as FLEET_UPSTREAM_MAX } from '../fleet/report.js'

/** Where a CPU-bound fleet run's CPU goes: the profiles live beside the results, with their own figures and dates. */
const FLEET_CPU_PROFILE_NOTE =
  'Profiles: bench/results/profiles/SUMMARY.md. Every byte an agent receives takes the path profiled there as the verified peer fetch (Noise encryption and socket writes on the sender; decryption, the temp-file write, serving the client and hashing on the receiver), and N agents on 2 cores share that budget; the file also profiles one fleet agent during its first 30 s at N = 32.'

export interface Chart {
  /** File name under bench/results/. */
  file: string
  svg: string
}

export interface Rendered {
  markdown: string
  charts: Chart[]
}

interface TargetLine {
  part: string
  target: string
  measured: string
  limit: string
  pass: boolean
}

const verdict = (pass: boolean | null): string => (pass === null ? '' : pass ? 'pass' : '**MISS**')
const f1 = (v: number | null | undefined, d = 1): string => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d))
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ')
const minutes = (s: number): string => (s >= 90 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`)

export function renderReport(input: ReportInput): Rendered {
  const charts: Chart[] = []
  const targets: TargetLine[] = []
  const sections: string[] = []

  sections.push(throughputSection(input.suite, input.throughput, part(input.suite, 'throughput'), targets, charts))
  sections.push(fleetSection(input.suite, input.fleet, part(input.suite, 'fleet'), targets, charts))
  sections.push(dhtSection(input.suite, input.dht, part(input.suite, 'dht'), targets))

  const misses = targets.filter((t) => !t.pass)
  const head = [
    '# Pollen benchmark results',
    '',
    `Run ${input.suite.startedAt} → ${input.suite.endedAt}: ${minutes(input.suite.elapsedSeconds)} elapsed (estimated ${minutes(input.suite.estimateSeconds)}). Written by \`npm run bench\` (bench/run-all.ts); the figures come from bench/results/*.json.`,
    '',
    '## Machine',
    '',
    machineTable(input.machine),
    '',
    '## Suite',
    '',
    suiteTable(input.suite),
    '',
    '## Targets',
    '',
    targets.length === 0
      ? 'No targets could be judged: no part produced results.'
      : `${targets.length - misses.length} of ${targets.length} targets pass${misses.length === 0 ? '.' : `; missed: ${misses.map((m) => `${m.part}: ${m.target} (${m.measured})`).join('; ')}.`}`,
    '',
    '| part | target | measured | limit | |',
    '|---|---|---|---|---|',
    ...targets.map((t) => `| ${t.part} | ${cell(t.target)} | ${cell(t.measured)} | ${cell(t.limit)} | ${verdict(t.pass)} |`),
  ]
  return { markdown: `${[head.join('\n'), ...sections].join('\n\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`, charts }
}

function part(suite: SuiteRun, name: PartRun['name']): PartRun | undefined {
  return suite.parts.find((p) => p.name === name)
}

function machineTable(m: Machine): string {
  return [
    '| | |',
    '|---|---|',
    `| CPU | ${cell(m.cpu)} |`,
    `| cores | ${m.cores} |`,
    `| RAM | ${m.ramGiB.toFixed(1)} GiB |`,
    `| kernel | ${cell(m.kernel)} |`,
    `| Node | ${m.node} |`,
    `| docker-registry | ${cell(m.dockerRegistry)} |`,
  ].join('\n')
}

/** "exit 1" or "signal SIGTERM". */
const howEnded = (p: PartRun): string => (p.exitCode === null ? `signal ${p.signal ?? '?'}` : `exit ${p.exitCode}`)

function partStatus(p: PartRun): string {
  if (p.skipped === true) return 'skipped'
  if (p.exitCode === 0) return 'ok'
  return `**FAILED** (${howEnded(p)})`
}

function suiteTable(s: SuiteRun): string {
  return ['| part | command | result | duration |', '|---|---|---|---|', ...s.parts.map((p) => `| ${p.name} | \`${cell(p.command)}\` | ${partStatus(p)} | ${p.skipped === true ? '—' : minutes(p.seconds)} |`)].join('\n')
}

/** A line under a part's heading when its figures are missing, or older than this run. */
function provenance(suite: SuiteRun, run: PartRun | undefined, writtenAt: string | undefined): string {
  const failed = run !== undefined && run.skipped !== true && run.exitCode !== 0
  if (writtenAt === undefined) return failed ? `**No results: the part failed in this run (${howEnded(run)}); its output above the report says why.**` : '**No results: this part has not been run.**'
  const stale = writtenAt < suite.startedAt
  const notes: string[] = []
  if (failed) notes.push(`**This part failed in this run (${howEnded(run)}); the figures below are what it wrote before failing${stale ? ' or from an earlier run' : ''}.**`)
  else if (stale) notes.push(`**These figures are from an earlier run (${writtenAt})${run?.skipped === true ? '; the part was skipped in this one' : ''}.**`)
  notes.push(`Results written ${writtenAt}.`)
  return notes.join(' ')
}

// ---------------------------------------------------------------------------- throughput

function throughputSection(suite: SuiteRun, t: ThroughputJson | undefined, run: PartRun | undefined, targets: TargetLine[], charts: Chart[]): string {
  const out = ['## 1. Throughput', '', provenance(suite, run, t?.generatedAt)]
  if (t === undefined) return out.join('\n')
  const byName = new Map(t.rows.map((r) => [r.name, r]))
  const baseline = t.rows.find((r) => r.kind === 'baseline')
  out.push(
    '',
    `A ${t.sizeMiB} MiB blob over loopback, median of ${t.runs} (MB = 10^6 bytes). Each path beside the limit it is bounded by and the docker-registry baseline, all measured in the same run.`,
    '',
    '| path | kind | MB/s | CPU s (whose) | peak RSS MiB | limit: MB/s (×) | baseline docker-registry: MB/s (×) | target | |',
    '|---|---|---|---|---|---|---|---|---|',
  )
  for (const r of t.rows) {
    const limit = r.limit === null ? undefined : byName.get(r.limit)
    const lim = limit === undefined ? '—' : `${cell(limit.name)}: ${f1(limit.mbps, 0)} (${f1(r.ratioToLimit, 2)}×)`
    const base = baseline === undefined || r.kind === 'limit' ? '—' : `${f1(baseline.mbps, 0)} (${f1(r.ratioToBaseline, 2)}×)`
    out.push(`| ${cell(r.name)} | ${r.kind} | ${f1(r.mbps, 0)} | ${f1(r.cpuSeconds, 2)} (${cell(r.measured)}) | ${f1(r.peakRssMiB, 0)} | ${lim} | ${base} | ${cell(r.target ?? '')} | ${verdict(r.pass)} |`)
    if (r.target !== null && r.pass !== null) targets.push({ part: 'throughput', target: `${r.name}: ${r.target}`, measured: throughputMeasured(r), limit: r.target, pass: r.pass })
  }
  const misses = t.rows.filter((r) => r.pass === false)
  if (misses.length > 0) out.push('', '**Misses:**', '', ...misses.map((r) => `- **${r.name}** missed "${r.target}" with ${throughputMeasured(r)}. Bottleneck: ${r.note ?? 'the bench named none.'}`))
  if ((t.notes ?? []).length > 0) out.push('', ...t.notes!.map((n) => `- ${n}`))
  const charted = t.rows.filter((r) => r.kind !== 'limit' && r.limit !== null && byName.has(r.limit))
  if (charted.length > 0) {
    charts.push({
      file: 'chart-throughput.svg',
      svg: groupedBarChart({
        title: `Throughput, ${t.sizeMiB} MiB blob: each path beside its limit`,
        unit: 'MB/s',
        groups: charted.map((r) => r.name),
        series: [
          { name: 'path', values: charted.map((r) => r.mbps) },
          { name: 'its limit', values: charted.map((r) => byName.get(r.limit!)!.mbps) },
          ...(baseline === undefined ? [] : [{ name: 'docker-registry', values: charted.map(() => baseline.mbps) }]),
        ],
      }),
    })
    out.push('', '![throughput vs limits](results/chart-throughput.svg)')
  }
  return out.join('\n')
}

function throughputMeasured(r: ThroughputRow): string {
  if (r.target?.includes('RSS') === true) return `${f1(r.peakRssMiB, 0)} MiB`
  if (r.target?.includes('docker-registry') === true) return `${f1(r.ratioToBaseline, 2)}× (${f1(r.mbps, 0)} MB/s)`
  if (r.ratioToLimit === null) return `${f1(r.mbps, 0)} MB/s (its limit was not measured in that run)`
  return `${f1(r.ratioToLimit, 2)}× of ${r.limit ?? 'its limit'} (${f1(r.mbps, 0)} MB/s)`
}

// ---------------------------------------------------------------------------- fleet

const SYSTEM_NAMES: Record<FleetRun['system'], string> = { direct: 'direct', proxy: 'pull-through cache', pollen: 'Pollen' }

function ratio(r: FleetRun | undefined): number | null {
  return r === undefined || r.completion.p95 === null ? null : r.completion.p95 / r.idealSeconds
}

function fleetSection(suite: SuiteRun, fl: FleetJson | undefined, run: PartRun | undefined, targets: TargetLine[], charts: Chart[]): string {
  const out = ['## 2. Fleet fan-out', '', provenance(suite, run, fl?.writtenAt)]
  if (fl === undefined) return out.join('\n')
  const mib = (fl.config.imageBytes ?? (fl.config.imageMiB ?? 0) * 2 ** 20) / 2 ** 20
  const rate = (bps: number | undefined): string => (bps === undefined ? '?' : bps >= 1e9 ? `${bps / 1e9} Gbit/s` : `${bps / 1e6} Mbit/s`)
  const ns = [...new Set(fl.results.map((r) => r.nodes))].sort((a, b) => a - b)
  const at = (system: FleetRun['system'], n: number): FleetRun | undefined => fl.results.find((r) => r.system === system && r.nodes === n)
  const x = (v: number | null): string => (v === null ? 'failed' : `${v.toFixed(2)}×`)
  out.push(
    '',
    `One ${mib.toFixed(0)} MiB image to N nodes at once; edge links ${rate(fl.config.edgeRateBps)}, seed uplink ${rate(fl.config.seedRateBps)}, upstream WAN ${rate(fl.config.wanRateBps)}. Times are p95 completion ÷ ideal (image ÷ edge rate); the baselines are direct pulls from the upstream and a docker-registry pull-through cache, measured in the same run. The upstream, the seed and the cache run at nice ${DATACENTER_NICE}: they stand for datacenter machines of their own, which N edge nodes on one machine would otherwise starve.`,
    '',
    `| N | ideal s | direct p95 (baseline) | pull-through p95 (baseline) | Pollen p95 | limit | upstream out, Pollen (limit ≤ ${FLEET_UPSTREAM_MAX}×) | seed out, Pollen (limit ≤ ${FLEET_SEED_MAX}×) | failed pulls | |`,
    '|---|---|---|---|---|---|---|---|---|---|',
  )
  for (const n of ns) {
    const p = at('pollen', n)
    const d = at('direct', n)
    const c = at('proxy', n)
    const ideal = (p ?? d ?? c)!.idealSeconds
    const pr = ratio(p)
    const up = p === undefined ? null : p.upstreamTxBytes / p.imageBytes
    const seed = p === undefined ? null : p.seedTxBytes / p.imageBytes
    const failures = [p, d, c].reduce((a, r) => a + (r?.failures ?? 0), 0)
    const pass = p === undefined ? null : pr !== null && pr <= FLEET_P95_MAX && up! <= FLEET_UPSTREAM_MAX && seed! <= FLEET_SEED_MAX && p.failures === 0
    out.push(
      `| ${n} | ${ideal.toFixed(1)} | ${d === undefined ? '—' : x(ratio(d))} | ${c === undefined ? '—' : x(ratio(c))} | ${p === undefined ? '—' : x(pr)} | ≤ ${FLEET_P95_MAX}× | ${up === null ? '—' : `${up.toFixed(2)}×`} | ${seed === null ? '—' : `${seed.toFixed(2)}×`} | ${failures} | ${verdict(pass)} |`,
    )
  }
  for (const t of fl.targets ?? []) targets.push({ part: 'fleet', target: t.target, measured: t.measured, limit: limitOf(t.target), pass: t.pass })
  if ((fl.targets ?? []).length > 0) out.push('', "The fleet bench's own targets:", '', '| target | measured | |', '|---|---|---|', ...fl.targets!.map((t) => `| ${cell(t.target)} | ${cell(t.measured)} | ${verdict(t.pass)} |`))
  const missed = (fl.targets ?? []).filter((t) => !t.pass)
  const bottlenecks = (fl.cpuVerdicts ?? []).filter((v) => /CPU-BOUND|OTHER LOAD/.test(v))
  if (missed.length > 0 || bottlenecks.length > 0 || (fl.errors ?? []).length > 0) {
    out.push('', '**Misses and bottlenecks:**', '')
    for (const t of missed) out.push(`- **Missed** ${t.target}: measured ${t.measured}.`)
    for (const v of bottlenecks) out.push(`- ${v}`)
    if (bottlenecks.some((v) => v.includes('CPU-BOUND'))) out.push(`- ${FLEET_CPU_PROFILE_NOTE}`)
    for (const e of fl.errors ?? []) out.push(`- **Run failed**: ${e.system}, N = ${e.nodes}: ${e.error.split('\n')[0]}`)
  }
  const other = (fl.cpuVerdicts ?? []).filter((v) => !bottlenecks.includes(v))
  if (other.length > 0) out.push('', '<details><summary>Where the CPU went, per run</summary>', '', ...other.map((v) => `- ${v}`), '', '</details>')
  if (ns.length > 0) {
    charts.push({
      file: 'chart-fleet.svg',
      svg: groupedBarChart({
        title: `Fleet fan-out: p95 completion ÷ ideal, ${mib.toFixed(0)} MiB image`,
        unit: 'p95 ÷ ideal',
        groups: ns.map((n) => `N = ${n}`),
        series: (['direct', 'proxy', 'pollen'] as const).map((s) => ({ name: SYSTEM_NAMES[s], values: ns.map((n) => ratio(at(s, n))) })),
        lines: [{ value: FLEET_P95_MAX, label: `Pollen target ≤ ${FLEET_P95_MAX}×` }],
      }),
    })
    out.push('', '![fleet p95 ÷ ideal](results/chart-fleet.svg)')
  }
  return out.join('\n')
}

/** The limit a fleet target names, e.g. "≤ 1.5×" out of "Pollen p95 ≤ 1.5× ideal at N = 32". */
function limitOf(target: string): string {
  return /[≤≥] ?[\d.]+×?/.exec(target)?.[0] ?? '—'
}

// ---------------------------------------------------------------------------- dht

function dhtSection(suite: SuiteRun, d: DhtJson | undefined, run: PartRun | undefined, targets: TargetLine[]): string {
  const out = ['## 3. DHT discovery', '', provenance(suite, run, d?.writtenAt)]
  if (d === undefined) return out.join('\n')
  const ms = (v: number | null): string => (v === null ? '—' : v >= 100 ? v.toFixed(0) : v.toFixed(1))
  const rt = d.settle.routingTables
  out.push(
    '',
    `${d.config.nodes} real libp2p nodes (createPollenNode, kad-dht ${d.config.protocol}, no admission gating) in ${d.config.processes} process(es) on loopback; ${d.config.bootstrap}. ${d.config.cids} random CIDs (CIDv1 raw, sha256), each provided by a random node and looked up by another. Routing tables ${rt.min}/${rt.median}/${rt.max} peers (min/median/max) after ${d.settle.seconds.toFixed(0)} s; event-loop delay during the measurement p50 ${d.eventLoopDelayMs.p50.toFixed(1)} ms, p99 ${d.eventLoopDelayMs.p99.toFixed(1)} ms.`,
    '',
    '| measure | p50 ms | p99 ms | max ms | messages per query (mean) | hops p50 / p99 |',
    '|---|---|---|---|---|---|',
    `| provide | ${ms(d.provide.ms.p50)} | ${ms(d.provide.ms.p99)} | ${ms(d.provide.ms.max)} | ${d.provide.lookupResponses.mean.toFixed(1)} FIND_NODE + ${f1(d.provide.stored.p50, 0)} ADD_PROVIDER | ${d.provide.hops.p50 ?? '—'} / ${d.provide.hops.p99 ?? '—'} |`,
    `| findProviders, first provider | ${ms(d.findFirst.ms.p50)} | ${ms(d.findFirst.ms.p99)} | ${ms(d.findFirst.ms.max)} | ${d.findFirst.responses.mean.toFixed(1)} answers before it (${d.findFirst.fromOwnStore} of ${d.findFirst.found} from the looker's own store) | ${d.findFirst.hops.p50 ?? '—'} / ${d.findFirst.hops.p99 ?? '—'} |`,
    `| findProviders, complete | ${ms(d.findComplete.ms.p50)} | ${ms(d.findComplete.ms.p99)} | ${ms(d.findComplete.ms.max)} | ${d.findComplete.responses.mean.toFixed(1)} GET_PROVIDERS | ${d.findComplete.hops.p50 ?? '—'} / ${d.findComplete.hops.p99 ?? '—'} |`,
    '',
    '| target | baseline | limit | measured | |',
    '|---|---|---|---|---|',
    ...d.targets.map((t) => `| ${cell(t.target)} | ${cell(t.baseline)} | ${cell(t.limit)} | ${cell(t.measured)} | ${verdict(t.pass)} |`),
  )
  for (const t of d.targets) targets.push({ part: 'dht', target: t.target, measured: t.measured, limit: t.limit, pass: t.pass })
  const missed = d.targets.filter((t) => !t.pass)
  if (missed.length > 0) out.push('', ...missed.map((t) => `- **Missed** ${t.target}: ${t.measured} against ${t.limit}.`))
  if (d.bottlenecks.length > 0) out.push('', ...d.bottlenecks.map((b) => `- ${b}`))
  out.push('', '### Projection to 10,000 nodes', '', ...d.projection.text.split('\n').flatMap((l) => [l, '']))
  return out.join('\n')
}
