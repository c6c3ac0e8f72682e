/**
 * Writes the suite's results: a markdown table on stdout and bench/results/throughput.json.
 *
 * JSON shape (read by bench/run-all.ts; keep it flat and additive):
 *   {
 *     "suite": "throughput",
 *     "generatedAt": "2026-…Z",             // ISO time of the run
 *     "sizeMiB": 1024, "runs": 3,            // blob size; downloads per median
 *     "machine": { "cpus": 2, "node": "v20.…" },
 *     "rows": [{
 *       "name": "agent cache hit",
 *       "kind": "limit" | "baseline" | "pollen",
 *       "mbps": 812.3,                       // 10^6 bytes/s (aggregate over clients)
 *       "cpuSeconds": 1.31,                  // CPU of the process named in "measured"
 *       "peakRssMiB": 98 | null,             // that process's VmHWM during the row; null when not taken
 *       "measured": "agent (server)",        // whose CPU/RSS the row reports
 *       "runs": 3,                           // the figure is the median of this many
 *       "limit": "raw TCP" | null,           // the row this one is bounded by
 *       "ratioToLimit": 0.41 | null,         // mbps / limit's mbps
 *       "ratioToBaseline": 0.95 | null,      // mbps / docker-registry's mbps
 *       "target": "≥ 1.0× docker-registry" | null,
 *       "pass": true | false | null,         // null: the row has no target
 *       "note": "…" | null                   // for a miss: the bottleneck, from the profile
 *     }],
 *     "notes": ["…"]
 *   }
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { dirname } from 'node:path'
import type { Sample } from './measure.js'

export interface Target {
  text: string
  metric: 'ratioToBaseline' | 'ratioToLimit' | 'peakRssMiB'
  op: '>=' | '<='
  value: number
}

export interface RowSpec {
  name: string
  kind: 'limit' | 'baseline' | 'pollen'
  sample: Sample
  measured: string
  limit?: string
  target?: Target
  /** Printed (and written) when the target is missed. */
  missNote?: string
}

export interface ResultRow {
  name: string
  kind: RowSpec['kind']
  mbps: number
  cpuSeconds: number
  peakRssMiB: number | null
  measured: string
  runs: number
  limit: string | null
  ratioToLimit: number | null
  ratioToBaseline: number | null
  target: string | null
  pass: boolean | null
  note: string | null
}

const round = (n: number, digits: number): number => Number(n.toFixed(digits))

/** Resolves limits, ratios and targets. The baseline is the row of kind 'baseline'. */
export function resolveRows(specs: RowSpec[]): ResultRow[] {
  const byName = new Map(specs.map((s) => [s.name, s]))
  const baseline = specs.find((s) => s.kind === 'baseline')
  return specs.map((s) => {
    const limit = s.limit === undefined ? undefined : byName.get(s.limit)
    const ratioToLimit = limit === undefined ? null : s.sample.mbps / limit.sample.mbps
    const ratioToBaseline = baseline === undefined || s.kind === 'limit' ? null : s.sample.mbps / baseline.sample.mbps
    const row: ResultRow = {
      name: s.name,
      kind: s.kind,
      mbps: round(s.sample.mbps, 1),
      cpuSeconds: round(s.sample.cpu, 2),
      peakRssMiB: s.sample.rssMiB === undefined ? null : round(s.sample.rssMiB, 0),
      measured: s.measured,
      runs: s.sample.runs ?? 1,
      limit: limit === undefined ? null : limit.name,
      ratioToLimit: ratioToLimit === null ? null : round(ratioToLimit, 3),
      ratioToBaseline: ratioToBaseline === null ? null : round(ratioToBaseline, 3),
      target: s.target?.text ?? null,
      pass: null,
      note: null,
    }
    if (s.target !== undefined) {
      const value = s.target.metric === 'peakRssMiB' ? row.peakRssMiB : s.target.metric === 'ratioToLimit' ? ratioToLimit : ratioToBaseline
      row.pass = value !== null && (s.target.op === '>=' ? value >= s.target.value : value <= s.target.value)
      if (!row.pass) row.note = s.missNote ?? null
    }
    return row
  })
}

const fmt = (n: number | null, digits: number, suffix = ''): string => (n === null ? '–' : `${n.toFixed(digits)}${suffix}`)

export function markdownTable(rows: ResultRow[]): string {
  const lines = [
    '| path | MB/s | CPU s (whose) | peak RSS MiB | vs its limit | vs docker-registry | target | result |',
    '|---|---|---|---|---|---|---|---|',
  ]
  for (const r of rows) {
    const vsLimit = r.limit === null ? '–' : `${fmt(r.ratioToLimit, 2, '×')} of ${r.limit}`
    const result = r.pass === null ? '' : r.pass ? 'pass' : '**miss**'
    lines.push(`| ${r.name}${r.runs > 1 ? ` (median of ${r.runs})` : ''} | ${r.mbps.toFixed(0)} | ${r.cpuSeconds.toFixed(2)} (${r.measured}) | ${fmt(r.peakRssMiB, 0)} | ${vsLimit} | ${fmt(r.ratioToBaseline, 2, '×')} | ${r.target ?? ''} | ${result} |`)
  }
  const misses = rows.filter((r) => r.pass === false && r.note !== null)
  if (misses.length > 0) lines.push('', ...misses.map((r) => `- **${r.name}** missed ${r.target}: ${r.note}`))
  return `${lines.join('\n')}\n`
}

export async function writeJson(path: string, meta: { sizeMiB: number; runs: number }, rows: ResultRow[], notes: string[]): Promise<void> {
  const doc = {
    suite: 'throughput',
    generatedAt: new Date().toISOString(),
    sizeMiB: meta.sizeMiB,
    runs: meta.runs,
    machine: { cpus: cpus().length, node: process.version },
    rows,
    notes,
  }
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, `${JSON.stringify(doc, null, 2)}\n`)
}
