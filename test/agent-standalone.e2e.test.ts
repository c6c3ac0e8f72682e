import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { startPollenProcess, type AgentProcess } from './helpers/pollen-process.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const USER = { username: 'bob', password: 'standalone secret' }

describeWithBinaries(['docker-registry'], 'agent in standalone mode (no seed)', () => {
  let work: string
  let registry: RunningRegistry
  let image: BuiltImage
  let agent: AgentProcess

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-standalone-'))
    registry = await startRegistry({ auth: { kind: 'htpasswd', users: { [USER.username]: USER.password } } })
    image = await buildImage(join(work, 'img'), { layers: [500_000, 20_000], seed: 'standalone' })
    await pushImage(registry.url, 'team/solo', 'v1', image, USER)
    const dockerDir = join(work, 'docker')
    await mkdir(dockerDir)
    const auth = Buffer.from(`${USER.username}:${USER.password}`).toString('base64')
    await writeFile(join(dockerDir, 'config.json'), JSON.stringify({ auths: { [registry.host]: { auth } } }))
    process.env.DOCKER_CONFIG = dockerDir
    try {
      agent = await startPollenProcess('agent', ['--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--data', join(work, 'agent')])
    } finally {
      delete process.env.DOCKER_CONFIG
    }
  })
  afterAll(async () => {
    await agent?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('pulls through any registry named by ?ns= with the credentials from the Docker config, and caches what it pulled', async () => {
    const ns = `ns=${encodeURIComponent(registry.host)}`
    const manifest = await request(`${agent.url}/v2/team/solo/manifests/v1?${ns}`, { signal: AbortSignal.timeout(30_000) })
    expect(manifest.statusCode).toBe(200)
    expect(Buffer.from(await manifest.body.arrayBuffer()).equals(image.manifest)).toBe(true)
    for (let round = 0; round < 2; round++) {
      for (const layer of image.layers) {
        const res = await request(`${agent.url}/v2/team/solo/blobs/${layer.digest}?${ns}`, { signal: AbortSignal.timeout(30_000) })
        expect(res.statusCode).toBe(200)
        expect(`sha256:${createHash('sha256').update(Buffer.from(await res.body.arrayBuffer())).digest('hex')}`).toBe(layer.digest)
      }
    }
    const total = image.layers.reduce((n, l) => n + l.size, 0)
    expect(await agent.metric('pollen_agent_blob_bytes_total', { source: 'upstream' })).toBe(total)
    expect(await agent.metric('pollen_agent_blob_bytes_total', { source: 'local' })).toBe(total)
    expect(agent.output()).toContain('standalone mode: using Docker credentials')
    expect(agent.output()).not.toContain(USER.password)
  })
})
