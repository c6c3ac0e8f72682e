import { once } from 'node:events'
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One request the proxy saw, and how it was answered. */
export interface UpstreamRequest {
  method: string
  path: string
  range?: string
  /** The status the seed got: the registry's, or the injected one. */
  status: number
  injected: boolean
  /** Body bytes forwarded so far (final once `done`). */
  bytes: number
  done: boolean
  /** Date.now() when the request arrived. */
  at: number
}

export interface FaultBurst {
  /** How many matching requests to fail, from now on. */
  count: number
  /** Which requests: manifest or blob GETs/HEADs only (default both). */
  only?: 'manifests' | 'blobs'
  /** Statuses used in turn (default 500, 429). */
  statuses?: number[]
  /** Seconds sent as `Retry-After` with a 429 (and 503); default 1. */
  retryAfterSeconds?: number
}

export interface UpstreamFaults {
  /** `http://127.0.0.1:PORT`: give it to the seed as the upstream's URL. */
  url: string
  requests: UpstreamRequest[]
  /**
   * The next `count` manifest and/or blob requests are answered with an error instead of being
   * forwarded. Bursts add up: a request takes a fault from the first armed burst it matches.
   */
  burst(burst: FaultBurst): void
  /** Faults still to inject. */
  pending(): number
  /** GETs of one blob: answered 2xx by the registry, and failed (injected or not). */
  blobGets(digest: string): { ok: number; failed: number; bytes: number }
  /** Called with every body chunk forwarded from the registry (blob and manifest bodies). */
  onBytes?: (n: number, req: UpstreamRequest) => void
  stop(): Promise<void>
}

const FAULTABLE = /^\/v2\/.+\/(manifests|blobs)\//

/**
 * An HTTP proxy on loopback between the seed and its upstream registry. It forwards every
 * request, records what each was answered, and on demand answers a burst of manifest and blob
 * requests with 500s and 429s (`Retry-After`, OCI error bodies) instead of forwarding them.
 */
export async function startUpstreamFaults(target: string): Promise<UpstreamFaults> {
  const to = new URL(target)
  const requests: UpstreamRequest[] = []
  const bursts: Array<{ count: number; only: FaultBurst['only']; statuses: number[]; retryAfterSeconds: number; injected: number }> = []
  const faults: UpstreamFaults = {
    url: '',
    requests,
    burst(b) {
      bursts.push({ count: b.count, only: b.only, statuses: b.statuses ?? [500, 429], retryAfterSeconds: b.retryAfterSeconds ?? 1, injected: 0 })
    },
    pending: () => bursts.reduce((n, b) => n + b.count - b.injected, 0),
    blobGets(digest) {
      const gets = requests.filter((r) => r.method === 'GET' && r.path.includes(`/blobs/${digest}`))
      const ok = gets.filter((r) => r.status >= 200 && r.status < 300)
      return { ok: ok.length, failed: gets.length - ok.length, bytes: ok.reduce((n, r) => n + r.bytes, 0) }
    },
    stop: async () => {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
  const server: Server = createServer((req, res) => {
    const entry: UpstreamRequest = { method: req.method ?? '', path: req.url ?? '', range: req.headers.range, status: 0, injected: false, bytes: 0, done: false, at: Date.now() }
    requests.push(entry)
    const kind = FAULTABLE.exec(entry.path)?.[1]
    const burst = kind === undefined ? undefined : bursts.find((b) => b.injected < b.count && (b.only === undefined || b.only === kind))
    if (burst !== undefined) {
      const status = burst.statuses[burst.injected++ % burst.statuses.length]!
      entry.status = status
      entry.injected = true
      entry.done = true
      const code = status === 429 ? 'TOOMANYREQUESTS' : 'UNKNOWN'
      const headers: Record<string, string> = { 'content-type': 'application/json' }
      if (status === 429 || status === 503) headers['retry-after'] = String(burst.retryAfterSeconds)
      req.resume()
      res.writeHead(status, headers).end(JSON.stringify({ errors: [{ code, message: `injected ${status}` }] }))
      return
    }
    const upstream = httpRequest({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers, signal: AbortSignal.timeout(120_000) }, (up: IncomingMessage) => {
      entry.status = up.statusCode ?? 502
      res.writeHead(entry.status, up.headers)
      up.on('data', (chunk: Buffer) => {
        entry.bytes += chunk.byteLength
        faults.onBytes?.(chunk.byteLength, entry)
        if (!res.write(chunk)) {
          up.pause()
          res.once('drain', () => up.resume())
        }
      })
      up.on('end', () => {
        entry.done = true
        res.end()
      })
      up.on('error', () => res.destroy())
    })
    upstream.on('error', () => {
      entry.status ||= 502
      res.destroy()
    })
    res.on('close', () => {
      if (!entry.done) upstream.destroy()
    })
    req.pipe(upstream)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  faults.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return faults
}
