import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildImage, makeBlobFile, pushBlob, pushImage, type BlobFile, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { fetchBlob, pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const MiB = 1024 * 1024
const AGENTS = 5

async function seedBootstrap(seed: SeedProcess): Promise<string[]> {
  const body = (await (await fetch(`${seed.url}/v1/bootstrap`, { signal: AbortSignal.timeout(5000) })).json()) as { multiaddrs: string[] }
  return body.multiaddrs
}

const imageBytes = (image: BuiltImage): number => image.config.size + image.layers.reduce((n, l) => n + l.size, 0)

describeWithBinaries(['docker-registry'], 'a fleet of agents sharing blobs over libp2p (each agent its own process)', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  const agents: AgentProcess[] = []
  const servedBySeed = async (): Promise<number> => seed.metric('pollen_seed_served_bytes_total', { kind: 'blob' })

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-fleet-'))
    registry = await startRegistry({})
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    for (let i = 0; i < AGENTS; i++) agents.push(await startAgentProcess(['--data', join(work, `agent-${i}`), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())]))
    // Let the DHT routing tables fill (every agent is connected to the seed at least).
    await new Promise((r) => setTimeout(r, 1500))
  })
  afterAll(async () => {
    for (const a of agents) await a.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('(a) sequential: after one agent pulled through the seed, the others get every blob from peers', async () => {
    const image = await buildImage(join(work, 'seq'), { layers: [8 * MiB, 4 * MiB, MiB], seed: 'sequential' })
    await pushImage(registry.url, 'fleet/seq', 'v1', image)
    await pullImage(agents[0]!.url, 'fleet/seq', 'v1', registry.host)
    const before = await servedBySeed()
    for (const agent of agents.slice(1)) {
      await pullImage(agent.url, 'fleet/seq', 'v1', registry.host)
      expect(await agent.metric('pollen_agent_blob_bytes_total', { source: 'peer' })).toBeGreaterThanOrEqual(imageBytes(image))
    }
    const growth = (await servedBySeed()) - before
    expect(growth).toBeLessThan(0.05 * imageBytes(image))
  })

  it('(b) fresh rollout: five agents pulling a 128 MiB image at the same instant make the seed serve at most 2x and the upstream exactly 1x', async () => {
    const image = await buildImage(join(work, 'rollout'), { layers: [96 * MiB, 32 * MiB - 4096], seed: 'rollout' })
    await pushImage(registry.url, 'fleet/rollout', 'v1', image)
    const seedBefore = await servedBySeed()
    const upstreamBefore = await seed.metric('pollen_seed_upstream_bytes_total')
    const results = await Promise.all(agents.map((a) => pullImage(a.url, 'fleet/rollout', 'v1', registry.host))).catch((err: unknown) => {
      for (const a of agents) console.log(`agent exit=${a.child.exitCode} signal=${a.child.signalCode}\n`, a.output().split('\n').filter((l) => !l.startsWith('{') || /"level":(40|50)|transfer broke|fill failed|cut short/.test(l)).slice(-30).join('\n'))
      throw err
    })
    for (const r of results) expect(r.bytes).toBe(imageBytes(image))
    const seedServed = (await servedBySeed()) - seedBefore
    const upstream = (await seed.metric('pollen_seed_upstream_bytes_total')) - upstreamBefore
    console.log(`fresh rollout of ${(imageBytes(image) / MiB).toFixed(0)} MiB to ${AGENTS} agents: seed served ${(seedServed / imageBytes(image)).toFixed(2)}x, upstream ${(upstream / imageBytes(image)).toFixed(2)}x, slowest ${Math.max(...results.map((r) => r.seconds)).toFixed(1)} s`)
    // Every blob left the upstream exactly once (its access log); the byte counter also counts manifests.
    const log = await registry.readLog()
    for (const blob of [image.config, ...image.layers]) expect(log.split('\n').filter((l) => l.includes(`"GET /v2/fleet/rollout/blobs/${blob.digest}`))).toHaveLength(1)
    expect(upstream).toBeGreaterThanOrEqual(imageBytes(image))
    expect(upstream).toBeLessThan(imageBytes(image) + 4 * image.manifest.byteLength)
    expect(seedServed).toBeLessThanOrEqual(2 * imageBytes(image))
  })

  it('(c) a lying peer never gets bad bytes into any cache, and the pull completes from another source', async () => {
    const blob = await makeBlobFile(work, 4 * MiB, 'lied-about')
    await pushBlob(registry.url, 'fleet/lie', blob)
    // An enrolled host gone bad: it holds a valid token, so it is admitted and can lie.
    const liar = await startLiar(await seedBootstrap(seed), blob, ['--seed', seed.url, '--join-token-file', await seed.joinTokenFile()])
    try {
      const victim = agents[2]!
      const before = await victim.metric('pollen_agent_digest_mismatch_total', { source: 'peer' })
      const fetched = await fetchBlob(victim.url, 'fleet/lie', blob.digest, `?ns=${registry.host}`).catch(() => fetchBlob(victim.url, 'fleet/lie', blob.digest, `?ns=${registry.host}`))
      expect(fetched).toBe(blob.size)
      expect((await victim.metric('pollen_agent_digest_mismatch_total', { source: 'peer' })) - before).toBeGreaterThanOrEqual(1)
      for (const agent of agents) {
        const res = await fetch(`${agent.url}/v2/fleet/lie/blobs/${blob.digest}?ns=${registry.host}`, { method: 'HEAD', signal: AbortSignal.timeout(60_000) })
        expect(res.status).toBe(200)
      }
      for (const agent of agents) await fetchBlob(agent.url, 'fleet/lie', blob.digest, `?ns=${registry.host}`)
    } finally {
      liar.kill('SIGKILL')
    }
  })

  it('(d) a peer killed mid-transfer of a 256 MiB blob does not fail the pull: it resumes from another source', async () => {
    const blob = await makeBlobFile(work, 256 * MiB, 'dying')
    await pushBlob(registry.url, 'fleet/dying', blob)
    const holderIndex = 3
    await agents[holderIndex]!.stop()
    agents[holderIndex] = await startAgentProcess(['--data', join(work, `agent-${holderIndex}`), '--seed', seed.url, '--default-ns', registry.host, '--upload-limit', '48MB', ...(await seed.enrollArgs())])
    const holder = agents[holderIndex]!
    await fetchBlob(holder.url, 'fleet/dying', blob.digest, `?ns=${registry.host}`)
    await new Promise((r) => setTimeout(r, 500))
    const reader = agents[4]!
    const pulling = fetchBlob(reader.url, 'fleet/dying', blob.digest, `?ns=${registry.host}`)
    for (let i = 0; i < 200 && (await reader.metric('pollen_agent_remote_bytes_total').catch(() => 0)) >= 0; i++) {
      if ((await holder.metric('pollen_agent_peer_upload_bytes_total')) > 32 * MiB) break
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(await holder.metric('pollen_agent_peer_upload_bytes_total')).toBeGreaterThan(32 * MiB)
    await holder.kill()
    expect(await pulling).toBe(blob.size)
    agents[holderIndex] = await startAgentProcess(['--data', join(work, `agent-${holderIndex}`), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())])
  })
})

async function startLiar(bootstrap: string[], blob: BlobFile, extra: string[] = []): Promise<ChildProcess> {
  const script = fileURLToPath(new URL('./helpers/lying-peer.ts', import.meta.url))
  const args = ['--import', 'tsx', script, '--digest', blob.digest, '--size', String(blob.size), ...bootstrap.flatMap((b) => ['--bootstrap', b]), ...extra]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => line.startsWith('ready') && resolve())
    child.once('exit', (code) => reject(new Error(`lying peer exited with ${code}`)))
    setTimeout(() => reject(new Error('lying peer did not become ready')), 20_000).unref()
  })
  return child
}
