import { once } from 'node:events'
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface FaultyProxyOptions {
  /** Where requests go, e.g. `http://127.0.0.1:5000`. */
  target: string
  /** Cut the connection after this many body bytes of a matching response… */
  cutAfterBytes?: number
  /** …for this many matching responses (default 1). */
  cuts?: number
  /** Which requests the faults apply to (default: blob GETs). */
  matches?: (req: IncomingMessage) => boolean
  /** Slow every response body to about this many bytes per second. */
  bytesPerSecond?: number
}

export interface FaultyProxy {
  url: string
  /** Every request seen, with its Range header. */
  requests: Array<{ method: string; url: string; range?: string }>
  /** Matching responses that were cut so far. */
  cutsDone(): number
  stop(): Promise<void>
}

/**
 * An HTTP proxy on loopback that injects faults into responses: it cuts the connection after
 * N body bytes (a seed that dies mid-blob), and/or throttles bodies. Requests are bounded by a deadline.
 */
export async function startFaultyProxy(opts: FaultyProxyOptions): Promise<FaultyProxy> {
  const target = new URL(opts.target)
  const requests: FaultyProxy['requests'] = []
  const matches = opts.matches ?? ((req: IncomingMessage) => req.method === 'GET' && (req.url ?? '').includes('/blobs/'))
  let cutsLeft = opts.cutAfterBytes === undefined ? 0 : (opts.cuts ?? 1)
  let cutsDone = 0
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', range: req.headers.range })
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, signal: AbortSignal.timeout(120_000) },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        const cut = cutsLeft > 0 && matches(req) && up.statusCode !== undefined && up.statusCode < 300
        if (cut) cutsLeft--
        let sent = 0
        const started = Date.now()
        up.on('data', (chunk: Buffer) => {
          if (cut && sent + chunk.byteLength >= opts.cutAfterBytes!) {
            res.write(chunk.subarray(0, opts.cutAfterBytes! - sent))
            cutsDone++
            up.destroy()
            res.socket?.destroy()
            return
          }
          sent += chunk.byteLength
          const ok = res.write(chunk)
          const rate = opts.bytesPerSecond
          const ahead = rate === undefined ? 0 : (sent / rate) * 1000 - (Date.now() - started)
          if (!ok || ahead > 0) {
            up.pause()
            const resume = (): void => void up.resume()
            if (!ok) res.once('drain', () => (ahead > 0 ? setTimeout(resume, ahead) : resume()))
            else setTimeout(resume, ahead)
          }
        })
        up.on('end', () => res.end())
        up.on('error', () => res.destroy())
      },
    )
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    cutsDone: () => cutsDone,
    async stop() {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
}
