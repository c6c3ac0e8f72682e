/**
 * Pollen in the bench's namespaces: the seed in the seed's namespace, one enrolled agent per
 * edge node in the node's namespace, mirror on the node's own loopback.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from '../../test/helpers/pollen-process.js'
import { cpuSeconds, peakRss } from '../proc-stats.js'
import { inDatacenterNs, inNs, type Host, type Network } from './network.js'
import { metricSeries, metricSum, nsGet } from './ns-http.js'

export const AGENT_MIRROR = 'http://127.0.0.1:5050'
const AGENT_OPS = 'http://127.0.0.1:9465'
const START_CONCURRENCY = 4
const SETTLE_POLL_MS = 1000
const SETTLE_MAX_MS = 30_000

export interface PollenFleet {
  seed: SeedProcess
  agents: Array<{ node: Host; process: AgentProcess }>
  /** Each agent's DHT routing-table size when the fleet was declared settled. */
  routingTables: number[]
  stop(): Promise<void>
}

/** Agent figures scraped after a run. */
export interface AgentFigures {
  peakRssBytes: number[]
  /** Blob bytes the agents sent to their clients, by where they came from (peer, seed, local). */
  blobBytesBySource: Record<string, number>
  /** Bytes the agents received from the seed, and sent to other agents over libp2p. */
  remoteBytes: number
  peerUploadBytes: number
}

/**
 * Starts a fresh seed (data in `dir`) with `upstream` as its only and default registry, then
 * one agent per node enrolled with a join token, and waits until every agent is ready and
 * the DHT routing tables stopped growing (at most 30 s). On failure stops what it started.
 * With `logDir`, stop() writes every process's output and every agent's last /metrics there.
 */
export async function startPollenFleet(
  net: Network,
  nodes: Host[],
  upstream: string,
  dir: string,
  log: (line: string) => void,
  logDir?: string,
): Promise<PollenFleet> {
  const s = net.seed
  const seed = await startSeedProcess(
    [
      '--data', join(dir, 'seed'),
      '--listen', `${s.addr}:5000`,
      '--p2p-listen', `/ip4/${s.addr}/tcp/5001`,
      '--metrics-listen', `${s.addr}:9464`,
      '--upstream', `${upstream}=http://${upstream}`,
      '--default-ns', upstream,
    ],
    { prefix: inDatacenterNs(s.ns) },
  )
  const agents: PollenFleet['agents'] = []
  const stop = async (): Promise<void> => {
    if (logDir !== undefined) {
      await mkdir(logDir, { recursive: true })
      for (const a of agents) await writeFile(join(logDir, `agent-${a.node.role}.metrics`), (await nsGet(a.node.ns, `${AGENT_OPS}/metrics`)).body)
    }
    await Promise.all(agents.map((a) => a.process.stop().catch(() => {})))
    await seed.stop().catch(() => {})
    if (logDir !== undefined) {
      await writeFile(join(logDir, 'seed.log'), seed.output())
      for (const a of agents) await writeFile(join(logDir, `agent-${a.node.role}.log`), a.process.output())
    }
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const joinTokenFile = await seed.joinTokenFile({ uses: nodes.length })
    const queue = [...nodes]
    await Promise.all(
      Array.from({ length: START_CONCURRENCY }, async () => {
        for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
          const args = [
            '--data', join(dir, node.role),
            '--listen', '127.0.0.1:5050',
            '--metrics-listen', '127.0.0.1:9465',
            '--p2p-listen', `/ip4/${node.addr}/tcp/5051`,
            '--seed', `http://${s.addr}:5000`,
            '--default-ns', upstream,
            '--join-token-file', joinTokenFile,
          ]
          agents.push({ node, process: await startAgentProcess(args, { prefix: inNs(node.ns) }) })
        }
      }),
    )
    agents.sort((a, b) => nodes.indexOf(a.node) - nodes.indexOf(b.node))
    const routingTables = await settle(agents.map((a) => a.node), log)
    return { seed, agents, routingTables, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/** Polls every agent until all are ready and the routing tables kept their sizes for one poll; returns the sizes. */
async function settle(nodes: Host[], log: (line: string) => void): Promise<number[]> {
  const deadline = Date.now() + SETTLE_MAX_MS
  let previous: number[] = []
  for (;;) {
    const polled = await Promise.all(
      nodes.map(async (n) => {
        const ready = (await nsGet(n.ns, `${AGENT_OPS}/readyz`)).status === 200
        const metrics = await nsGet(n.ns, `${AGENT_OPS}/metrics`)
        return { ready, table: metricSum(metrics.body, 'pollen_agent_dht_routing_table_peers') }
      }),
    )
    const tables = polled.map((p) => p.table)
    const settled = polled.every((p) => p.ready && p.table > 0) && tables.every((t, i) => t === previous[i])
    if (settled) return tables
    if (Date.now() > deadline) {
      log(`  fleet not settled after ${SETTLE_MAX_MS / 1000} s (ready ${polled.filter((p) => p.ready).length}/${nodes.length}, routing tables ${tables.join(',')}); going on`)
      return tables
    }
    previous = tables
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS))
  }
}

/** CPU seconds used so far by each agent, in fleet order. */
export function agentCpuSeconds(fleet: PollenFleet): Promise<number[]> {
  return Promise.all(fleet.agents.map((a) => cpuSeconds(a.process.child.pid!)))
}

/** Peak RSS of every agent and its byte counters, summed over the fleet. */
export async function agentFigures(fleet: PollenFleet): Promise<AgentFigures> {
  const figures: AgentFigures = { peakRssBytes: [], blobBytesBySource: {}, remoteBytes: 0, peerUploadBytes: 0 }
  for (const a of fleet.agents) {
    figures.peakRssBytes.push(await peakRss(a.process.child.pid!))
    const text = (await nsGet(a.node.ns, `${AGENT_OPS}/metrics`)).body
    for (const [labels, value] of metricSeries(text, 'pollen_agent_blob_bytes_total')) {
      const source = /source="([^"]*)"/.exec(labels)?.[1] ?? 'unknown'
      figures.blobBytesBySource[source] = (figures.blobBytesBySource[source] ?? 0) + value
    }
    figures.remoteBytes += metricSum(text, 'pollen_agent_remote_bytes_total')
    figures.peerUploadBytes += metricSum(text, 'pollen_agent_peer_upload_bytes_total')
  }
  return figures
}
