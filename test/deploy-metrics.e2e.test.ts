import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { monitoringExpressions, pollenMetricNames } from './deploy-files.js'
import { buildImage, pushImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

/** Metric name → the label names seen on its samples, from a /metrics text. */
function exposition(text: string): Map<string, Set<string>> {
  const metrics = new Map<string, Set<string>>()
  const add = (name: string): Set<string> => metrics.get(name) ?? metrics.set(name, new Set()).get(name)!
  for (const line of text.split('\n')) {
    const help = /^# HELP (\S+)/.exec(line)
    if (help !== null) add(help[1]!)
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s/.exec(line)
    if (sample === null) continue
    const labels = add(sample[1]!.replace(/_(bucket|sum|count)$/, ''))
    for (const m of (sample[2] ?? '').matchAll(/(\w+)="/g)) labels.add(m[1]!)
  }
  return metrics
}

/** Label names in `metric{…}` selectors of an expression, per metric (histogram suffixes removed). */
function selectorLabels(expr: string): Array<{ metric: string; label: string }> {
  const out: Array<{ metric: string; label: string }> = []
  for (const m of expr.matchAll(/\b(pollen_[a-z_]+)\{([^}]*)\}/g)) {
    const metric = m[1]!.replace(/_(bucket|sum|count)$/, '')
    for (const l of m[2]!.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) out.push({ metric, label: l[1]! })
  }
  return out
}

// Target labels that Prometheus adds when it scrapes, not the exporters.
const TARGET_LABELS = new Set(['instance', 'job', 'node'])

describeWithBinaries(['docker-registry'], 'the metrics the dashboard and the alert rules use', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let agent: AgentProcess
  let exported: { seed: Map<string, Set<string>>; agent: Map<string, Set<string>> }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-deploy-metrics-'))
    registry = await startRegistry({})
    const image = await buildImage(join(work, 'img'), { layers: [200_000, 10_000], seed: 'deploy-metrics' })
    await pushImage(registry.url, 'team/app', 'v1', image)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    agent = await startAgentProcess(['--data', join(work, 'agent'), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())])
    // One pull and one refused request, so that labelled series exist.
    await pullImage(agent.url, 'team/app', 'v1', registry.host)
    expect((await fetch(`${seed.url}/v2/team/app/manifests/v1`, { signal: AbortSignal.timeout(10_000) })).status).toBe(401)
    const scrape = async (opsUrl: string) => exposition(await (await fetch(`${opsUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text())
    exported = { seed: await scrape(seed.opsUrl), agent: await scrape(agent.opsUrl) }
  })
  afterAll(async () => {
    await agent?.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('are all exported by the running seed and agent', () => {
    const missing: string[] = []
    for (const { where, expr } of monitoringExpressions()) {
      for (const name of pollenMetricNames(expr)) {
        const from = name.startsWith('pollen_seed_') ? exported.seed : exported.agent
        if (!from.has(name)) missing.push(`${name} (${where})`)
      }
    }
    expect(missing).toEqual([])
  })

  it('are selected by labels their series carry', () => {
    const wrong: string[] = []
    for (const { where, expr } of monitoringExpressions()) {
      for (const { metric, label } of selectorLabels(expr)) {
        if (TARGET_LABELS.has(label)) continue
        const labels = (metric.startsWith('pollen_seed_') ? exported.seed : exported.agent).get(metric)
        // A labelled counter that never counted has no series to show its labels.
        if (labels === undefined || labels.size === 0) continue
        if (!labels.has(label)) wrong.push(`${metric}{${label}} (${where}); it has ${[...labels].join(', ')}`)
      }
    }
    expect(wrong).toEqual([])
  })
})
