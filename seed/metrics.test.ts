import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { createSeedMetrics } from './metrics.js'

/** The seed's metrics and their labels: dashboards and alert rules (deploy/) depend on these names. */
const SEED_METRICS: Record<string, string[]> = {
  pollen_seed_fanout_answers_total: ['from'],
  pollen_seed_admission_denied_total: ['reason'],
  pollen_seed_admission_issued_total: ['how'],
  pollen_seed_cache_bytes: [],
  pollen_seed_cache_capacity_bytes: [],
  pollen_seed_evictions_total: [],
  pollen_seed_evicted_bytes_total: [],
  pollen_seed_dht_routing_table_peers: [],
  pollen_seed_dht_store_records: [],
  pollen_seed_fills_total: ['outcome'],
  pollen_seed_inflight_fills: [],
  pollen_seed_request_duration_seconds: ['method', 'route', 'status'],
  pollen_seed_served_bytes_total: ['kind'],
  pollen_seed_stale_tags_served_total: ['registry'],
  pollen_seed_upstream_bytes_total: ['registry'],
  pollen_seed_upstream_requests_total: ['registry', 'code'],
  pollen_seed_upstream_up: ['registry'],
}

describe('seed metrics', () => {
  it('registers every metric with help text and its labels, plus the process metrics', async () => {
    const registry = new Registry()
    createSeedMetrics(registry)
    const text = await registry.metrics()
    const names = [...text.matchAll(/^# HELP (pollen_\S+) (.+)$/gm)].map((x) => [x[1]!, x[2]!] as const)
    expect(names.map(([n]) => n).sort()).toEqual(Object.keys(SEED_METRICS).sort())
    for (const [, help] of names) expect(help.length).toBeGreaterThan(20)
    for (const [name, labels] of Object.entries(SEED_METRICS)) {
      const metric = registry.getSingleMetric(name) as unknown as { labelNames: string[] }
      expect([name, [...metric.labelNames].sort()]).toEqual([name, [...labels].sort()])
    }
    expect(text).toMatch(/^process_resident_memory_bytes /m)
  })

  it('buckets request latency from 5 ms to 60 s and reads the cache and DHT sizes at scrape time', async () => {
    const registry = new Registry()
    const m = createSeedMetrics(registry, { cacheBytes: () => 12_345, dhtPeers: () => 7, dhtStoreRecords: () => 321 }, { defaultMetrics: false })
    m.requestDuration.observe({ method: 'GET', route: 'blob', status: '200' }, 0.5)
    const text = await registry.metrics()
    const bounds = [...text.matchAll(/^pollen_seed_request_duration_seconds_bucket\{le="([^"]+)"/gm)].map((x) => x[1])
    expect(bounds).toEqual(['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30', '60', '+Inf'])
    expect(text).toMatch(/^pollen_seed_cache_bytes 12345$/m)
    expect(text).toMatch(/^pollen_seed_dht_routing_table_peers 7$/m)
    expect(text).toMatch(/^pollen_seed_dht_store_records 321$/m)
  })
})
