import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'

/** One readiness check's outcome, as shown in the `/readyz` body. */
export interface ReadinessCheck {
  name: string
  ok: boolean
  detail?: string
}

export interface HealthComponents {
  /** Runs the readiness checks; the component is ready when every check is ok. */
  readiness: () => Promise<ReadinessCheck[]>
  /** How the component is serving now (the agent: `standalone`, `seed` or `cache-only`), shown as `mode` in the `/readyz` body. */
  mode?: () => string
}

/** The `/readyz` body. */
export interface ReadinessReport {
  status: 'ready' | 'not ready'
  mode?: string
  checks: ReadinessCheck[]
}

/**
 * Answers `/healthz` (the process is alive: always 200, `{"status":"ok"}`) and `/readyz`
 * (200 when every check passes, 503 otherwise, with a ReadinessReport as JSON). Returns false for other paths.
 */
export function healthHandler(c: HealthComponents): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok' })
      return true
    }
    if (path === '/readyz') {
      const report = (checks: ReadinessCheck[]): ReadinessReport => {
        const ok = checks.every((k) => k.ok)
        const mode = c.mode?.()
        return { status: ok ? 'ready' : 'not ready', ...(mode === undefined ? {} : { mode }), checks }
      }
      c.readiness().then(
        (checks) => sendJson(res, checks.every((k) => k.ok) ? 200 : 503, report(checks)),
        (err: unknown) => sendJson(res, 503, report([{ name: 'readiness', ok: false, detail: (err as Error).message }])),
      )
      return true
    }
    return false
  }
}

export interface OpsServerComponents extends HealthComponents {
  metrics: Registry
  /** Further endpoints (the agent's `/v1/status`); returns true when it answered. */
  routes?: (req: IncomingMessage, res: ServerResponse) => boolean
}

/** The operations listener: `/metrics` (Prometheus text), `/healthz`, `/readyz`, and `routes`. */
export function createOpsServer(c: OpsServerComponents): Server {
  const health = healthHandler(c)
  return createServer((req, res) => {
    if (health(req, res)) return
    if (c.routes?.(req, res) === true) return
    if ((req.url ?? '').split('?')[0] === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      c.metrics.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': c.metrics.contentType })
          res.end(req.method === 'HEAD' ? undefined : text)
        },
        () => sendJson(res, 500, { status: 'metrics collection failed' }),
      )
      return
    }
    sendJson(res, 404, { status: 'not found' })
  })
}

/** Answers `body` as JSON with `status`; never cached. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json), 'Cache-Control': 'no-store' })
  res.end(json)
}

/** The readiness check every component has: its data directory is writable. */
export async function storeReadiness(store: { checkWritable(): Promise<void> }): Promise<ReadinessCheck> {
  return store.checkWritable().then(
    () => ({ name: 'store', ok: true }),
    (err: Error) => ({ name: 'store', ok: false, detail: `data directory not writable: ${err.message}` }),
  )
}

/** Listens on host:port and returns `http://host:port` (the port actually bound). */
export async function listen(server: Server, host: string, port: number): Promise<string> {
  server.listen(port, host)
  await once(server, 'listening')
  const address = server.address() as AddressInfo
  const h = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${h}:${address.port}`
}

/** Closes servers after cutting their open connections (in-flight downloads end). */
export async function closeServers(...servers: Array<Server | undefined>): Promise<void> {
  await Promise.all(
    servers.map(async (server) => {
      if (server === undefined) return
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }),
  )
}
