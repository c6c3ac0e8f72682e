import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startContainerd, type RunningContainerd } from './helpers/containerd.js'
import { freePort } from './helpers/free-port.js'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { configureContainerd, seedArgsFor } from './helpers/pollen-stack.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const MiB = 1024 * 1024

interface Node {
  agent: AgentProcess
  ctd: RunningContainerd
  hostsDir: string
}

describeWithBinaries(['containerd', 'ctr', 'docker-registry'], '(e) real containerd on two agents that share blobs over libp2p', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let image: BuiltImage
  const nodes: Node[] = []

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-p2p-ctd-'))
    registry = await startRegistry({})
    image = await buildImage(join(work, 'img'), { layers: [6 * MiB, 2 * MiB, 300_000], seed: 'p2p-containerd', layerFormat: 'tar+gzip' })
    await pushImage(registry.url, 'edge/app', 'v1', image)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    for (let i = 0; i < 2; i++) {
      const port = await freePort()
      const agent = await startAgentProcess(['--listen', `127.0.0.1:${port}`, '--data', join(work, `agent-${i}`), '--seed', seed.url, ...(await seed.enrollArgs())])
      const hostsDir = join(work, `certs-${i}`)
      await configureContainerd(['--hosts-dir', hostsDir, '--registry', registry.host, '--listen', `127.0.0.1:${port}`])
      nodes.push({ agent, ctd: await startContainerd(), hostsDir })
    }
    await new Promise((r) => setTimeout(r, 1000))
  })
  afterAll(async () => {
    for (const n of nodes) {
      await n.ctd.stop()
      await n.agent.stop()
    }
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('pulls on the second node from the first node\'s agent, not from the seed', async () => {
    const [first, second] = nodes as [Node, Node]
    const layerBytes = image.layers.reduce((n, l) => n + l.size, 0)
    await first.ctd.pull(`${registry.host}/edge/app:v1`, { hostsDir: first.hostsDir })
    expect(await first.agent.metric('pollen_agent_blob_bytes_total', { source: 'seed' })).toBeGreaterThanOrEqual(layerBytes)
    const seedBefore = await seed.metric('pollen_seed_served_bytes_total')
    await second.ctd.pull(`${registry.host}/edge/app:v1`, { hostsDir: second.hostsDir })
    const content = new Set(await second.ctd.contentDigests())
    for (const layer of image.layers) expect(content.has(layer.digest)).toBe(true)
    expect(await second.agent.metric('pollen_agent_blob_bytes_total', { source: 'peer' })).toBeGreaterThanOrEqual(layerBytes)
    expect(await first.agent.metric('pollen_agent_peer_upload_bytes_total')).toBeGreaterThanOrEqual(layerBytes)
    expect((await seed.metric('pollen_seed_served_bytes_total')) - seedBefore).toBeLessThan(0.05 * layerBytes)
    expect(await second.agent.metric('pollen_agent_peers')).toBeGreaterThanOrEqual(1)
  })
})
