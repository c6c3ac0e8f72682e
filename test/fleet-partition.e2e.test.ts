/**
 * Reliability: a network partition during a rollout. Eight agents, each in its own network
 * namespace, and the seed and registry in a ninth ("dc"), all on one bridge. The partition moves
 * four agents (group B) to a second bridge: they reach each other, but not the seed nor group A.
 * Then it heals. Each node's client runs inside the node's namespace and talks to its agent on
 * loopback (as containerd does), retrying failed requests with back-off.
 *
 * What the product guarantees, and what this checks:
 * - Group A keeps pulling (the seed and its peers are reachable).
 * - Group B serves what it holds: an image whose manifest its agents resolved before the cut is
 *   pulled during the partition, the blobs from a peer in the group (manifests and tags come only
 *   from the seed or the agent's own cache: README, "Trust").
 * - Group B cannot resolve an image it never saw while cut off: the agent answers an error, the
 *   client retries, and the pull completes after the heal.
 * - After the heal everyone pulls a new image.
 * Every blob's sha256 is checked while it streams; no byte may be corrupted or lost.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { createPartitionNet, inNs, removeStalePartitionNets, type NetHost, type PartitionNet } from './helpers/partition-net.js'
import type { NsAnswer, NsOrder } from './helpers/ns-pull-client.js'
import { recordResult, tally, type PullOptions } from './helpers/reliability.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const MiB = 1024 * 1024
const AGENTS = 8
const MIRROR = 'http://127.0.0.1:5050'
const OPS = 'http://127.0.0.1:9465'
/** The partition is held until group B's pulls of what it holds finished, or this long. */
const HOLD_MAX_MS = 90_000
/** …and at least this long, so that group B's other pulls meet the cut. */
const HOLD_MIN_MS = 15_000
const PULL: PullOptions = { deadlineMs: 180_000, maxBackoffMs: 4000 }
const CLIENT_SCRIPT = fileURLToPath(new URL('./helpers/ns-pull-client.ts', import.meta.url))

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const imageBytes = (image: BuiltImage): number => image.config.size + image.layers.reduce((n, l) => n + l.size, 0)

/** A client process inside one namespace (test/helpers/ns-pull-client.ts). */
class NsClient {
  #next = 0
  readonly #waiting = new Map<number, (a: NsAnswer) => void>()
  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return
      const answer = JSON.parse(line) as NsAnswer
      this.#waiting.get(answer.id)?.(answer)
      this.#waiting.delete(answer.id)
    })
  }

  static async start(ns: string): Promise<NsClient> {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', CLIENT_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] })
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! })
      lines.once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(`client in ${ns}: ${line}`))))
      child.once('exit', (code) => reject(new Error(`client in ${ns} exited with ${code}`)))
      setTimeout(() => reject(new Error(`client in ${ns} not ready`)), 30_000).unref()
    })
    return new NsClient(child)
  }

  #ask<A extends NsAnswer>(order: NsOrder extends infer O ? (O extends NsOrder ? Omit<O, 'id'> : never) : never): Promise<A> {
    const id = ++this.#next
    return new Promise<A>((resolve) => {
      this.#waiting.set(id, resolve as (a: NsAnswer) => void)
      this.child.stdin!.write(`${JSON.stringify({ ...order, id })}\n`)
    })
  }

  pull(repo: string, reference: string, ns: string, options: PullOptions = PULL): Promise<Extract<NsAnswer, { kind: 'pull' }>> {
    return this.#ask({ kind: 'pull', mirror: MIRROR, repo, reference, ns, options })
  }

  get(url: string): Promise<Extract<NsAnswer, { kind: 'get' }>> {
    return this.#ask({ kind: 'get', url })
  }

  /** Sum of a metric's samples whose labels include `labels`, from the agent's /metrics. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const { body } = await this.get(`${OPS}/metrics`)
    let sum = 0
    for (const line of body.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line)
      if (m === null || m[1] !== name) continue
      if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3])
    }
    return sum
  }

  stop(): void {
    this.child.stdin!.end()
    setTimeout(() => this.child.kill('SIGKILL'), 2000).unref()
  }
}

describeWithBinaries(['docker-registry', 'ip'], 'a fleet of 8 agents in their own network namespaces, split in two and healed', () => {
  let net: PartitionNet | undefined
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  const agents: AgentProcess[] = []
  const clients: NsClient[] = []
  let nodes: NetHost[]

  beforeAll(async () => {
    const stale = removeStalePartitionNets()
    if (stale > 0) console.log(`removed ${stale} namespaces and links left by a crashed run`)
    net = createPartitionNet(['dc', ...Array.from({ length: AGENTS }, (_, i) => `n${i}`)])
    const dc = net.hosts[0]!
    nodes = net.hosts.slice(1)
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-partition-'))
    registry = await startRegistry({ listenHost: dc.addr, port: 5002, prefix: inNs(dc.ns), logLevel: 'warn' })
    seed = await startSeedProcess(
      [...seedArgsFor(registry, join(work, 'seed')), '--listen', `${dc.addr}:5000`, '--p2p-listen', `/ip4/${dc.addr}/tcp/5001`, '--metrics-listen', `${dc.addr}:9464`],
      { prefix: inNs(dc.ns) },
    )
    // Twice the uses: an agent start that timed out on a busy machine is retried once.
    const joinTokenFile = await seed.joinTokenFile({ uses: 2 * AGENTS })
    const queue = [...nodes]
    await Promise.all(
      Array.from({ length: 2 }, async () => {
        for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
          const args = ['--data', join(work, node.role), '--listen', '127.0.0.1:5050', '--metrics-listen', '127.0.0.1:9465', '--p2p-listen', `/ip4/${node.addr}/tcp/5051`]
          args.push('--seed', seed.url, '--default-ns', registry.host, '--join-token-file', joinTokenFile)
          agents[nodes.indexOf(node)] = await startAgentProcess(args, { prefix: inNs(node.ns) }).catch((err: Error) => {
            if (!/did not listen/.test(err.message)) throw err
            console.log(`agent ${node.role} did not start within the helper's deadline; starting it again`)
            return startAgentProcess(args, { prefix: inNs(node.ns) })
          })
        }
      }),
    )
    for (const node of nodes) clients.push(await NsClient.start(node.ns))
    // Settled: every agent ready with a routing table that did not change for one poll (at most 30 s).
    let previous: number[] = []
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(1000)) {
      const ready = await Promise.all(clients.map(async (c) => (await c.get(`${OPS}/readyz`)).status === 200))
      const tables = await Promise.all(clients.map((c) => c.metric('pollen_agent_dht_routing_table_peers')))
      if (ready.every(Boolean) && tables.every((t, i) => t > 0 && t === previous[i])) break
      previous = tables
    }
  }, 300_000)

  afterAll(async () => {
    for (const c of clients) c.stop()
    await Promise.all(agents.map((a) => a?.stop().catch(() => {})))
    await seed?.stop().catch(() => {})
    await registry?.stop().catch(() => {})
    net?.destroy()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('every pull started before, during and after the partition completes with correct bytes', async () => {
    const warm = await buildImage(join(work, 'img-warm'), { layers: [2 * MiB, MiB, MiB / 4], seed: 'partition/warm' })
    const cold = await buildImage(join(work, 'img-cold'), { layers: [MiB, MiB / 2, MiB / 4], seed: 'partition/cold' })
    const after = await buildImage(join(work, 'img-after'), { layers: [MiB, MiB / 2, MiB / 4], seed: 'partition/after' })
    await pushImage(registry.url, 'part/warm', 'v1', warm)
    await pushImage(registry.url, 'part/cold', 'v1', cold)
    await pushImage(registry.url, 'part/after', 'v1', after)
    const ns = registry.host
    const groupA = [0, 1, 2, 3]
    const groupB = [4, 5, 6, 7]
    type Pulled = Extract<NsAnswer, { kind: 'pull' }> & { node: number; phase: string }
    const pulls: Array<Promise<Pulled>> = []
    const pull = (node: number, repo: string, phase: string): Promise<Pulled> => {
      const p = clients[node]!.pull(repo, 'v1', ns).then((a) => ({ ...a, node, phase }))
      pulls.push(p)
      return p
    }

    // Before: one agent of each group pulls the warm image; the rest of group B resolve its manifest
    // (their agents cache the tag's answer and the manifest), as a pull whose layers come later would.
    await Promise.all([pull(0, 'part/warm', 'before'), pull(4, 'part/warm', 'before')])
    for (const i of [5, 6, 7]) expect((await clients[i]!.get(`${MIRROR}/v2/part/warm/manifests/v1?ns=${ns}`)).status).toBe(200)
    await sleep(2000) // provider records go out after the commit

    // During: group B is cut off from the seed and from group A.
    const peerBefore = await Promise.all(clients.map((c) => c.metric('pollen_agent_blob_bytes_total', { source: 'peer' })))
    net!.split(groupB.map((i) => nodes[i]!))
    const splitAt = Date.now()
    const duringA = [...groupA.slice(1).map((i) => pull(i, 'part/warm', 'during')), ...groupA.map((i) => pull(i, 'part/cold', 'during'))]
    const heldB = groupB.map((i) => pull(i, 'part/warm', 'during'))
    const coldB = groupB.map((i) => pull(i, 'part/cold', 'during'))
    await Promise.all([Promise.all(duringA), Promise.race([Promise.all(heldB), sleep(HOLD_MAX_MS)]), sleep(HOLD_MIN_MS)])
    const peerDuring = await Promise.all(clients.map((c) => c.metric('pollen_agent_blob_bytes_total', { source: 'peer' })))
    net!.heal()
    const healAt = Date.now()
    await Promise.all([...heldB, ...coldB])

    // After: everyone pulls a new image.
    await Promise.all(clients.map((_, i) => pull(i, 'part/after', 'after')))
    const results = await Promise.all(pulls)
    const bySource = async (source: string): Promise<number[]> => Promise.all(clients.map((c) => c.metric('pollen_agent_blob_bytes_total', { source })))
    const when = (r: Pulled): string => (r.end < healAt ? 'before heal' : 'after heal')
    const lines = results.map((r) => `  n${r.node} ${r.phase.padEnd(6)} ${r.outcome.reference.padEnd(12)} ${r.outcome.ok ? 'ok' : 'FAILED'} ${((r.end - r.start) / 1000).toFixed(1)} s, done ${r.phase === 'during' ? when(r) : ''}, retries ${r.outcome.retries}${Object.keys(r.outcome.failures).length > 0 ? ` (${Object.entries(r.outcome.failures).map(([k, v]) => `${k} ×${v}`).join('; ')})` : ''}`)
    console.log(`partition held ${((healAt - splitAt) / 1000).toFixed(1)} s; pulls:\n${lines.join('\n')}`)
    const result = tally('fleet-partition', results.map((r) => r.outcome), {
      agents: AGENTS,
      partitionHeldS: (healAt - splitAt) / 1000,
      images: { warm: imageBytes(warm), cold: imageBytes(cold), after: imageBytes(after) },
      groupBHeldPullsDoneBeforeHeal: results.filter((r) => r.phase === 'during' && groupB.includes(r.node) && r.outcome.reference === 'part/warm:v1' && r.end < healAt).length,
      groupBColdPullRetries: results.filter((r) => r.phase === 'during' && groupB.includes(r.node) && r.outcome.reference === 'part/cold:v1').map((r) => r.outcome.retries),
      peerBytesDuringPartition: peerDuring.map((n, i) => n - peerBefore[i]!),
      blobBytesBySource: { peer: await bySource('peer'), seed: await bySource('seed'), local: await bySource('local') },
      pulls: lines,
      agentErrors: agents.flatMap((a, i) => a.logs.filter((l) => Number(l.level) >= 50).map((l) => `n${i}: ${String(l.msg)} ${JSON.stringify(l.err ?? '').slice(0, 400)}`)),
    })
    await recordResult(result)

    expect(result.bytesCorrupted).toBe(0)
    expect(result.bytesLost).toBe(0)
    expect(result.pullsCompleted).toBe(result.pullsAttempted)
    expect(result.pullsAttempted).toBe(2 + 7 + 8 + AGENTS)
    // Group B served what it held from inside the group, while cut off.
    for (const r of await Promise.all(heldB)) expect(r.end).toBeLessThan(healAt)
    for (const i of [5, 6, 7]) expect(peerDuring[i]! - peerBefore[i]!).toBeGreaterThanOrEqual(imageBytes(warm))
  }, 420_000)
})
