import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startContainerd, type RunningContainerd } from './helpers/containerd.js'
import { freePort } from './helpers/free-port.js'
import { buildImage, buildIndex, pushImage, pushIndex, type BuiltImage, type BuiltIndex } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { configureContainerd, seedArgsFor, writeDockerConfig } from './helpers/pollen-stack.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const USER = { username: 'alice', password: 'edge nodes never see this' }
const MiB = 1024 * 1024

describeWithBinaries(['containerd', 'ctr', 'docker-registry'], 'agent as containerd mirror, with a real seed and docker-registry', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let agent: AgentProcess
  let ctd: RunningContainerd
  let agentPort: number
  let hostsDir: string
  let image: BuiltImage
  let index: BuiltIndex
  let enroll: string[]
  const agentArgs = (): string[] => ['--listen', `127.0.0.1:${agentPort}`, '--data', join(work, 'agent'), '--seed', seed.url, '--tag-ttl', '0s', '--cache-size', '1GiB', ...enroll]

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-agent-'))
    registry = await startRegistry({ auth: { kind: 'htpasswd', users: { [USER.username]: USER.password } } })
    image = await buildImage(join(work, 'img'), { layers: [200_000, MiB, 2 * MiB], seed: 'agent-app', layerFormat: 'tar+gzip' })
    await pushImage(registry.url, 'team/app', 'v1', image, USER)
    const amd = await buildImage(join(work, 'amd'), { layers: [300_000], seed: 'agent-amd', layerFormat: 'tar+gzip' })
    const arm = await buildImage(join(work, 'arm'), { layers: [310_000], seed: 'agent-arm', layerFormat: 'tar+gzip', platform: { os: 'linux', architecture: 'arm64' } })
    index = buildIndex([
      { image: amd, platform: amd.platform },
      { image: arm, platform: arm.platform },
    ])
    await pushIndex(registry.url, 'team/multi', 'latest', index, USER)
    const creds = await writeDockerConfig(work, registry.host, USER.username, USER.password)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed'), creds))
    enroll = await seed.enrollArgs()
    agentPort = await freePort()
    agent = await startAgentProcess(agentArgs())
    hostsDir = join(work, 'certs.d')
    const out = await configureContainerd(['--hosts-dir', hostsDir, '--registry', registry.host, '--listen', `127.0.0.1:${agentPort}`])
    expect(out).toContain('created')
    ctd = await startContainerd()
  })

  afterAll(async () => {
    await ctd?.stop()
    await agent?.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('writes a hosts.toml that keeps the registry as the fallback server', async () => {
    const toml = await readFile(join(hostsDir, registry.host, 'hosts.toml'), 'utf8')
    expect(toml).toContain(`server = "${registry.url}"`)
    expect(toml).toContain(`[host."http://127.0.0.1:${agentPort}"]`)
    expect(toml).toContain('capabilities = ["pull", "resolve"]')
    expect(await configureContainerd(['--hosts-dir', hostsDir, '--registry', registry.host, '--listen', `127.0.0.1:${agentPort}`])).toContain('unchanged')
  })

  it('(a) lets containerd pull a multi-layer image and a multi-arch index through the agent, with no registry password', async () => {
    await ctd.pull(`${registry.host}/team/app:v1`, { hostsDir })
    await ctd.pull(`${registry.host}/team/multi:latest`, { hostsDir, allPlatforms: true })
    const content = new Set(await ctd.contentDigests())
    for (const blob of [image.config, ...image.layers]) expect(content.has(blob.digest)).toBe(true)
    for (const child of index.children) for (const layer of child.image.layers) expect(content.has(layer.digest)).toBe(true)
    const imageBytes = image.layers.reduce((n, l) => n + l.size, 0)
    expect(await agent.metric('pollen_agent_blob_bytes_total', { source: 'seed' })).toBeGreaterThanOrEqual(imageBytes)
    expect(await agent.metric('pollen_agent_requests_total', { kind: 'manifest', code: '200' })).toBeGreaterThan(0)
    expect(await agent.metric('pollen_agent_cache_bytes')).toBeGreaterThanOrEqual(imageBytes)
    const log = await registry.readLog()
    expect(log).not.toMatch(/containerd\/1\.6/)
  })

  it('(c) lets containerd pull from the upstream server while the agent is stopped', async () => {
    await agent.stop()
    try {
      await ctd.removeAllContent()
      await ctd.ctr(['images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', ctd.snapshotter, '--user', `${USER.username}:${USER.password}`, `${registry.host}/team/app:v1`])
      const log = await registry.readLog()
      expect(log).toMatch(/containerd\/1\.6/)
    } finally {
      agent = await startAgentProcess(agentArgs())
    }
  })

  it('serves containerd through a mirror listening on every interface only when the request carries the mirror token', async () => {
    const tokenFile = join(work, 'mirror-token')
    const token = randomBytes(32).toString('hex')
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 })
    const port = await freePort()
    const wide = await startAgentProcess(['--listen', `0.0.0.0:${port}`, '--mirror-token-file', tokenFile, '--data', join(work, 'agent-wide'), '--seed', seed.url, ...(await seed.enrollArgs())])
    try {
      const refused = await fetch(`http://127.0.0.1:${port}/v2/team/app/manifests/v1?ns=${registry.host}`, { signal: AbortSignal.timeout(10_000) })
      expect(refused.status).toBe(403)
      expect(((await refused.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('DENIED')
      expect(await wide.metric('pollen_agent_admission_denied_total', { reason: 'mirror-token' })).toBe(1)

      const wideHosts = join(work, 'certs.d-wide')
      await configureContainerd(['--hosts-dir', wideHosts, '--registry', registry.host, '--listen', `0.0.0.0:${port}`, '--mirror-token-file', tokenFile])
      const hostsFile = join(wideHosts, registry.host, 'hosts.toml')
      expect((await stat(hostsFile)).mode & 0o777).toBe(0o600)
      expect(await readFile(hostsFile, 'utf8')).toContain(`X-Pollen-Mirror-Token = "${token}"`)
      const containerdAtRegistry = (await registry.readLog()).split('\n').filter((l) => /containerd\/1\./.test(l)).length
      await ctd.removeAllContent()
      await ctd.pull(`${registry.host}/team/app:v1`, { hostsDir: wideHosts })
      const content = new Set(await ctd.contentDigests())
      for (const blob of [image.config, ...image.layers]) expect(content.has(blob.digest)).toBe(true)
      expect(await wide.metric('pollen_agent_requests_total', { kind: 'blob', code: '200' })).toBeGreaterThanOrEqual(image.layers.length)
      expect(await wide.metric('pollen_agent_admission_denied_total', { reason: 'mirror-token' })).toBe(1)
      expect((await registry.readLog()).split('\n').filter((l) => /containerd\/1\./.test(l)).length).toBe(containerdAtRegistry)
    } finally {
      await wide.stop()
    }
  })

  it('(b) pulls from the agent cache, and resolves the tag from its stale answer, when seed and upstream are both down', async () => {
    await ctd.removeAllContent()
    await seed.stop()
    await registry.stop()
    const localBefore = await agent.metric('pollen_agent_blob_bytes_total', { source: 'local' })
    await ctd.pull(`${registry.host}/team/app:v1`, { hostsDir })
    const content = new Set(await ctd.contentDigests())
    for (const blob of [image.config, ...image.layers]) expect(content.has(blob.digest)).toBe(true)
    expect((await agent.metric('pollen_agent_blob_bytes_total', { source: 'local' })) - localBefore).toBeGreaterThanOrEqual(image.layers.reduce((n, l) => n + l.size, 0))
    expect(await agent.metric('pollen_agent_stale_tags_served_total')).toBeGreaterThanOrEqual(1)
    expect(agent.output()).toMatch(/serving last known tag answer/)
  })
})
