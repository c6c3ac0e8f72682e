/**
 * The three systems under test, each run fresh for one N:
 *   direct — every node's client pulls from the upstream registry;
 *   proxy  — every node pulls from docker-registry in proxy mode in the seed's namespace, empty at start;
 *   pollen — a fresh seed and one agent per node; every node pulls through its own agent.
 */
import { join } from 'node:path'
import { startRegistry, type RunningRegistry } from '../../test/helpers/registry.js'
import { cpuSeconds } from '../proc-stats.js'
import type { FleetClients, ImageRef } from './clients.js'
import { sampleCpuLoad } from './cpu-load.js'
import { estimateRunSeconds, type EstimatePlan, type SystemName } from './estimate.js'
import { inDatacenterNs, tcpCounters, txBytes, type Host, type Network, type TcpCounters } from './network.js'
import { AGENT_MIRROR, agentCpuSeconds, agentFigures, startPollenFleet } from './pollen-fleet.js'
import { median, percentiles, type PollenFigures, type RunResult } from './run-result.js'

const IDLE_SAMPLE_MS = 3000

export interface BenchContext {
  net: Network
  upstream: RunningRegistry
  image: ImageRef
  imageBytes: number
  plan: EstimatePlan
  workDir: string
  clients: FleetClients
  /** Where to keep the Pollen processes' output, one directory per N; undefined: nowhere. */
  logDir?: string
  log(line: string): void
}

/** Runs one system for the first `n` nodes of the network. */
export async function runSystem(ctx: BenchContext, system: SystemName, n: number): Promise<RunResult> {
  const nodes = ctx.net.nodes.slice(0, n)
  switch (system) {
    case 'direct':
      return measure(ctx, system, nodes, () => ctx.upstream.url, { upstream: ctx.upstream.pid })
    case 'proxy': {
      const cache = await startRegistry({
        proxy: { remoteurl: ctx.upstream.url },
        listenHost: ctx.net.seed.addr,
        port: 5000,
        prefix: inDatacenterNs(ctx.net.seed.ns),
        logLevel: 'warn',
      })
      try {
        return await measure(ctx, system, nodes, () => cache.url, { upstream: ctx.upstream.pid, cache: cache.pid })
      } finally {
        await cache.stop()
      }
    }
    case 'pollen':
      return runPollen(ctx, nodes)
  }
}

async function runPollen(ctx: BenchContext, nodes: Host[]): Promise<RunResult> {
  const logDir = ctx.logDir === undefined ? undefined : join(ctx.logDir, `pollen-${nodes.length}`)
  const fleet = await startPollenFleet(ctx.net, nodes, ctx.image.ns, join(ctx.workDir, `pollen-${nodes.length}`), ctx.log, logDir)
  try {
    // What the fleet costs doing nothing (DHT upkeep, token and key polling), before the pull.
    const idle0 = sum(await agentCpuSeconds(fleet))
    await new Promise((r) => setTimeout(r, IDLE_SAMPLE_MS))
    const idleCores = (sum(await agentCpuSeconds(fleet)) - idle0) / (IDLE_SAMPLE_MS / 1000)
    let agentCpu0: number[] = []
    const result = await measure(
      ctx,
      'pollen',
      nodes,
      () => AGENT_MIRROR,
      { upstream: ctx.upstream.pid, seed: fleet.seed.child.pid! },
      async () => {
        agentCpu0 = await agentCpuSeconds(fleet)
      },
    )
    const agentCpu = (await agentCpuSeconds(fleet)).map((c, i) => c - agentCpu0[i]!)
    const figures = await agentFigures(fleet)
    const pollen: PollenFigures = {
      agentPeakRssBytes: { max: Math.max(...figures.peakRssBytes), median: median(figures.peakRssBytes) },
      agentCpuSeconds: { total: sum(agentCpu), mean: sum(agentCpu) / agentCpu.length, max: Math.max(...agentCpu) },
      agentIdleCores: idleCores,
      seedCpuSeconds: result.processCpuSeconds.seed ?? 0,
      routingTables: { min: Math.min(...fleet.routingTables), median: median(fleet.routingTables) },
      blobBytesBySource: figures.blobBytesBySource,
      remoteBytes: figures.remoteBytes,
      peerUploadBytes: figures.peerUploadBytes,
    }
    return { ...result, processCpuSeconds: { ...result.processCpuSeconds, agents: pollen.agentCpuSeconds.total }, pollen }
  } finally {
    await fleet.stop()
  }
}

/**
 * Pulls the image on every node at once and measures it: completion times, tx bytes of the
 * upstream's and the seed's links, machine CPU, and the CPU of the given server processes.
 */
async function measure(
  ctx: BenchContext,
  system: SystemName,
  nodes: Host[],
  mirrorOf: (node: Host) => string,
  servers: Record<string, number>,
  beforeRelease: () => Promise<void> = async () => {},
): Promise<RunResult> {
  const timeoutMs = Math.max(120_000, 5_000 * estimateRunSeconds(system, nodes.length, ctx.plan))
  let up0 = 0
  let seed0 = 0
  let upTcp0: TcpCounters = { outSegs: 0, retransSegs: 0 }
  let seedTcp0 = upTcp0
  let cpu0: Record<string, number> = {}
  let load: ReturnType<typeof sampleCpuLoad> | undefined
  const pull = await ctx.clients.pull(nodes, mirrorOf, ctx.image, timeoutMs, async () => {
    await beforeRelease()
    cpu0 = await cpuOf(servers)
    up0 = txBytes(ctx.net.upstream)
    seed0 = txBytes(ctx.net.seed)
    upTcp0 = tcpCounters(ctx.net.upstream)
    seedTcp0 = tcpCounters(ctx.net.seed)
    load = sampleCpuLoad()
  })
  const cpu = load!.stop()
  const upstreamTxBytes = txBytes(ctx.net.upstream) - up0
  const seedTxBytes = txBytes(ctx.net.seed) - seed0
  const upstreamRetransShare = retransShare(upTcp0, tcpCounters(ctx.net.upstream))
  const seedRetransShare = retransShare(seedTcp0, tcpCounters(ctx.net.seed))
  const cpu1 = await cpuOf(servers)
  const processCpuSeconds: Record<string, number> = { clients: sum(pull.pulls.map((p) => p.cpuSeconds)) }
  for (const role of Object.keys(servers)) processCpuSeconds[role] = cpu1[role]! - cpu0[role]!
  const failures = pull.pulls.filter((p) => !p.ok)
  for (const f of failures.slice(0, 3)) ctx.log(`  ${f.node} failed: ${f.error}`)
  return {
    system,
    nodes: nodes.length,
    imageBytes: ctx.imageBytes,
    idealSeconds: (ctx.imageBytes * 8) / ctx.plan.edgeRateBps,
    wallSeconds: Math.max(...pull.pulls.map((p) => p.seconds)),
    failures: failures.length,
    completion: percentiles(pull.pulls),
    upstreamTxBytes,
    seedTxBytes,
    upstreamRetransShare,
    seedRetransShare,
    cpu,
    processCpuSeconds,
    pulls: pull.pulls,
  }
}

async function cpuOf(servers: Record<string, number>): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [role, pid] of Object.entries(servers)) out[role] = await cpuSeconds(pid).catch(() => 0)
  return out
}

function retransShare(before: TcpCounters, after: TcpCounters): number {
  const out = after.outSegs - before.outSegs
  return out > 0 ? (after.retransSegs - before.retransSegs) / out : 0
}

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0)
