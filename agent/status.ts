import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendJson } from '../content/ops-server.js'
import type { RecentLog } from './status-log.js'
import { STATUS_PATH, STATUS_SCHEMA, type AgentMode, type AgentStatusReport } from './status-report.js'

/** What the status report is built from; every function is read at request time. */
export interface StatusComponents {
  version: string
  /** The seed's URL; undefined when standalone. */
  seedUrl?: string
  seed?: { readonly reachable: boolean; readonly unreachable: boolean; readonly checkedAt?: number; readonly lastError?: { time: number; message: string } }
  /** The libp2p PeerId, when the agent has an identity. */
  peerId?: string
  /** Present when the agent enrolls with the seed. */
  token?: { valid(): boolean; expiresAt(): number | undefined }
  cache: { bytes(): number; capacity: number }
  peers?: { connected(): number; routingTable(): number }
  recent: RecentLog
  startedAt: number
  now?: () => number
}

/** `standalone` without a seed, `cache-only` once a probe found the seed unreachable, else `seed`. */
export function agentMode(seedUrl: string | undefined, seed: { readonly unreachable: boolean } | undefined): AgentMode {
  if (seedUrl === undefined) return 'standalone'
  return seed?.unreachable === true ? 'cache-only' : 'seed'
}

/** Builds the /v1/status answer. */
export function statusReport(c: StatusComponents): AgentStatusReport {
  const now = (c.now ?? Date.now)()
  const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString())
  const expiresAt = c.token?.expiresAt()
  return {
    schema: STATUS_SCHEMA,
    version: c.version,
    peerId: c.peerId ?? null,
    mode: agentMode(c.seedUrl, c.seed),
    uptimeSeconds: Math.max(0, Math.floor((now - c.startedAt) / 1000)),
    seed:
      c.seedUrl === undefined
        ? null
        : {
            url: withoutUserInfo(c.seedUrl),
            reachable: c.seed?.reachable ?? false,
            checkedAt: iso(c.seed?.checkedAt),
            lastError: c.seed?.lastError === undefined ? null : { time: new Date(c.seed.lastError.time).toISOString(), message: c.seed.lastError.message },
          },
    token: { enrolled: c.token !== undefined, valid: c.token?.valid() ?? false, expiresAt: iso(expiresAt) },
    cache: { bytes: c.cache.bytes(), capacity: c.cache.capacity },
    peers: { enabled: c.peers !== undefined, connected: c.peers?.connected() ?? 0, routingTable: c.peers?.routingTable() ?? 0 },
    lastErrors: c.recent.entries(),
  }
}

/**
 * Answers `GET`/`HEAD` `/v1/status` with `build()` as JSON (405 for other methods), when
 * `allow(req)` resolves true (403 otherwise). Returns false for other paths.
 */
export function statusHandler(
  build: () => AgentStatusReport,
  allow: (req: IncomingMessage) => Promise<boolean> = async () => true,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if ((req.url ?? '').split('?')[0] !== STATUS_PATH) return false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': 0 })
      res.end()
      return true
    }
    allow(req).then(
      (ok) => (ok ? sendJson(res, 200, build()) : sendJson(res, 403, { status: 'forbidden' })),
      (err: unknown) => sendJson(res, 500, { status: 'status failed', detail: (err as Error).message }),
    )
    return true
  }
}

/** The `version` of the nearest package.json named `pollen` above this module (source or dist); `unknown` when none is found. */
export async function packageVersion(): Promise<string> {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(await readFile(new URL(up, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown }
      if (pkg.name === 'pollen' && typeof pkg.version === 'string') return pkg.version
    } catch {
      /* not there: try the next */
    }
  }
  return 'unknown'
}

function withoutUserInfo(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString().replace(/\/$/, '')
  } catch {
    return url
  }
}
