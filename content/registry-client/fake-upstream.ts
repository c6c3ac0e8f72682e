import type { PollenError } from '../../protocol/errors.js'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * Loopback HTTP servers that play upstream registries, token realms and CDNs in tests.
 * Each records the requests it received.
 */

export interface RecordedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void

export interface FakeServer {
  /** `http://host:port` */
  url: string
  /** `host:port` */
  host: string
  requests: RecordedRequest[]
  /** Replaceable at any time. */
  handler: Handler
  close(): Promise<void>
}

/** Starts a server on `address` (127.0.0.1 unless told) and a free port. */
export async function startServer(handler: Handler, address = '127.0.0.1'): Promise<FakeServer> {
  const server = createServer((req, res) => {
    fake.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    fake.handler(req, res)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, address, resolve)
  })
  const { port } = server.address() as AddressInfo
  const fake: FakeServer = {
    url: `http://${address}:${port}`,
    host: `${address}:${port}`,
    requests: [],
    handler,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  return fake
}

/** Writes a JSON body with Content-Length. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

/** An OCI error response. */
export function sendOciError(res: ServerResponse, status: number, code: string, message = code.toLowerCase(), headers: Record<string, string> = {}): void {
  sendJson(res, status, { errors: [{ code, message }] }, headers)
}

export interface BlobServing {
  /** Honour `Range: bytes=N-` with 206 (default true). */
  ranges?: boolean
}

/** Serves `bytes` as a blob body for GET/HEAD, with Range support unless turned off. */
export function serveBlob(req: IncomingMessage, res: ServerResponse, bytes: Buffer, o: BlobServing = {}): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
  if (m !== null && o.ranges !== false) {
    const start = Number(m[1])
    if (start >= bytes.byteLength) {
      res.writeHead(416, { 'content-range': `bytes */${bytes.byteLength}` })
      res.end()
      return
    }
    res.writeHead(206, { 'content-length': bytes.byteLength - start, 'content-range': `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}` })
    res.end(req.method === 'HEAD' ? undefined : bytes.subarray(start))
    return
  }
  res.writeHead(200, { 'content-length': bytes.byteLength, 'content-type': 'application/octet-stream' })
  res.end(req.method === 'HEAD' ? undefined : bytes)
}

/** Collects a stream into one Buffer. */
export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const chunk of stream) parts.push(chunk as Buffer)
  return Buffer.concat(parts)
}

export interface FakeRegistryOptions {
  /** How the registry authenticates /v2/ requests (default none). */
  auth?: 'none' | 'basic' | 'bearer'
  /** Required for Basic, and by the token endpoint when set. */
  credentials?: { username: string; password: string }
  /** Bearer realm; default `<own url>/token`, served by this server. */
  realm?: () => string
  /** The bearer token it issues and accepts. */
  token?: string
  /** `expires_in` of issued tokens (omitted when undefined). */
  expiresIn?: number
  /** Manifests by `<repo>/<reference>`. */
  manifests?: Map<string, { bytes: Buffer; mediaType: string }>
  /** Blobs by digest. */
  blobs?: Map<string, Buffer>
  /** Honour Range requests (default true). */
  ranges?: boolean
}

export interface FakeRegistry extends FakeServer {
  /** The registry's own behaviour, for handlers that wrap it. */
  readonly serve: Handler
  readonly token: string
}

/** A token endpoint handler: issues `token` to the right Basic credentials (or anyone, when none are set). */
export function tokenHandler(o: Pick<FakeRegistryOptions, 'credentials' | 'expiresIn'> & { token: string }): Handler {
  return (req, res) => {
    if (o.credentials !== undefined && req.headers.authorization !== basicOf(o.credentials)) {
      sendOciError(res, 401, 'UNAUTHORIZED')
      return
    }
    sendJson(res, 200, o.expiresIn === undefined ? { token: o.token } : { token: o.token, expires_in: o.expiresIn })
  }
}

/** Starts a minimal pull-only registry. */
export async function startRegistry(o: FakeRegistryOptions = {}, address = '127.0.0.1'): Promise<FakeRegistry> {
  const token = o.token ?? 'registry-token-7f3a9c'
  const fake = await startServer(() => {}, address)
  const issue = tokenHandler({ credentials: o.credentials, expiresIn: o.expiresIn, token })
  const serve: Handler = (req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake')
    if (url.pathname === '/token') return issue(req, res)
    if (o.auth === 'basic' && (o.credentials === undefined || req.headers.authorization !== basicOf(o.credentials))) {
      return sendOciError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': 'Basic realm="fake registry"' })
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname)
    if (o.auth === 'bearer' && req.headers.authorization !== `Bearer ${token}`) {
      const realm = o.realm?.() ?? `${fake.url}/token`
      const scope = m === null ? '' : `,scope="repository:${m[1]}:pull"`
      return sendOciError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': `Bearer realm="${realm}",service="fake"${scope}` })
    }
    if (m === null) return sendOciError(res, 404, 'NAME_UNKNOWN')
    if (m[2] === 'manifests') {
      const manifest = o.manifests?.get(`${m[1]}/${m[3]}`)
      if (manifest === undefined) return sendOciError(res, 404, 'MANIFEST_UNKNOWN')
      res.writeHead(200, { 'content-type': manifest.mediaType, 'content-length': manifest.bytes.byteLength })
      return res.end(req.method === 'HEAD' ? undefined : manifest.bytes)
    }
    const blob = o.blobs?.get(m[3] ?? '')
    if (blob === undefined) return sendOciError(res, 404, 'BLOB_UNKNOWN')
    serveBlob(req, res, blob, { ranges: o.ranges })
  }
  fake.handler = serve
  return Object.assign(fake, { serve, token })
}

/** The Authorization value of Basic credentials. */
export function basicOf(c: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`
}

/** Resolves with the error `p` rejects with; throws when it resolves. */
export async function failure(p: Promise<unknown>): Promise<PollenError> {
  try {
    await p
  } catch (err) {
    return err as PollenError
  }
  throw new Error('expected a rejection')
}
