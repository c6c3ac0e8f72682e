import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { createAgentMetrics, registryLabeller } from './metrics.js'

/** The agent's metrics and their labels: dashboards and alert rules (deploy/) depend on these names. */
const AGENT_METRICS: Record<string, string[]> = {
  pollen_agent_admission_denied_total: ['reason'],
  pollen_agent_admission_token_expiry_timestamp_seconds: [],
  pollen_agent_blob_bytes_total: ['source'],
  pollen_agent_cache_bytes: [],
  pollen_agent_cache_capacity_bytes: [],
  pollen_agent_dht_lookup_duration_seconds: [],
  pollen_agent_dht_routing_table_peers: [],
  pollen_agent_dht_store_records: [],
  pollen_agent_digest_mismatch_total: ['source'],
  pollen_agent_evicted_bytes_total: [],
  pollen_agent_evictions_total: [],
  pollen_agent_fills_total: ['outcome'],
  pollen_agent_inflight_fills: [],
  pollen_agent_manifest_bytes_total: [],
  pollen_agent_peer_upload_bytes_total: [],
  pollen_agent_peers: [],
  pollen_agent_remote_bytes_total: [],
  pollen_agent_remote_requests_total: ['code'],
  pollen_agent_request_duration_seconds: ['kind'],
  pollen_agent_requests_total: ['kind', 'code'],
  pollen_agent_seed_up: [],
  pollen_agent_stale_tags_served_total: ['registry'],
}

describe('agent metrics', () => {
  it('registers every metric with help text and its labels, plus the process metrics', async () => {
    const registry = new Registry()
    const m = createAgentMetrics(registry, {}, { seed: true, enrolled: true })
    const text = await registry.metrics()
    const names = [...text.matchAll(/^# HELP (pollen_\S+) (.+)$/gm)].map((x) => [x[1]!, x[2]!] as const)
    expect(names.map(([n]) => n).sort()).toEqual(Object.keys(AGENT_METRICS).sort())
    for (const [, help] of names) expect(help.length).toBeGreaterThan(20)
    for (const [name, labels] of Object.entries(AGENT_METRICS)) {
      const metric = registry.getSingleMetric(name) as unknown as { labelNames: string[] }
      expect([name, [...metric.labelNames].sort()]).toEqual([name, [...labels].sort()])
    }
    expect(text).toMatch(/^process_cpu_user_seconds_total /m)
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m)
    expect(m.registry).toBe(registry)
  })

  it('buckets request latency from 5 ms to 60 s', async () => {
    const registry = new Registry()
    const m = createAgentMetrics(registry, {}, { defaultMetrics: false })
    m.requestDuration.observe({ kind: 'blob' }, 0.002)
    const text = await registry.metrics()
    const bounds = [...text.matchAll(/^pollen_agent_request_duration_seconds_bucket\{le="([^"]+)",kind="blob"\}/gm)].map((x) => x[1])
    expect(bounds[0]).toBe('0.005')
    expect(bounds.at(-2)).toBe('60')
    expect(bounds.at(-1)).toBe('+Inf')
  })

  it('reads the token expiry and the seed\'s reachability at scrape time; exports them only when enrolled and with a seed', async () => {
    let expiresAt: number | undefined
    let up = false
    const registry = new Registry()
    createAgentMetrics(registry, { tokenExpiresAt: () => expiresAt, seedUp: () => up }, { defaultMetrics: false, seed: true, enrolled: true })
    const value = async (name: string): Promise<number> => (await registry.getSingleMetric(name)!.get()).values[0]!.value
    expect(await value('pollen_agent_admission_token_expiry_timestamp_seconds')).toBe(0)
    expect(await value('pollen_agent_seed_up')).toBe(0)
    expiresAt = 1_714_568_400_999
    up = true
    expect(await value('pollen_agent_admission_token_expiry_timestamp_seconds')).toBe(1_714_568_400)
    expect(await value('pollen_agent_seed_up')).toBe(1)

    const standalone = new Registry()
    createAgentMetrics(standalone, {}, { defaultMetrics: false })
    expect(standalone.getSingleMetric('pollen_agent_seed_up')).toBeUndefined()
    expect(standalone.getSingleMetric('pollen_agent_admission_token_expiry_timestamp_seconds')).toBeUndefined()
  })
})

describe('registryLabeller', () => {
  it('names the default and well-known registries, and turns any client-chosen other into "other"', () => {
    const label = registryLabeller('registry.internal:5000')
    expect(label('registry.internal:5000')).toBe('registry.internal:5000')
    expect(label('docker.io')).toBe('docker.io')
    expect(label('ghcr.io')).toBe('ghcr.io')
    expect(label('attacker-1234.example')).toBe('other')
    expect(label('sha256:0123')).toBe('other')
  })
})
