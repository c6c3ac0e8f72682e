import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parser as promqlParser } from '@prometheus-io/lezer-promql'
import { parse, parseAllDocuments } from 'yaml'

/** Readers of the files under deploy/ and of the Dockerfile, for the deploy tests. */

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const KUBERNETES_DIR = join(ROOT, 'deploy', 'kubernetes')
export const ALERTS_FILE = join(ROOT, 'deploy', 'prometheus', 'pollen-alerts.yaml')
export const DASHBOARD_FILE = join(ROOT, 'deploy', 'grafana', 'pollen-fleet.json')

/** A Kubernetes object as parsed from YAML, with the file it came from. */
export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string> }
  spec?: any
  data?: Record<string, string>
  stringData?: Record<string, string>
  file: string
  [key: string]: unknown
}

/** Every YAML file under deploy/kubernetes, relative to it. */
export function kubernetesYamlFiles(): string[] {
  const out: string[] = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (/\.ya?ml$/.test(entry.name)) out.push(relative(KUBERNETES_DIR, path))
    }
  }
  walk(KUBERNETES_DIR)
  return out.sort()
}

/** Parses every document of a YAML file; throws naming the file on a syntax error. */
export function readYamlDocuments(path: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'))
  const list = Array.isArray(docs) ? docs : [docs]
  for (const doc of list) {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`)
  }
  return list.map((doc) => doc.toJS()).filter((v) => v !== null && v !== undefined)
}

export function readYaml(path: string): any {
  return parse(readFileSync(path, 'utf8'))
}

/** The kustomization.yaml files under deploy/kubernetes, relative to it (the base first). */
export function kustomizations(): string[] {
  return kubernetesYamlFiles().filter((f) => f.endsWith('kustomization.yaml'))
}

/** The objects a kustomization's `resources` list, with the kustomization's namespace applied. */
export function kustomizationObjects(kustomization: string): K8sObject[] {
  const k = readYaml(join(KUBERNETES_DIR, kustomization)) as { namespace?: string; resources: string[] }
  const dir = dirname(kustomization)
  return k.resources.flatMap((resource) => {
    const file = join(dir, resource)
    return (readYamlDocuments(join(KUBERNETES_DIR, file)) as K8sObject[]).map((o) => ({
      ...o,
      metadata: { ...o.metadata, ...(k.namespace === undefined || o.kind === 'Namespace' ? {} : { namespace: k.namespace }) },
      file,
    }))
  })
}

export interface Dockerfile {
  stages: Array<{ from: string; name?: string; instructions: Array<{ keyword: string; args: string }> }>
  args: Record<string, string>
}

/** The Dockerfile's stages and instructions (line continuations joined, comments dropped, global ARG defaults substituted in FROM). */
export function readDockerfile(): Dockerfile {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  const lines = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() !== '')
  const result: Dockerfile = { stages: [], args: {} }
  for (const line of lines) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line)
    if (m === null) throw new Error(`Dockerfile: cannot read "${line}"`)
    const keyword = m[1]!.toUpperCase()
    const args = m[2]!.trim()
    if (keyword === 'ARG' && result.stages.length === 0) {
      const [k, v] = args.split('=')
      result.args[k!] = v ?? ''
      continue
    }
    if (keyword === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)
      if (f === null) throw new Error(`Dockerfile: cannot read FROM ${args}`)
      const from = f[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => result.args[(a ?? b)!] ?? '')
      result.stages.push({ from, ...(f[2] === undefined ? {} : { name: f[2] }), instructions: [] })
      continue
    }
    const stage = result.stages.at(-1)
    if (stage === undefined) throw new Error(`Dockerfile: ${keyword} before FROM`)
    stage.instructions.push({ keyword, args })
  }
  return result
}

/** PromQL syntax errors in `expr` ("" when it parses), with Grafana's variables replaced by sample values. */
export function promqlErrors(expr: string): string {
  const query = expr
    .replace(/\$__(rate_)?interval/g, '5m')
    .replace(/\$\{?(\w+)\}?/g, '.*')
  const errors: string[] = []
  promqlParser.parse(query).iterate({
    enter: (node) => {
      if (node.type.isError) errors.push(`at ${node.from}: "${query.slice(Math.max(0, node.from - 20), node.to + 20)}"`)
    },
  })
  return errors.join('; ')
}

/** The Pollen metric names an expression refers to, with the histogram suffixes removed. */
export function pollenMetricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\bpollen_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')))]
}

/** Every PromQL expression in the alert rules and the dashboard, each with where it is. */
export function monitoringExpressions(): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = []
  const rules = readYaml(ALERTS_FILE) as { groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string }> }> }
  for (const group of rules.groups) for (const rule of group.rules) out.push({ where: `alert ${rule.alert ?? rule.record}`, expr: rule.expr })
  const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard
  for (const panel of dashboard.panels) for (const t of panel.targets ?? []) out.push({ where: `panel "${panel.title}" ${t.refId}`, expr: t.expr })
  for (const v of dashboard.templating.list) {
    const query = typeof v.query === 'string' ? v.query : v.query?.query
    if (v.type === 'query' && query !== undefined) out.push({ where: `variable ${v.name}`, expr: query.replace(/^label_values\((.*),\s*\w+\)$/, '$1') })
  }
  return out
}

export interface Dashboard {
  __inputs: Array<{ name: string; type: string; pluginId: string }>
  schemaVersion: number
  uid: string
  title: string
  panels: Array<{
    id: number
    type: string
    title: string
    datasource?: { type: string; uid: string }
    gridPos: { x: number; y: number; w: number; h: number }
    targets?: Array<{ refId: string; expr: string; datasource?: { type: string; uid: string } }>
  }>
  templating: { list: Array<{ name: string; type: string; query?: string | { query: string }; datasource?: { type: string; uid: string } }> }
}
