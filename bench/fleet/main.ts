/**
 * The fleet fan-out benchmark: a fresh rollout of one image to N edge nodes over shaped links,
 * through three systems measured in the same run (direct from the upstream, a docker-registry
 * pull-through cache, Pollen), for each N. Each host is its own network namespace on one bridge.
 *
 *   npm run bench:fleet -- --nodes 8,16,32 --image-mib 256 --edge-rate 100mbit
 *
 * Needs root, iproute2 (ip, tc), curl, docker-registry, and a build in dist/. Prints a markdown
 * table, the targets with pass/miss, and whether this machine's CPU rather than the links set
 * the Pollen times; writes the raw results as JSON.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildImage, pushImage } from '../../test/helpers/oci-image.js'
import { startRegistry, type RunningRegistry } from '../../test/helpers/registry.js'
import { FleetClients, type ImageRef } from './clients.js'
import { estimateRunSeconds, estimateTotalSeconds, type EstimatePlan } from './estimate.js'
import { parseFleetFlags, USAGE, type FleetFlags } from './flags.js'
import { createNetwork, destroyNetwork, inDatacenterNs, removeStale, type Network } from './network.js'
import { formatRate } from './rates.js'
import { checkTargets, cpuVerdict, pollenSources, resultsTable, targetsTable } from './report.js'
import type { RunResult } from './run-result.js'
import { checkShaping, type LinkCheck } from './shaping-check.js'
import { runSystem, type BenchContext } from './systems.js'

const MiB = 2 ** 20
const LAYERS = 4
const REPO = 'fleet/app'
const TAG = 'v1'
const REQUIRED = ['ip', 'tc', 'curl', 'docker-registry']
const WORK_PREFIX = 'pollen-fleet-'
const DIST = fileURLToPath(new URL('../../dist/agent/main.js', import.meta.url))

const say = (line = ''): void => void process.stdout.write(`${line}\n`)

/** What the signal handlers and the final cleanup remove; everything sync so a handler can run it. */
const made: { net?: Network; workDir?: string } = {}
function cleanup(): void {
  if (made.net !== undefined) destroyNetwork(made.net)
  if (made.workDir !== undefined) rmSync(made.workDir, { recursive: true, force: true })
  made.net = undefined
  made.workDir = undefined
}
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: removing the bench's namespaces, links and files…\n`)
    cleanup()
    process.exit(code)
  })
}
process.on('uncaughtException', (err) => {
  cleanup()
  process.stderr.write(`${err.stack ?? String(err)}\n`)
  process.exit(1)
})
// The last resort for any other way out (process.exit anywhere): cleanup is synchronous.
process.on('exit', cleanup)
// A reader that went away (`| head`) must not kill the run before its cleanup; the JSON still gets written.
process.stdout.on('error', () => {})

async function main(flags: FleetFlags): Promise<void> {
  preflight()
  const stale = removeStale()
  if (stale.namespaces + stale.links > 0) say(`removed a crashed run's leftovers: ${stale.namespaces} namespaces, ${stale.links} links`)
  const maxNodes = Math.max(...flags.nodes)
  const layerBytes = Array.from({ length: LAYERS }, (_, i) => Math.floor((flags.imageMiB * MiB) / LAYERS) + (i === LAYERS - 1 ? (flags.imageMiB * MiB) % LAYERS : 0))
  const plan: EstimatePlan = { imageBytes: flags.imageMiB * MiB, edgeRateBps: flags.edgeRateBps, seedRateBps: flags.seedRateBps, wanRateBps: flags.wanRateBps }
  printPlan(flags, plan)

  removeStaleWorkDirs()
  made.workDir = mkdtempSync(join(tmpdir(), `${WORK_PREFIX}${process.pid}-`))
  // docker-registry's temp dirs (os.tmpdir() at each start) then live inside the work dir, which cleanup removes.
  process.env.TMPDIR = made.workDir
  made.net = createNetwork({ nodes: maxNodes, edgeRateBps: flags.edgeRateBps, seedRateBps: flags.seedRateBps, wanRateBps: flags.wanRateBps })
  const net = made.net
  say(`network: bridge ${net.bridge}, root ${net.rootAddr}/${net.prefixLength} (unshaped, setup and scraping only), upstream ${net.upstream.addr}, seed ${net.seed.addr}, nodes ${net.nodes[0]!.addr}…${net.nodes.at(-1)!.addr}`)

  const linkChecks = await checkShaping(net)
  say('\nshaping check (one HTTP transfer each; goodput, so TCP/IP headers alone make ~95%):')
  for (const c of linkChecks) say(`  ${c.path}: ${formatRate(c.measuredBps)} measured vs ${formatRate(c.configuredBps)} configured (${(100 * c.ratio).toFixed(0)}%)${c.ratio < 0.85 || c.ratio > 1.05 ? '  <-- OFF' : ''}`)

  let upstream: RunningRegistry | undefined
  const clients = new FleetClients()
  try {
    upstream = await startRegistry({ listenHost: net.upstream.addr, port: 5000, prefix: inDatacenterNs(net.upstream.ns), logLevel: 'warn' })
    say(`\nbuilding a ${flags.imageMiB} MiB image in ${LAYERS} layers and pushing it to the upstream…`)
    const imageDir = join(made.workDir, 'image')
    const built = await buildImage(imageDir, { layers: layerBytes, seed: 'fleet-bench' })
    await pushImage(upstream.url, REPO, TAG, built)
    await rm(imageDir, { recursive: true, force: true })
    const imageBytes = built.config.size + built.layers.reduce((n, l) => n + l.size, 0)
    const image: ImageRef = { repo: REPO, tag: TAG, ns: upstream.host }
    const ctx: BenchContext = { net, upstream, image, imageBytes, plan: { ...plan, imageBytes }, workDir: made.workDir, clients, logDir: flags.logDir, log: say }
    say(`starting a client in each of the ${maxNodes} node namespaces…`)
    await clients.start(net.nodes)
    const ideal = (imageBytes * 8) / flags.edgeRateBps
    say(`image ${(imageBytes / MiB).toFixed(1)} MiB (config + ${LAYERS} layers); ideal per node = image ÷ edge rate = ${ideal.toFixed(1)} s`)

    const results: RunResult[] = []
    const errors: RunError[] = []
    for (const n of flags.nodes) {
      for (const system of flags.systems) {
        say(`\n${system}, N = ${n} (expect ~${estimateRunSeconds(system, n, ctx.plan).toFixed(0)} s)…`)
        const started = Date.now()
        let r: RunResult
        try {
          r = await runSystem(ctx, system, n)
        } catch (err) {
          // One broken run must not cost the rest of a long suite; it is reported at the end.
          say(`  RUN FAILED: ${(err as Error).message.split('\n')[0]}`)
          errors.push({ system, nodes: n, error: (err as Error).message.slice(0, 4000) })
          writeJson(flags, imageBytes, linkChecks, results, errors)
          continue
        }
        results.push(r)
        const c = r.completion
        say(
          `  done in ${((Date.now() - started) / 1000).toFixed(0)} s: p50 ${c.p50?.toFixed(1) ?? 'failed'} s, p95 ${c.p95?.toFixed(1) ?? 'failed'} s, max ${c.max?.toFixed(1) ?? 'failed'} s (ideal ${r.idealSeconds.toFixed(1)} s); upstream ${(r.upstreamTxBytes / imageBytes).toFixed(2)}×, seed/cache ${(r.seedTxBytes / imageBytes).toFixed(2)}×; machine CPU ${(100 * r.cpu.mean).toFixed(0)}%${r.failures > 0 ? `; ${r.failures} FAILED` : ''}`,
        )
        writeJson(flags, imageBytes, linkChecks, results, errors)
      }
    }
    report(flags, imageBytes, results, errors)
    writeJson(flags, imageBytes, linkChecks, results, errors)
    say(`\nraw results: ${flags.jsonPath}`)
  } finally {
    clients.stop()
    await upstream?.stop().catch(() => {})
    cleanup()
  }
}

/** Removes work dirs of bench runs whose process is gone (a SIGKILLed run leaves its image and caches behind). */
function removeStaleWorkDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = new RegExp(`^${WORK_PREFIX}(\\d+)-`).exec(name)?.[1]
    if (pid === undefined || existsSync(`/proc/${pid}`)) continue
    rmSync(join(tmpdir(), name), { recursive: true, force: true })
  }
}

function preflight(): void {
  if (process.getuid?.() !== 0) throw new Error('the fleet bench needs root (network namespaces, veth, tc)')
  for (const bin of REQUIRED) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' })
    } catch {
      throw new Error(`${bin} is not installed`)
    }
  }
  if (!existsSync(DIST)) throw new Error('dist/ is missing: run npm run build first (npm run bench:fleet does)')
}

function printPlan(flags: FleetFlags, plan: EstimatePlan): void {
  const total = estimateTotalSeconds(flags.systems, flags.nodes, plan)
  say(`fleet fan-out bench: ${flags.systems.join(', ')} × N = ${flags.nodes.join(', ')}; image ${flags.imageMiB} MiB`)
  say(`links: edge ${formatRate(flags.edgeRateBps)} each way, seed uplink ${formatRate(flags.seedRateBps)}, upstream WAN ${formatRate(flags.wanRateBps)}`)
  say(`machine: ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown'})`)
  say(`estimated duration: ~${Math.ceil(total / 60)} min (${total.toFixed(0)} s)`)
}

interface RunError {
  system: string
  nodes: number
  error: string
}

function report(flags: FleetFlags, imageBytes: number, results: RunResult[], errors: RunError[]): void {
  say(`\n## Fleet fan-out: ${(imageBytes / MiB).toFixed(0)} MiB image, edge ${formatRate(flags.edgeRateBps)}, seed ${formatRate(flags.seedRateBps)}, WAN ${formatRate(flags.wanRateBps)}\n`)
  say(resultsTable(results))
  say(
    '\nTimes run from the barrier (every node released at once) to the node\'s last verified byte; p95 is nearest-rank. Ideal = image ÷ edge rate; TCP/IP headers alone make about 1.05× the best a link can do. Bytes out are tx_bytes of the upstream\'s and the seed\'s (or cache\'s) veth, headers, control traffic and TCP retransmissions included (veth counts GSO super-packets, so per-segment headers are mostly not counted); rtx is the retransmitted share of that host\'s TCP segments, from drops at full tbf queues. Machine CPU is machine-wide, anything else running included.',
  )
  say(`\n### Targets\n\n${targetsTable(checkTargets(results))}`)
  const verdicts = cpuVerdict(results, flags.edgeRateBps)
  const sources = pollenSources(results)
  if (sources.length > 0) say(`\n### Where Pollen's bytes came from\n\n${sources.map((v) => `- ${v}`).join('\n')}`)
  say(`\n### Where the CPU went\n\n${verdicts.map((v) => `- ${v}`).join('\n')}`)
  if (errors.length > 0) say(`\n### Runs that could not be measured\n\n${errors.map((e) => `- ${e.system}, N = ${e.nodes}: ${e.error.split('\n')[0]}`).join('\n')}`)
}

function writeJson(flags: FleetFlags, imageBytes: number, linkChecks: LinkCheck[], results: RunResult[], errors: RunError[]): void {
  mkdirSync(dirname(flags.jsonPath), { recursive: true })
  const body = {
    bench: 'fleet-fanout',
    writtenAt: new Date().toISOString(),
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model, node: process.version },
    config: { ...flags, imageBytes },
    linkChecks,
    results,
    errors,
    targets: checkTargets(results),
    cpuVerdicts: cpuVerdict(results, flags.edgeRateBps),
  }
  writeFileSync(flags.jsonPath, `${JSON.stringify(body, null, 2)}\n`)
}

let flags: FleetFlags | 'help'
try {
  flags = parseFleetFlags(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}\n`)
  process.exit(2)
}
if (flags === 'help') {
  say(USAGE)
} else {
  main(flags).catch((err: unknown) => {
    cleanup()
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
