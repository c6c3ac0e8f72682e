import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ALERTS_FILE, DASHBOARD_FILE, kustomizationObjects, promqlErrors, readYaml, type Dashboard } from './deploy-files.js'

// Checks the monitoring files under deploy/ (alert rules, PrometheusRule, Grafana dashboard) by
// reading them: no Prometheus, no Grafana. promqlErrors parses every expression.

describe('the alert rules', () => {
  const plain = readYaml(ALERTS_FILE) as { groups: Array<{ name: string; rules: any[] }> }
  const rules = plain.groups.flatMap((g) => g.rules)

  it('are the same in the rule file and in the PrometheusRule', () => {
    const wrapped = kustomizationObjects('monitoring/kustomization.yaml').find((o) => o.kind === 'PrometheusRule')!
    expect(wrapped.spec).toEqual(plain)
  })

  it('each have a parseable expression, a duration, a severity, a summary and a description', () => {
    const names = rules.map((r) => r.alert)
    expect(new Set(names).size).toBe(names.length)
    for (const r of rules) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^Pollen[A-Z]\w+$/)
      expect(promqlErrors(r.expr), r.alert).toBe('')
      if (r.for !== undefined) expect(r.for, r.alert).toMatch(/^(\d+[smhd])+$/)
      expect(['warning', 'critical'], r.alert).toContain(r.labels?.severity)
      expect(r.annotations?.summary, r.alert).toMatch(/\w/)
      expect(r.annotations?.description, r.alert).toMatch(/\w/)
    }
  })

  it('cover latency, errors, cache usage, token expiry and the seed being unreachable', () => {
    const byMetric = (re: RegExp) => rules.filter((r) => re.test(r.expr))
    expect(byMetric(/histogram_quantile\(0\.99,[\s\S]*pollen_agent_request_duration_seconds_bucket[\s\S]*> 0\.5/)[0]?.for).toBe('10m')
    expect(byMetric(/code=~"5\.\."[\s\S]*> 0\.01/)[0]?.for).toBe('5m')
    expect(byMetric(/status=~"5\.\."[\s\S]*> 0\.01/)[0]?.for).toBe('5m')
    expect(byMetric(/pollen_agent_cache_bytes[\s\S]*> 0\.85/)[0]?.for).toBe('15m')
    expect(byMetric(/pollen_agent_admission_token_expiry_timestamp_seconds - time\(\) < 120/)).toHaveLength(1)
    expect(byMetric(/pollen_agent_seed_up == 0/)[0]?.for).toBe('5m')
    expect(byMetric(/up\{job="pollen-seed"\} == 0/)[0]?.for).toBe('5m')
  })
})

describe('the Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard
  const panels = dashboard.panels.filter((p) => p.type !== 'row')

  it('takes its Prometheus as the DS_PROMETHEUS input in every panel and query', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36)
    expect(dashboard.__inputs).toContainEqual(expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }))
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' })
      for (const t of p.targets ?? []) expect(t.datasource ?? p.datasource).toEqual(p.datasource)
    }
    const instance = dashboard.templating.list.find((v) => v.name === 'instance')
    expect(instance?.datasource).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' })
  })

  it('has unique panel ids, panels that do not overlap, and queries that parse', () => {
    const ids = dashboard.panels.map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    const cells = new Set<string>()
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos
      expect(x + w, p.title).toBeLessThanOrEqual(24)
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps at ${i},${j}`).toBe(false)
          cells.add(`${i},${j}`)
        }
      }
    }
    for (const p of panels) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0)
      for (const t of p.targets!) expect(promqlErrors(t.expr), `${p.title} ${t.refId}: ${t.expr}`).toBe('')
    }
  })

  it('shows latency, bytes by source, seed egress and upstream, cache, mismatches, refusals, peers, DHT stores and token expiry', () => {
    const all = panels.flatMap((p) => p.targets!.map((t) => t.expr)).join('\n')
    for (const needle of [
      /histogram_quantile\(0\.5, [^\n]*pollen_agent_request_duration_seconds_bucket/,
      /histogram_quantile\(0\.99, [^\n]*pollen_agent_request_duration_seconds_bucket/,
      /pollen_agent_blob_bytes_total\{[^}]*source="peer"/,
      /pollen_seed_served_bytes_total/,
      /pollen_seed_upstream_bytes_total/,
      /pollen_agent_cache_bytes[^\n]*\/[^\n]*pollen_agent_cache_capacity_bytes/,
      /pollen_agent_digest_mismatch_total/,
      /pollen_seed_admission_denied_total/,
      /pollen_agent_admission_denied_total/,
      /pollen_agent_peers/,
      /pollen_agent_dht_store_records/,
      /pollen_seed_dht_store_records/,
      /pollen_agent_admission_token_expiry_timestamp_seconds/,
    ]) expect(all).toMatch(needle)
  })
})
