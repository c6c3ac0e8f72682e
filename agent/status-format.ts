import { formatDuration, formatSize, percent } from '../protocol/human-units.js'
import type { AgentStatusReport, StatusLogEntry } from './status-report.js'

/**
 * A status report as read off the wire: any field may be missing (an older or newer agent),
 * so every one is optional here and shown as `unknown` when absent.
 */
export type StatusInput = DeepPartial<AgentStatusReport>

type DeepPartial<T> = T extends Array<infer U> ? Array<DeepPartial<U>> : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> | null } : T

/** The agent's `/readyz` answer: ready or not, and the checks that failed. */
export interface Readiness {
  ready: boolean
  /** Failed checks as `name: detail`. */
  failed: string[]
}

const UNKNOWN = 'unknown'
const LABEL_WIDTH = 13

/**
 * The report as a short aligned table, like `kubectl describe`: one `Label:  value` line per
 * aspect, then the last errors indented below. `now` is the reader's clock (ms since the epoch).
 */
export function formatStatus(report: StatusInput, readiness: Readiness | undefined, url: string, now: number): string {
  const rows: Array<[string, string]> = [
    ['Agent', agentLine(report, url)],
    ['Ready', readiness === undefined ? UNKNOWN : readiness.ready ? 'yes' : `no${readiness.failed.length === 0 ? '' : ` (${readiness.failed.join('; ')})`}`],
    ['Mode', modeLine(report.mode)],
    ['PeerId', report.peerId ?? (report.peerId === null ? 'none (no p2p, not enrolled)' : UNKNOWN)],
    ['Seed', seedLine(report, now)],
    ['Token', tokenLine(report, now)],
    ['Cache', cacheLine(report.cache)],
    ['Peers', peersLine(report.peers)],
  ]
  const errors = report.lastErrors ?? undefined
  rows.push(['Last errors', errors === undefined ? UNKNOWN : errors.length === 0 ? 'none' : ''])
  let text = rows.map(([label, value]) => `${`${label}:`.padEnd(LABEL_WIDTH)}${value}`.trimEnd()).join('\n')
  const lines = (errors ?? []).map((e) => errorColumns(e ?? {}, now))
  const widths = [0, 1].map((i) => Math.max(0, ...lines.map((l) => l[i]!.length)))
  for (const [when, level, what] of lines) text += `\n  ${[when.padEnd(widths[0]!), level.padEnd(widths[1]!), what].join('  ')}`.trimEnd()
  return `${text}\n`
}

function agentLine(r: StatusInput, url: string): string {
  const about = [r.version === undefined ? undefined : `pollen ${r.version}`, typeof r.uptimeSeconds === 'number' ? `up ${formatDuration(r.uptimeSeconds * 1000)}` : undefined].filter(
    (s) => s !== undefined,
  )
  return about.length === 0 ? url : `${url} (${about.join(', ')})`
}

function modeLine(mode: string | null | undefined): string {
  switch (mode) {
    case 'standalone':
      return 'standalone (no seed: pulls from registries itself)'
    case 'seed':
      return 'seed'
    case 'cache-only':
      return 'cache-only (the seed does not answer: serving from cache and peers)'
    default:
      return mode ?? UNKNOWN
  }
}

function seedLine(r: StatusInput, now: number): string {
  const seed = r.seed
  if (seed === null) return 'none (standalone)'
  if (seed === undefined) return UNKNOWN
  const url = seed.url ?? UNKNOWN
  const last = seed.lastError ?? undefined
  const lastText = last === undefined ? undefined : `${last.message ?? 'error'}${ago(last.time, now)}`
  if (seed.checkedAt === null) return `${url}, not checked yet`
  if (seed.reachable === true) return `${url}, reachable${lastText === undefined ? '' : ` (last error: ${lastText})`}`
  if (seed.reachable === false) return `${url}, unreachable${lastText === undefined ? '' : ` (${lastText})`}`
  return `${url}, ${UNKNOWN}`
}

function tokenLine(r: StatusInput, now: number): string {
  const t = r.token
  if (t === undefined || t === null) return UNKNOWN
  if (t.enrolled === false) return r.seed === null ? 'not used (standalone)' : 'not enrolled (no join token or OIDC token file)'
  const expiresAt = t.expiresAt === undefined || t.expiresAt === null ? undefined : Date.parse(t.expiresAt)
  if (expiresAt === undefined || Number.isNaN(expiresAt)) return t.valid === true ? 'valid' : 'none yet (enrolling)'
  const left = expiresAt - now
  if (t.valid === true) return left > 0 ? `valid, expires in ${formatDuration(left)}` : 'valid'
  return left > 0 ? `not valid (expires in ${formatDuration(left)})` : `expired ${formatDuration(-left)} ago`
}

function cacheLine(cache: StatusInput['cache']): string {
  if (cache === undefined || cache === null || typeof cache.bytes !== 'number') return UNKNOWN
  if (typeof cache.capacity !== 'number' || cache.capacity <= 0) return formatSize(cache.bytes)
  return `${formatSize(cache.bytes)} of ${formatSize(cache.capacity)} (${percent(cache.bytes, cache.capacity)}%)`
}

function peersLine(peers: StatusInput['peers']): string {
  if (peers === undefined || peers === null) return UNKNOWN
  if (peers.enabled === false) return 'p2p off'
  return `${peers.connected ?? '?'} connected, ${peers.routingTable ?? '?'} in routing table`
}

/** One logged error as [when, level, what]. */
function errorColumns(e: DeepPartial<StatusLogEntry>, now: number): [string, string, string] {
  const when = e.time === undefined || e.time === null ? '' : ago(e.time, now).replace(/^, /, '')
  const what = [e.component, e.msg].filter((s) => s !== undefined && s !== null && s !== '').join(': ')
  return [when, e.level ?? '', `${what}${e.err === undefined || e.err === null ? '' : `: ${e.err}`}`]
}

/** `, 3m12s ago` for an ISO time (`, just now` within a second); empty when it does not parse. */
function ago(iso: string | null | undefined, now: number): string {
  const t = iso === undefined || iso === null ? NaN : Date.parse(iso)
  if (Number.isNaN(t)) return ''
  const d = now - t
  return d < 1000 ? ', just now' : `, ${formatDuration(d)} ago`
}
