import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { AgentStatusReport } from '../agent/status-report.js'
import type { ReadinessReport } from '../content/ops-server.js'
import { waitFor } from './helpers/fleet-processes.js'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type PollenProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { fetchBlob, pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const SECRET_IN_TEXT = /pjt_|eyJ[A-Za-z0-9_-]{20,}\./

async function json<T>(url: string): Promise<{ status: number; body: T; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  const text = await res.text()
  return { status: res.status, body: JSON.parse(text) as T, text }
}

/**
 * Checks a /metrics page: every pollen_ family has help text, and no label value looks like
 * a digest, a PeerId or a path (an unbounded value). Returns the pollen_ family names.
 */
async function checkMetricsPage(p: PollenProcess): Promise<string[]> {
  const text = await (await fetch(`${p.opsUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  const help = new Map([...text.matchAll(/^# HELP (\S+) (.*)$/gm)].map((m) => [m[1]!, m[2]!]))
  const families = [...text.matchAll(/^# TYPE (pollen_\S+) /gm)].map((m) => m[1]!)
  expect(families.length).toBeGreaterThan(8)
  for (const name of families) expect([name, (help.get(name) ?? '').length > 10]).toEqual([name, true])
  for (const line of text.split('\n')) {
    const labels = /^[a-zA-Z_:][a-zA-Z0-9_:]*\{([^}]*)\}/.exec(line)?.[1]
    if (labels === undefined) continue
    for (const [, value] of labels.matchAll(/[a-zA-Z_]+="([^"]*)"/g)) {
      expect([line, /sha256:|[0-9a-f]{32}/.test(value!)]).toEqual([line, false])
      expect([line, /^(12D3KooW|Qm)[1-9A-HJ-NP-Za-km-z]{20,}/.test(value!)]).toEqual([line, false])
      if (line.startsWith('pollen_')) expect([line, value!.includes('/')]).toEqual([line, false])
    }
  }
  return families
}

describeWithBinaries(['docker-registry'], 'metrics, health and status', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let agent: AgentProcess
  let image: BuiltImage

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-observability-'))
    registry = await startRegistry({})
    image = await buildImage(join(work, 'img'), { layers: [200_000, 30_000], seed: 'observability' })
    await pushImage(registry.url, 'team/app', 'v1', image)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    agent = await startAgentProcess(['--data', join(work, 'agent'), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())])
    await pullImage(agent.url, 'team/app', 'v1', registry.host)
  })
  afterAll(async () => {
    await agent?.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('reports the agent\'s status on the ops and the mirror listener, without secrets', async () => {
    const peerId = String(agent.logs.find((l) => l.msg === 'agent listening')?.peerId)
    for (const base of [agent.opsUrl, agent.url]) {
      const { status, body, text } = await json<AgentStatusReport>(`${base}/v1/status`)
      expect(status).toBe(200)
      expect(body).toMatchObject({
        schema: 1,
        version: expect.stringMatching(/^\d+\.\d+\.\d+/),
        peerId,
        mode: 'seed',
        seed: { url: seed.url, reachable: true },
        token: { enrolled: true, valid: true },
        peers: { enabled: true },
      })
      expect(Date.parse(body.token.expiresAt!)).toBeGreaterThan(Date.now())
      expect(body.cache.bytes).toBeGreaterThanOrEqual(image.layers.reduce((n, l) => n + l.size, 0))
      expect(body.cache.capacity).toBeGreaterThan(body.cache.bytes)
      expect(Array.isArray(body.lastErrors)).toBe(true)
      expect(text).not.toMatch(SECRET_IN_TEXT)
    }
    const ready = await json<ReadinessReport>(`${agent.opsUrl}/readyz`)
    expect(ready.status).toBe(200)
    expect(ready.body.mode).toBe('seed')
    expect(ready.body.checks).toEqual([
      { name: 'store', ok: true },
      { name: 'admission', ok: true },
      { name: 'seed', ok: true, detail: 'reachable' },
    ])
  })

  it('exports help text for every pollen_ metric and no digest, PeerId or path as a label value', async () => {
    const agentFamilies = await checkMetricsPage(agent)
    expect(agentFamilies).toEqual(expect.arrayContaining(['pollen_agent_seed_up', 'pollen_agent_admission_token_expiry_timestamp_seconds', 'pollen_agent_request_duration_seconds']))
    const seedFamilies = await checkMetricsPage(seed)
    expect(seedFamilies).toEqual(expect.arrayContaining(['pollen_seed_upstream_up', 'pollen_seed_cache_bytes', 'pollen_seed_request_duration_seconds']))
    expect(await agent.metric('pollen_agent_seed_up')).toBe(1)
    expect(await agent.metric('pollen_agent_admission_token_expiry_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000)
    expect(await seed.metric('pollen_seed_upstream_up', { registry: registry.host })).toBe(1)
    expect(await seed.metric('pollen_seed_cache_bytes')).toBeGreaterThan(0)
    expect(await seed.metric('pollen_seed_upstream_requests_total', { registry: registry.host, code: '200' })).toBeGreaterThan(0)
    expect(await agent.metric('pollen_agent_request_duration_seconds_count', { kind: 'blob' })).toBe(3)
    // The agent announced the blobs it pulled; the seed, its only DHT peer, stores those records.
    await waitFor(async () => (await seed.metric('pollen_seed_dht_store_records')) >= image.layers.length, 20_000, "the agent's provider records in the seed's DHT store")
    expect(await seed.metric('pollen_seed_dht_routing_table_peers')).toBe(1)
    expect(await agent.metric('pollen_agent_dht_routing_table_peers')).toBe(1)
  })

  it('stays ready in cache-only mode when the seed stops, and still serves what it holds', async () => {
    await seed.stop()
    const deadline = Date.now() + 20_000
    let ready = await json<ReadinessReport>(`${agent.url}/readyz`)
    while (ready.body.mode !== 'cache-only' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250))
      ready = await json<ReadinessReport>(`${agent.url}/readyz`)
    }
    expect(ready.status).toBe(200)
    expect(ready.body.mode).toBe('cache-only')
    expect(ready.body.checks).toContainEqual({ name: 'seed', ok: true, detail: expect.stringMatching(/unreachable.*cache-only/) })
    expect(await fetchBlob(agent.url, 'team/app', image.layers[0]!.digest, `?ns=${registry.host}`)).toBe(image.layers[0]!.size)
    // The tag resolves from the agent's tag cache (or, past its TTL, to its last known digest), so the whole image still pulls.
    expect((await pullImage(agent.url, 'team/app', 'v1', registry.host)).blobs).toBe(3)

    const { body, text } = await json<AgentStatusReport>(`${agent.opsUrl}/v1/status`)
    expect(body.mode).toBe('cache-only')
    expect(body.seed).toMatchObject({ reachable: false, lastError: { message: expect.stringMatching(/unreachable/) } })
    expect(body.token.valid).toBe(true)
    expect(body.lastErrors).toContainEqual(expect.objectContaining({ level: 'warn', component: 'seed-probe' }))
    expect(text).not.toMatch(SECRET_IN_TEXT)
    expect(await agent.metric('pollen_agent_seed_up')).toBe(0)
    expect(agent.output()).not.toMatch(SECRET_IN_TEXT)
  })
})
