/**
 * `npm run demo`: a registry, a seed and three agents on this machine. Pushes a generated
 * image to a local docker-registry, pulls it through agent 1 (from the seed) and then agent 2
 * (from agent 1, over libp2p), prints where each agent's bytes came from, and stops
 * everything, also on Ctrl-C or failure. Needs `npm run build` first (npm run demo does it).
 */
import { accessSync, constants, existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatDuration, formatSize } from '../protocol/human-units.js'
import { buildImage, pushImage, type BuiltImage } from '../test/helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from '../test/helpers/pollen-process.js'
import { seedArgsFor } from '../test/helpers/pollen-stack.js'
import { pullImage } from '../test/helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js'

const MiB = 1024 * 1024
const AGENTS = 3
const REPO = 'demo/app'
const TAG = 'v1'
const SOURCES = ['seed', 'peer', 'local', 'upstream'] as const
/** How long to wait for the agents to see each other through the seed's DHT. */
const PEER_WAIT_MS = 10_000

interface Running {
  work?: string
  registry?: RunningRegistry
  seed?: SeedProcess
  agents: AgentProcess[]
}

const say = (line = ''): void => void process.stdout.write(`${line}\n`)

async function main(): Promise<number> {
  if (!onPath('docker-registry')) {
    process.stderr.write('demo: docker-registry is not installed. Install it with:\n  apt-get install -y docker-registry\n')
    return 1
  }
  if (!existsSync(fileURLToPath(new URL('../dist/agent/main.js', import.meta.url)))) {
    process.stderr.write('demo: dist/ is missing; run "npm run demo" (it builds first) or "npm run build"\n')
    return 1
  }
  const run: Running = { agents: [] }
  let stopping: Promise<void> | undefined
  let interrupted = false
  const stop = (): Promise<void> => (stopping ??= cleanUp(run))
  // Every SIGINT after the first is ignored while stopping: a terminal sends Ctrl-C to the
  // whole process group, and tsx relays it to this process a second time.
  process.on('SIGINT', () => {
    if (interrupted) return
    interrupted = true
    process.stderr.write('\ndemo: interrupted, stopping everything…\n')
    void stop().then(() => process.exit(130))
  })
  try {
    await demo(run)
    return 0
  } catch (err) {
    if (interrupted) return 130
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`)
    for (const [name, p] of [['seed', run.seed], ...run.agents.map((a, i) => [`agent ${i + 1}`, a] as const)] as const) {
      if (p !== undefined) process.stderr.write(`--- ${name} output (tail) ---\n${p.output().slice(-2000)}\n`)
    }
    return 1
  } finally {
    await stop()
  }
}

async function demo(run: Running): Promise<void> {
  say(`Pollen demo: a docker-registry, a seed and ${AGENTS} agents on this machine`)
  run.work = await mkdtemp(join(tmpdir(), 'pollen-demo-'))
  run.registry = await startRegistry({})
  const registry = run.registry
  say(`  registry   ${registry.url} (docker-registry, the "upstream")`)
  const image = await buildImage(join(run.work, 'image'), { layers: [24 * MiB, 12 * MiB, 4 * MiB], seed: `demo-${Date.now()}` })
  await pushImage(registry.url, REPO, TAG, image)
  const ref = `${registry.host}/${REPO}:${TAG}`
  say(`  pushed     ${ref}: config + ${image.layers.length} layers, ${formatSize(imageBytes(image))}`)
  run.seed = await startSeedProcess(seedArgsFor(registry, join(run.work, 'seed')))
  const seed = run.seed
  say(`  seed       ${seed.url} (pull-through cache, DHT bootstrap, admission)`)
  for (let i = 0; i < AGENTS; i++) {
    const args = ['--data', join(run.work, `agent-${i + 1}`), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())]
    run.agents.push(await startAgentProcess(args))
    say(`  agent ${i + 1}    ${run.agents[i]!.url} (enrolled with a join token)`)
  }
  await waitForPeers(run.agents)
  say()
  const pulled: Array<{ agent: number; seconds: number; bytes: number }> = []
  for (const n of [1, 2]) {
    const agent = run.agents[n - 1]!
    process.stdout.write(`Pulling ${ref} through agent ${n}… `)
    const result = await pullImage(agent.url, REPO, TAG, registry.host)
    say(`${formatSize(result.bytes)} in ${formatDuration(result.seconds * 1000)}`)
    pulled.push({ agent: n, seconds: result.seconds, bytes: result.bytes })
  }
  say()
  say('Where each agent\'s blob bytes came from (pollen_agent_blob_bytes_total{source}):')
  const rows = [['', 'pulled', 'from seed', 'from peers', 'from cache', 'time']]
  for (const p of pulled) {
    const agent = run.agents[p.agent - 1]!
    const by = Object.fromEntries(await Promise.all(SOURCES.map(async (s) => [s, await agent.metric('pollen_agent_blob_bytes_total', { source: s })] as const)))
    rows.push([`agent ${p.agent}`, formatSize(p.bytes), formatSize((by.seed ?? 0) + (by.upstream ?? 0)), formatSize(by.peer ?? 0), formatSize(by.local ?? 0), formatDuration(p.seconds * 1000)])
  }
  say(table(rows))
  const upstream = await seed.metric('pollen_seed_upstream_bytes_total')
  const served = await seed.metric('pollen_seed_served_bytes_total')
  say(`The seed read ${formatSize(upstream)} from the registry and served ${formatSize(served)} to agents (manifests included).`)
  say()
}

/** Waits until every agent has a connection beyond the seed's (so the DHT can find the first puller), for at most PEER_WAIT_MS. */
async function waitForPeers(agents: AgentProcess[]): Promise<void> {
  const deadline = Date.now() + PEER_WAIT_MS
  while (Date.now() < deadline) {
    const peers = await Promise.all(agents.map((a) => a.metric('pollen_agent_peers').catch(() => 0)))
    if (peers.every((n) => n >= 2)) return
    await new Promise((r) => setTimeout(r, 250))
  }
}

async function cleanUp(run: Running): Promise<void> {
  process.stdout.write('Stopping the agents, the seed and the registry… ')
  await Promise.allSettled(run.agents.map((a) => a.stop()))
  await run.seed?.stop().catch(() => undefined)
  await run.registry?.stop().catch(() => undefined)
  if (run.work !== undefined) await rm(run.work, { recursive: true, force: true })
  say('done.')
}

function imageBytes(image: BuiltImage): number {
  return image.config.size + image.layers.reduce((n, l) => n + l.size, 0)
}

/** Left-aligned columns two spaces apart, indented. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => `  ${r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd()).join('\n')
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  },
)
