import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { CachingSource } from '../../content/caching-source.js'
import { headerValue, sendBlob, sendError } from '../../content/http-response.js'
import { normaliseManifestAccept } from '../../protocol/media-types.js'
import { PollenError, RegistryUnknownError } from '../../protocol/errors.js'
import { repositoryKey, type Repository } from '../../protocol/reference.js'
import { parseRegistryPath, type RegistryRoute } from '../../protocol/registry-path.js'
import { BLOB_OPEN_DEADLINE_MS, MANIFEST_DEADLINE_MS } from '../constants.js'
import type { ManifestService } from '../../content/manifest-service.js'
import type { SeedMetrics } from '../metrics.js'

export interface RegistryServerInit {
  /** The registry that a request without `?ns=` means. */
  defaultNs: string
  /** Registries this seed serves (the keys of its upstream map). */
  registries: ReadonlySet<string>
}

export interface RegistryServerComponents {
  blobs: CachingSource
  manifests: ManifestService
  metrics: SeedMetrics
  logger: Logger
  /** Answers /healthz and /readyz on this listener too. */
  health: (req: IncomingMessage, res: ServerResponse) => boolean
}

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' }

/**
 * The seed's OCI pull API: `GET`/`HEAD` of `/v2/`, manifests and blobs, `?ns=` selecting
 * the upstream. Every failure is answered as OCI error JSON; nothing here writes outside the store.
 */
export function createRegistryServer(init: RegistryServerInit, c: RegistryServerComponents): Server {
  const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 0, headersTimeout: 30_000 }, (req, res) => {
    const started = process.hrtime.bigint()
    let route = 'other'
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      c.metrics.requestDuration.observe({ method: req.method ?? '', route, status: String(res.statusCode) }, seconds)
    })
    handle(req, res, (r) => (route = r)).catch((err: unknown) => {
      if (!(err instanceof PollenError)) c.logger.error({ err, url: req.url, method: req.method }, 'request failed')
      sendError(res, err)
    })
  })
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    else socket.destroy()
  })
  return server

  async function handle(req: IncomingMessage, res: ServerResponse, setRoute: (r: string) => void): Promise<void> {
    if (c.health(req, res)) return setRoute('health')
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new PollenError('MethodNotAllowedError', 'UNSUPPORTED', `method ${String(req.method).slice(0, 16)} is not supported; this is a pull-only registry`)
    }
    const parsed: RegistryRoute = parseRegistryPath(req.url ?? '/', init.defaultNs)
    setRoute(parsed.kind)
    switch (parsed.kind) {
      case 'base':
        res.writeHead(200, { ...API_VERSION, 'Content-Type': 'application/json', 'Content-Length': 2 })
        res.end(req.method === 'HEAD' ? undefined : '{}')
        return
      case 'unknown':
        throw new PollenError('RouteUnknownError', 'NAME_UNKNOWN', 'no such endpoint in the pull API')
      case 'manifest': {
        requireRegistry(parsed.repository)
        // The fetch may be shared with other clients, so only the deadline bounds it.
        const accept = normaliseManifestAccept(headerValue(req.headers.accept))
        const m = await c.manifests.get(parsed.repository, parsed.reference, { signal: AbortSignal.timeout(MANIFEST_DEADLINE_MS), accept })
        res.writeHead(200, {
          ...API_VERSION,
          'Content-Type': m.mediaType,
          'Content-Length': m.bytes.byteLength,
          'Docker-Content-Digest': m.digest,
          ETag: `"${m.digest}"`,
        })
        if (req.method === 'HEAD') res.end()
        else {
          res.end(m.bytes)
          c.metrics.servedBytes.inc({ kind: 'manifest' }, m.bytes.byteLength)
        }
        return
      }
      case 'blob': {
        requireRegistry(parsed.repository)
        const signal = requestSignal(res, BLOB_OPEN_DEADLINE_MS)
        const blob = await c.blobs.acquire(parsed.digest, { repository: parsed.repository, signal })
        const result = await sendBlob(req, res, blob).catch((err: unknown) => {
          if (!res.headersSent) throw err
          c.logger.warn({ digest: parsed.digest.value, repository: repositoryKey(parsed.repository), err: (err as Error).message }, 'blob response cut short')
          return { bytes: 0, status: res.statusCode }
        })
        c.metrics.servedBytes.inc({ kind: 'blob' }, result.bytes)
        return
      }
    }
  }

  function requireRegistry(repository: Repository): void {
    if (!init.registries.has(repository.ns)) throw new RegistryUnknownError(repository.ns)
  }
}

/** A signal that fires when the client goes away before the response finished, or the deadline passes. */
function requestSignal(res: ServerResponse, deadlineMs: number): AbortSignal {
  const gone = new AbortController()
  res.once('close', () => {
    if (!res.writableFinished) gone.abort(new Error('client disconnected'))
  })
  return AbortSignal.any([gone.signal, AbortSignal.timeout(deadlineMs)])
}
