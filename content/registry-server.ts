import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { CachingSource } from './caching-source.js'
import { BLOB_OPEN_DEADLINE_MS, MANIFEST_DEADLINE_MS } from './constants.js'
import { SendBudget } from './file-response.js'
import { headerValue, sendBlob, sendError } from './http-response.js'
import type { ManifestService } from './manifest-service.js'
import { normaliseManifestAccept } from '../protocol/media-types.js'
import { MethodNotAllowedError, PollenError, RegistryUnknownError } from '../protocol/errors.js'
import { ociErrorBody } from '../protocol/oci-errors.js'
import { repositoryKey, type Repository } from '../protocol/reference.js'
import { parseRegistryPath, type RegistryRoute } from '../protocol/registry-path.js'

export interface RegistryServerInit {
  /** The registry that a request without `?ns=` means. */
  defaultNs: string
  /** When given, only these registries are served; any other `ns` is NAME_UNKNOWN. */
  registries?: ReadonlySet<string>
  /**
   * Answer 403 DENIED where the error would be 401 UNAUTHORIZED: a mirror must never
   * challenge containerd, which would then try to authenticate against it.
   */
  neverChallenge?: boolean
  /** `WWW-Authenticate` value sent with a 401 answer to `req` (the seed's `Bearer realm=…,service=…`). */
  challenge?: (req: IncomingMessage) => string
  /** How long a blob request waits for the blob's size (default BLOB_OPEN_DEADLINE_MS). */
  blobOpenDeadlineMs?: number
  /** How long a manifest request waits for its sources (default MANIFEST_DEADLINE_MS). */
  manifestDeadlineMs?: number
}

/** What happened, for metrics. */
export interface RegistryServerEvents {
  request?(e: { method: string; route: string; status: number; seconds: number }): void
  manifestBytes?(n: number): void
  /** Blob body bytes sent; `source` is `local` for a committed blob, else the fill's source. */
  blobBytes?(n: number, source: string): void
}

export interface RegistryServerComponents {
  blobs: CachingSource
  manifests: ManifestService
  logger: Logger
  /** Answers /healthz and /readyz on this listener too. */
  health: (req: IncomingMessage, res: ServerResponse) => boolean
  /**
   * Admission check (the seed's bearer tokens) for manifest and blob requests, and for the
   * `/v2/` base with `repository` undefined; throws a PollenError (UNAUTHORIZED, DENIED) to
   * refuse. Absent: every request is admitted.
   */
  authorize?: (req: IncomingMessage, repository: Repository | undefined) => Promise<void>
  /** Other endpoints outside /v2/ (the seed's /v1/bootstrap); returns true when it answered. */
  routes?: (req: IncomingMessage, res: ServerResponse) => boolean
  events?: RegistryServerEvents
}

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' }
/** The methods of the pull API; any other is 405 with these in `Allow`. */
const PULL_METHODS: readonly string[] = ['GET', 'HEAD']
/** Request line plus headers larger than this are refused with 431 before any handler runs. */
const MAX_HEADER_BYTES = 16 * 1024

/**
 * The OCI pull API that seed and agent serve: `GET`/`HEAD` of `/v2/`, manifests and blobs,
 * `?ns=` selecting the registry. Every failure is answered as OCI error JSON; nothing here writes outside the store.
 */
export function createRegistryServer(init: RegistryServerInit, c: RegistryServerComponents): Server {
  // Cache-hit responses share one buffer budget (file-response.ts).
  const sendBudget = new SendBudget()
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: 0, headersTimeout: 30_000 }, (req, res) => {
    const started = process.hrtime.bigint()
    let route = 'other'
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      c.events?.request?.({ method: req.method ?? '', route, status: res.statusCode, seconds })
    })
    const refusals = new WeakSet<object>()
    const admit = async (repository: Repository | undefined): Promise<void> => {
      try {
        await c.authorize?.(req, repository)
      } catch (err) {
        if (typeof err === 'object' && err !== null) refusals.add(err)
        throw err
      }
    }
    handle(req, res, (r) => (route = r), admit).catch((err: unknown) => {
      if (!(err instanceof PollenError)) c.logger.error({ err, url: req.url, method: req.method }, 'request failed')
      const unauthorized = err instanceof PollenError && err.ociCode === 'UNAUTHORIZED'
      if (unauthorized && init.neverChallenge === true) sendError(res, asDenied(err))
      // Only our own admission refusals challenge: an upstream's 401 is not the client's to answer.
      else sendError(res, err, unauthorized && refusals.has(err) && init.challenge !== undefined ? { 'WWW-Authenticate': init.challenge(req) } : {})
    })
  })
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Answer only where nothing of another response went out on this connection (as Node's own handler does).
    const inFlight = (socket as { _httpMessage?: ServerResponse | null })._httpMessage
    if (socket.writable && (inFlight == null || !inFlight.headersSent)) socket.end(clientErrorResponse(err))
    else socket.destroy()
  })
  return server

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    setRoute: (r: string) => void,
    admit: (repository: Repository | undefined) => Promise<void>,
  ): Promise<void> {
    if (c.health(req, res)) return setRoute('health')
    if (c.routes?.(req, res) === true) return setRoute('other')
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowedError(String(req.method), PULL_METHODS)
    const parsed: RegistryRoute = parseRegistryPath(req.url ?? '/', init.defaultNs)
    setRoute(parsed.kind)
    switch (parsed.kind) {
      case 'base':
        await admit(undefined)
        res.writeHead(200, { ...API_VERSION, 'Content-Type': 'application/json', 'Content-Length': 2 })
        res.end(req.method === 'HEAD' ? undefined : '{}')
        return
      case 'unknown':
        throw new PollenError('RouteUnknownError', 'NAME_UNKNOWN', 'no such endpoint in the pull API')
      case 'manifest': {
        requireRegistry(parsed.repository)
        await admit(parsed.repository)
        // The fetch may be shared with other clients, so only the deadline bounds it.
        const accept = normaliseManifestAccept(headerValue(req.headers.accept))
        const manifestDeadlineMs = init.manifestDeadlineMs ?? MANIFEST_DEADLINE_MS
        const deadline = AbortSignal.timeout(manifestDeadlineMs)
        const m = await c.manifests.get(parsed.repository, parsed.reference, { signal: deadline, accept }).catch((err: unknown) => {
          throw pastDeadline(err, deadline, 'ManifestTimeoutError', `no source answered for the manifest within ${manifestDeadlineMs / 1000} s`)
        })
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
          c.events?.manifestBytes?.(m.bytes.byteLength)
        }
        return
      }
      case 'blob': {
        requireRegistry(parsed.repository)
        await admit(parsed.repository)
        const deadlineMs = init.blobOpenDeadlineMs ?? BLOB_OPEN_DEADLINE_MS
        const signal = requestSignal(res, deadlineMs)
        const blob = await c.blobs.acquire(parsed.digest, { repository: parsed.repository, signal }).catch((err: unknown) => {
          throw pastDeadline(err, signal, 'BlobOpenTimeoutError', `no source answered for the blob within ${deadlineMs / 1000} s`)
        })
        const result = await sendBlob(req, res, blob, sendBudget).catch((err: unknown) => {
          if (!res.headersSent) throw err
          c.logger.warn({ digest: parsed.digest.value, repository: repositoryKey(parsed.repository), err: (err as Error).message }, 'blob response cut short')
          return { bytes: 0, status: res.statusCode }
        })
        c.events?.blobBytes?.(result.bytes, blob.cached ? 'local' : (blob.source ?? 'remote'))
        return
      }
    }
  }

  function requireRegistry(repository: Repository): void {
    if (init.registries !== undefined && !init.registries.has(repository.ns)) throw new RegistryUnknownError(repository.ns)
  }
}

/**
 * The error a request's sources failed with, or, when its deadline passed (a DOMException,
 * not ours), a 503 that says so: no source answered in time is UNAVAILABLE, not a 500.
 */
function pastDeadline(err: unknown, deadline: AbortSignal, name: string, message: string): unknown {
  if (!deadline.aborted || (err as Error | undefined)?.name !== 'TimeoutError') return err
  if (err !== deadline.reason && !(err instanceof DOMException)) return err
  return new PollenError(name, 'UNAVAILABLE', message, { cause: err })
}

/**
 * The raw answer to a request Node's parser refused before any handler saw it: 431 with OCI
 * error JSON when the request line and headers passed MAX_HEADER_BYTES, 400 for anything
 * else malformed. The connection is closed either way.
 */
function clientErrorResponse(err: NodeJS.ErrnoException): string {
  if (err.code !== 'HPE_HEADER_OVERFLOW') return 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
  const json = JSON.stringify(ociErrorBody('UNSUPPORTED', `request header fields too large (the limit is ${MAX_HEADER_BYTES / 1024} KiB for the request line and headers)`))
  return `HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`
}

/** A signal that fires when the client goes away before the response finished, or the deadline passes. */
function requestSignal(res: ServerResponse, deadlineMs: number): AbortSignal {
  const gone = new AbortController()
  res.once('close', () => {
    if (!res.writableFinished) gone.abort(new Error('client disconnected'))
  })
  return AbortSignal.any([gone.signal, AbortSignal.timeout(deadlineMs)])
}

function asDenied(err: PollenError): PollenError {
  return new PollenError('AccessDeniedError', 'DENIED', err.message)
}
