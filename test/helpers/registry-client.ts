import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { request, type Dispatcher } from 'undici'
import type { BlobFile } from './blob-file.js'

/** Credentials for a registry; used for Basic directly or to fetch Bearer tokens from the realm. */
export interface RegistryAuth {
  username: string
  password: string
}

export interface FetchedManifest {
  bytes: Buffer
  /** Content-Type as served, parameters stripped. */
  mediaType: string
  /** sha256 of the bytes as received (not the header's claim). */
  digest: string
  /** The Docker-Content-Digest header, if any. */
  headerDigest: string | undefined
}

export interface SendInit {
  headers?: Record<string, string>
  /** A factory, because the request may be replayed after an auth challenge. */
  body?: () => Readable | Buffer | string
  timeoutMs?: number
}

/** A non-success HTTP answer from a registry or token realm. */
export class RegistryHttpError extends Error {
  constructor(readonly method: string, readonly url: string, readonly status: number, detail: string) {
    super(`${method} ${url} answered ${status}${detail ? `: ${detail}` : ''}`)
    this.name = 'RegistryHttpError'
  }
}

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ')

const DEFAULT_TIMEOUT_MS = 30_000
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024
const MAX_ERROR_DETAIL = 500

/**
 * Minimal distribution-API client for tests. One instance = one auth session: after the
 * first 401 challenge (Basic, or Bearer via the realm with Basic creds) it remembers the
 * working Authorization header and sends it up front; a later 401 (e.g. a pull-only token
 * meeting a push) triggers one fresh challenge round and a single retry. Every request has
 * an AbortSignal.timeout. Bodies are streamed; nothing large is buffered.
 */
export class RegistryClient {
  private authorization: string | undefined
  readonly baseUrl: string

  constructor(baseUrl: string, private readonly auth?: RegistryAuth, private readonly timeoutMs = DEFAULT_TIMEOUT_MS) {
    this.baseUrl = baseUrl.replace(/\/+$/, '')
  }

  /** Sends a request, answering at most one auth challenge. The caller owns (must consume) the body. */
  async send(method: string, target: string | URL, init: SendInit = {}): Promise<Dispatcher.ResponseData> {
    const url = new URL(target, this.baseUrl + '/')
    const res = await this.raw(method, url, init, this.authorization)
    if (res.statusCode !== 401 || !this.auth) return res
    const challenge = parseWwwAuthenticate(res.headers['www-authenticate'])
    if (!challenge) return res
    await res.body.dump()
    this.authorization = await this.answer(challenge)
    return this.raw(method, url, init, this.authorization)
  }

  async blobExists(repo: string, digest: string): Promise<boolean> {
    const res = await this.send('HEAD', `/v2/${repo}/blobs/${digest}`)
    await res.body.dump()
    if (res.statusCode === 200) return true
    if (res.statusCode === 404) return false
    throw new RegistryHttpError('HEAD', `/v2/${repo}/blobs/${digest}`, res.statusCode, '')
  }

  /** Monolithic upload (POST then PUT ?digest=) streaming the file; skipped when HEAD finds the blob. */
  async pushBlob(repo: string, file: BlobFile): Promise<'uploaded' | 'existed'> {
    if (await this.blobExists(repo, file.digest)) return 'existed'
    const start = await this.send('POST', `/v2/${repo}/blobs/uploads/`, { headers: { 'content-length': '0' } })
    await expectStatus(start, 'POST', `/v2/${repo}/blobs/uploads/`, [202])
    const location = header(start.headers, 'location')
    if (!location) throw new Error(`POST /v2/${repo}/blobs/uploads/ gave no Location`)
    const put = new URL(location, this.baseUrl + '/')
    put.searchParams.set('digest', file.digest)
    const res = await this.send('PUT', put, {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(file.size) },
      body: () => createReadStream(file.path),
      timeoutMs: transferTimeout(file.size, this.timeoutMs),
    })
    await expectStatus(res, 'PUT', put.pathname, [201])
    return 'uploaded'
  }

  /** PUTs a manifest; returns its sha256 digest, checked against Docker-Content-Digest. */
  async pushManifest(repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const path = `/v2/${repo}/manifests/${reference}`
    const res = await this.send('PUT', path, {
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: () => bytes,
    })
    await expectStatus(res, 'PUT', path, [201])
    const digest = sha256(bytes)
    const claimed = header(res.headers, 'docker-content-digest')
    if (claimed !== undefined && claimed !== digest) throw new Error(`PUT ${path}: registry says ${claimed}, bytes hash to ${digest}`)
    return digest
  }

  async fetchManifest(repo: string, reference: string, accept = MANIFEST_ACCEPT): Promise<FetchedManifest> {
    const path = `/v2/${repo}/manifests/${reference}`
    const res = await this.send('GET', path, { headers: { accept } })
    await expectStatus(res, 'GET', path, [200])
    const declared = Number(header(res.headers, 'content-length') ?? '0')
    if (declared > MAX_MANIFEST_BYTES) {
      await res.body.dump()
      throw new Error(`GET ${path}: manifest of ${declared} bytes exceeds ${MAX_MANIFEST_BYTES}`)
    }
    const bytes = Buffer.from(await res.body.arrayBuffer())
    return {
      bytes,
      mediaType: (header(res.headers, 'content-type') ?? '').split(';')[0]!.trim(),
      digest: sha256(bytes),
      headerDigest: header(res.headers, 'docker-content-digest'),
    }
  }

  /** Streams a blob to `destPath`, following one redirect, and verifies its digest (deleting the file on mismatch). */
  async fetchBlob(repo: string, digest: string, destPath: string): Promise<BlobFile> {
    const path = `/v2/${repo}/blobs/${digest}`
    let res = await this.send('GET', path)
    if ([301, 302, 303, 307, 308].includes(res.statusCode)) {
      const location = header(res.headers, 'location')
      await res.body.dump()
      if (!location) throw new Error(`GET ${path}: redirect without Location`)
      const next = new URL(location, this.baseUrl + '/')
      const sameOrigin = next.origin === new URL(this.baseUrl).origin
      res = await this.raw('GET', next, {}, sameOrigin ? this.authorization : undefined)
    }
    await expectStatus(res, 'GET', path, [200])
    const hash = createHash('sha256')
    let size = 0
    await pipeline(
      res.body,
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          hash.update(chunk)
          size += chunk.length
          yield chunk
        }
      },
      createWriteStream(destPath),
    )
    const got = `sha256:${hash.digest('hex')}`
    if (got !== digest) {
      await rm(destPath, { force: true })
      throw new Error(`GET ${path}: content hashes to ${got}`)
    }
    return { path: destPath, digest, size }
  }

  private async raw(method: string, url: URL, init: SendInit, authorization: string | undefined): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { ...init.headers }
    if (authorization) headers.authorization = authorization
    return request(url, {
      method: method as Dispatcher.HttpMethod,
      headers,
      body: init.body?.() ?? null,
      signal: AbortSignal.timeout(init.timeoutMs ?? this.timeoutMs),
    })
  }

  /** Turns a challenge into an Authorization header value. */
  private async answer(challenge: Challenge): Promise<string> {
    const auth = this.auth!
    const basic = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`
    if (challenge.scheme === 'basic') return basic
    const realm = challenge.params.realm
    if (!realm) throw new Error('Bearer challenge without realm')
    const tokenUrl = new URL(realm)
    if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service)
    for (const scope of (challenge.params.scope ?? '').split(' ')) if (scope) tokenUrl.searchParams.append('scope', scope)
    tokenUrl.searchParams.set('account', auth.username)
    const res = await request(tokenUrl, {
      method: 'GET',
      headers: { authorization: basic },
      signal: AbortSignal.timeout(this.timeoutMs),
    })
    await expectStatus(res, 'GET', tokenUrl.toString(), [200])
    const body = (await res.body.json()) as { token?: string; access_token?: string }
    const token = body.token ?? body.access_token
    if (!token) throw new Error(`token realm ${realm} returned no token`)
    return `Bearer ${token}`
  }
}

export interface Challenge {
  scheme: 'basic' | 'bearer'
  params: Record<string, string>
}

/**
 * Parses the first Basic or Bearer challenge, e.g.
 * `Bearer realm="http://h/token",service="s",scope="repository:a:pull,push"`.
 * Returns undefined for anything else.
 */
export function parseWwwAuthenticate(value: string | string[] | undefined): Challenge | undefined {
  const headers = value === undefined ? [] : Array.isArray(value) ? value : [value]
  for (const text of headers) {
    const match = /^\s*(Basic|Bearer)\b\s*(.*)$/i.exec(text)
    if (!match) continue
    const params: Record<string, string> = {}
    const param = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/gy
    const rest = match[2]!
    let m: RegExpExecArray | null
    while ((m = param.exec(rest)) !== null && m[0] !== '') {
      params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '')
    }
    return { scheme: match[1]!.toLowerCase() as 'basic' | 'bearer', params }
  }
  return undefined
}

async function expectStatus(res: Dispatcher.ResponseData, method: string, url: string, ok: number[]): Promise<void> {
  if (ok.includes(res.statusCode)) return
  let detail = ''
  try {
    detail = (await res.body.text()).slice(0, MAX_ERROR_DETAIL).trim()
  } catch {
    // body unreadable; the status says enough
  }
  throw new RegistryHttpError(method, url, res.statusCode, detail)
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

/** Allows at least ~10 MB/s on top of the base timeout. */
function transferTimeout(size: number, base: number): number {
  return base + Math.ceil(size / 10_000)
}
