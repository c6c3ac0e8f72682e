/**
 * The benchmark suite: the throughput suite, the fleet fan-out bench and the DHT bench, one
 * after the other, each a child process whose output streams through; a part that fails is
 * recorded and the next one still runs. Then bench/RESULTS.md and bench/results/chart-*.svg
 * are rendered from the JSON the parts wrote (bench/report/render.ts).
 *
 *   npm run bench                              build, run all three, render
 *   npm run bench -- --only dht,throughput     some parts (the others' last results are rendered, marked as older)
 *   npm run bench -- --report-only             render from the JSON already in bench/results/
 *   FLEET_ARGS="--nodes 8,16" npm run bench    extra flags for the fleet bench; SIZE_MIB, RUNS reach the throughput suite;
 *                                              DHT_NODES, DHT_CIDS size the DHT bench (default 64, 100)
 *
 * Each part runs from the sources with tsx, as its own npm script does, without rebuilding
 * (`npm run bench` builds once first). The fleet bench needs root.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { estimateDhtSeconds } from './dht/results.js'
import type { PartRun, ReportInput, SuiteRun } from './report/inputs.js'
import { describeMachine } from './report/machine.js'
import { renderReport } from './report/render.js'

const BENCH = fileURLToPath(new URL('.', import.meta.url))
/** The parts run from the repository's root; paths passed to them are relative to it. */
const ROOT = join(BENCH, '..')
const RESULTS = join(BENCH, 'results')
const JSON_PATHS = { throughput: 'bench/results/throughput.json', fleet: 'bench/results/fleet.json', dht: 'bench/results/dht.json' } as const
const DHT_NODES = Number(process.env.DHT_NODES ?? 64)
const DHT_CIDS = Number(process.env.DHT_CIDS ?? 100)
/** Seconds a part may overrun its estimate before it is stopped: twice the estimate plus this. */
const OVERRUN_GRACE_S = 120

type PartName = PartRun['name']
interface Part {
  name: PartName
  script: string
  args: string[]
  estimateSeconds: number
}

const say = (line = ''): void => void process.stdout.write(`${line}\n`)
const minutes = (s: number): string => `${(s / 60).toFixed(1)} min`

/**
 * The throughput suite moves about 20 blob-sized transfers (4 limits, the cold pull, 3 × 3 HTTP
 * rows, 4 concurrent clients, the peer fetch and its checks) at ~250 MB/s on a 2-core machine,
 * plus ~60 s of starting registries, seeds and agents.
 */
function estimateThroughputSeconds(): number {
  const size = Number(process.env.SIZE_MIB ?? 1024) * 2 ** 20
  const runs = Number(process.env.RUNS ?? 3)
  return 60 + ((8 + 3 * runs) * size) / 250e6
}

/** The fleet bench's own estimate for its flags; ~16 min (its defaults on 2 cores) if its modules cannot be loaded. */
async function estimateFleetSeconds(args: string[]): Promise<number> {
  try {
    const { parseFleetFlags } = await import('./fleet/flags.js')
    const { estimateTotalSeconds } = await import('./fleet/estimate.js')
    const f = parseFleetFlags(args)
    if (f === 'help') return 0
    return estimateTotalSeconds(f.systems, f.nodes, { imageBytes: f.imageMiB * 2 ** 20, edgeRateBps: f.edgeRateBps, seedRateBps: f.seedRateBps, wanRateBps: f.wanRateBps })
  } catch {
    return 16 * 60
  }
}

async function plan(): Promise<Part[]> {
  const fleetArgs = [...(process.env.FLEET_ARGS ?? '').split(/\s+/).filter((a) => a !== ''), '--json', JSON_PATHS.fleet]
  return [
    { name: 'throughput', script: 'bench/throughput/main.ts', args: [], estimateSeconds: estimateThroughputSeconds() },
    { name: 'fleet', script: 'bench/fleet/main.ts', args: fleetArgs, estimateSeconds: await estimateFleetSeconds(fleetArgs) },
    { name: 'dht', script: 'bench/dht/main.ts', args: ['--nodes', String(DHT_NODES), '--cids', String(DHT_CIDS), '--json', JSON_PATHS.dht], estimateSeconds: estimateDhtSeconds(DHT_NODES, DHT_CIDS) },
  ]
}

/** Runs one part with its output streamed; resolves with how it ended, never rejects. */
function runPart(p: Part): Promise<PartRun> {
  const command = ['tsx', p.script, ...p.args].join(' ')
  const started = performance.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', p.script, ...p.args], { stdio: 'inherit', cwd: ROOT })
    const deadline = (2 * p.estimateSeconds + OVERRUN_GRACE_S) * 1000
    let kill: NodeJS.Timeout | undefined
    const stop = setTimeout(() => {
      say(`\n${p.name}: still running after ${minutes(deadline / 1000)} (estimate ${minutes(p.estimateSeconds)}): stopping it`)
      child.kill('SIGTERM')
      kill = setTimeout(() => child.kill('SIGKILL'), 30_000)
    }, deadline)
    const forward = (): void => void child.kill('SIGTERM')
    process.once('SIGTERM', forward)
    const done = (exitCode: number | null, signal: string | null): void => {
      clearTimeout(stop)
      clearTimeout(kill)
      process.off('SIGTERM', forward)
      resolve({ name: p.name, command, exitCode, signal, seconds: (performance.now() - started) / 1000 })
    }
    child.on('error', (err) => {
      say(`${p.name}: could not start: ${err.message}`)
      done(127, null)
    })
    child.on('exit', done)
  })
}

function readJson<T>(path: string): T | undefined {
  if (!existsSync(path)) return undefined
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T
  } catch (err) {
    say(`cannot read ${path}: ${(err as Error).message}`)
    return undefined
  }
}

/** Renders RESULTS.md and the charts from the JSON in bench/results/; returns RESULTS.md's path. */
function writeReport(suite: SuiteRun): string {
  const input: ReportInput = {
    suite,
    machine: describeMachine(),
    throughput: readJson(join(ROOT, JSON_PATHS.throughput)),
    fleet: readJson(join(ROOT, JSON_PATHS.fleet)),
    dht: readJson(join(ROOT, JSON_PATHS.dht)),
  }
  const { markdown, charts } = renderReport(input)
  mkdirSync(RESULTS, { recursive: true })
  for (const c of charts) writeFileSync(join(RESULTS, c.file), c.svg)
  writeFileSync(join(RESULTS, 'suite.json'), `${JSON.stringify(suite, null, 2)}\n`)
  const path = join(BENCH, 'RESULTS.md')
  writeFileSync(path, markdown)
  return path
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, 'report-only': { type: 'boolean' } } })
  const parts = await plan()
  const only = values.only?.split(',').map((s) => s.trim())
  const unknown = (only ?? []).filter((n) => !parts.some((p) => p.name === n))
  if (unknown.length > 0) throw new Error(`--only: unknown part ${unknown.join(', ')} (use ${parts.map((p) => p.name).join(', ')})`)
  if (values['report-only'] === true) {
    // Re-rendering keeps the record of the run that produced the JSON (its parts, times and dates).
    const stored = readJson<SuiteRun>(join(RESULTS, 'suite.json'))
    if (stored !== undefined) {
      say(`wrote ${writeReport(stored)} from the JSON of the run of ${stored.startedAt}`)
      return
    }
  }
  const chosen = values['report-only'] === true ? [] : parts.filter((p) => only === undefined || only.includes(p.name))
  const estimate = chosen.reduce((a, p) => a + p.estimateSeconds, 0)
  const startedAt = new Date().toISOString()
  const started = performance.now()
  say(`benchmark suite: ${chosen.map((p) => `${p.name} (~${minutes(p.estimateSeconds)})`).join(', ') || 'report only'}`)
  say(`estimated total: ~${minutes(estimate)} (the limit is 30 min)`)
  const runs: PartRun[] = []
  for (const p of parts) {
    if (!chosen.includes(p)) {
      runs.push({ name: p.name, command: ['tsx', p.script, ...p.args].join(' '), exitCode: null, seconds: 0, skipped: true })
      continue
    }
    say(`\n========== ${p.name}: tsx ${p.script} ${p.args.join(' ')} (~${minutes(p.estimateSeconds)})`)
    const r = await runPart(p)
    runs.push(r)
    say(`========== ${p.name}: ${r.exitCode === 0 ? 'ok' : `FAILED (${r.exitCode === null ? `signal ${r.signal}` : `exit ${r.exitCode}`})`} in ${minutes(r.seconds)}`)
  }
  const elapsed = (performance.now() - started) / 1000
  const suite: SuiteRun = { startedAt, endedAt: new Date().toISOString(), estimateSeconds: estimate, elapsedSeconds: elapsed, parts: runs }
  const path = writeReport(suite)
  const failed = runs.filter((r) => r.skipped !== true && r.exitCode !== 0)
  say(`\nwrote ${path}`)
  say(`elapsed ${minutes(elapsed)} (estimated ${minutes(estimate)})${failed.length > 0 ? `; FAILED: ${failed.map((r) => r.name).join(', ')}` : ''}`)
  process.exitCode = failed.length > 0 ? 1 : 0
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`)
  process.exitCode = 2
})
