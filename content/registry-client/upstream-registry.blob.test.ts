import { createHash, randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { collect, serveBlob, startRegistry, startServer, type FakeRegistry, type FakeRegistryOptions, type FakeServer } from './fake-upstream.js'
import { failure } from './fake-upstream.js'
import { UpstreamRegistry, type UpstreamInit } from './upstream-registry.js'

const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' })
const CREDS = { username: 'alice', password: 'pa55-xyzzy-secret' }
const BLOB = randomBytes(256 * 1024 + 13)
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`
const PATH = `/v2/library/app/blobs/${DIGEST}`

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.()
})

async function registry(o: FakeRegistryOptions = {}): Promise<FakeRegistry> {
  const r = await startRegistry({ blobs: new Map([[DIGEST, BLOB]]), ...o })
  cleanup.push(() => r.close())
  return r
}

async function cdn(address = '127.0.0.2'): Promise<FakeServer> {
  const s = await startServer((req, res) => serveBlob(req, res, BLOB), address)
  cleanup.push(() => s.close())
  return s
}

function client(r: FakeServer, init: Partial<UpstreamInit> = {}) {
  const bytes: number[] = []
  const codes: string[] = []
  const up = new UpstreamRegistry(
    { ns: r.host, url: r.url, ...init },
    { logger, metrics: { request: (_r, c) => codes.push(c), bytes: (_r, n) => bytes.push(n) }, sleep: async () => {} },
  )
  cleanup.push(() => up.close())
  return { up, bytes, codes }
}


const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)

describe('UpstreamRegistry blobs', () => {
  it('streams a whole blob with its size and counts the bytes as they flow', async () => {
    const r = await registry()
    const { up, bytes } = client(r)
    const { size, stream } = await up.openBlob('library/app', DIGEST)
    expect(size).toBe(BLOB.byteLength)
    expect((await collect(stream)).equals(BLOB)).toBe(true)
    expect(sum(bytes)).toBe(BLOB.byteLength)
    expect(r.requests[0]?.headers.range).toBeUndefined()
  })

  it('resumes from an offset with a Range request answered 206', async () => {
    const r = await registry()
    const { up } = client(r)
    const { size, stream } = await up.openBlob('library/app', DIGEST, { offset: 100_000 })
    expect(size).toBe(BLOB.byteLength)
    expect((await collect(stream)).equals(BLOB.subarray(100_000))).toBe(true)
    expect(r.requests[0]?.headers.range).toBe('bytes=100000-')
  })

  it('skips the first bytes itself when the upstream ignores Range and answers 200', async () => {
    const r = await registry({ ranges: false })
    const { up, bytes } = client(r)
    const { size, stream } = await up.openBlob('library/app', DIGEST, { offset: 100_000 })
    expect(size).toBe(BLOB.byteLength)
    expect((await collect(stream)).equals(BLOB.subarray(100_000))).toBe(true)
    expect(sum(bytes)).toBe(BLOB.byteLength)
  })

  it('refuses a 206 whose Content-Range does not start at the offset', async () => {
    const r = await registry()
    r.handler = (_req, res) => {
      res.writeHead(206, { 'content-range': `bytes 0-${BLOB.byteLength - 1}/${BLOB.byteLength}`, 'content-length': BLOB.byteLength })
      res.end(BLOB)
    }
    expect((await failure(client(r).up.openBlob('library/app', DIGEST, { offset: 10 }))).code).toBe('UpstreamProtocolError')
  })

  it('maps 416 to RangeNotSatisfiableError with the upstream size', async () => {
    const r = await registry()
    const err = await failure(client(r).up.openBlob('library/app', DIGEST, { offset: BLOB.byteLength + 5 }))
    expect(err).toMatchObject({ code: 'RangeNotSatisfiableError', size: BLOB.byteLength })
  })

  it('maps 404 to BlobUnknownError and 403 to UpstreamDeniedError', async () => {
    const r = await registry()
    const { up } = client(r)
    const missing = `sha256:${'0'.repeat(64)}`
    expect((await failure(up.openBlob('library/app', missing))).code).toBe('BlobUnknownError')
    expect((await failure(up.statBlob('library/app', missing))).code).toBe('BlobUnknownError')
    r.handler = (_req, res) => {
      res.writeHead(403)
      res.end()
    }
    expect((await failure(up.openBlob('library/app', DIGEST))).code).toBe('UpstreamDeniedError')
  })

  it('stats a blob with HEAD', async () => {
    const r = await registry()
    expect(await client(r).up.statBlob('library/app', DIGEST)).toEqual({ size: BLOB.byteLength })
    expect(r.requests[0]?.method).toBe('HEAD')
  })

  it('follows a redirect to another origin without the Authorization header, keeping Range', async () => {
    const store = await cdn()
    const r = await registry({ auth: 'basic', credentials: CREDS })
    r.handler = (req, res) => {
      if (req.headers.authorization === undefined) return r.serve(req, res)
      res.writeHead(307, { location: `${store.url}/bucket/blob?X-Signature=abc` })
      res.end()
    }
    const { up, codes } = client(r, { credentials: CREDS })
    const { stream } = await up.openBlob('library/app', DIGEST, { offset: 7 })
    expect((await collect(stream)).equals(BLOB.subarray(7))).toBe(true)
    expect(store.requests).toHaveLength(1)
    expect(store.requests[0]?.headers.authorization).toBeUndefined()
    expect(store.requests[0]?.headers.range).toBe('bytes=7-')
    expect(store.requests[0]?.url).toBe('/bucket/blob?X-Signature=abc')
    expect(codes).toEqual(['401', '307', '206'])
  })

  it('does not send a bearer token to a redirect target, even after it redirects back to the upstream', async () => {
    const store = await cdn()
    const r = await registry({ auth: 'bearer' })
    let hop = 0
    r.handler = (req, res) => {
      if (req.url !== PATH || req.headers.authorization === undefined) {
        if (req.url === '/back') return serveBlob(req, res, BLOB)
        return r.serve(req, res)
      }
      res.writeHead(302, { location: `${store.url}/hop` })
      res.end()
    }
    store.handler = (_req, res) => {
      hop++
      res.writeHead(302, { location: `${r.url}/back` })
      res.end()
    }
    const { stream } = await client(r).up.openBlob('library/app', DIGEST)
    await collect(stream)
    expect(hop).toBe(1)
    expect(store.requests[0]?.headers.authorization).toBeUndefined()
    expect(r.requests.find((q) => q.url === '/back')?.headers.authorization).toBeUndefined()
  })

  it('gives up after 5 redirects and refuses a redirect to another scheme', async () => {
    const r = await registry()
    r.handler = (_req, res) => {
      res.writeHead(302, { location: '/again' })
      res.end()
    }
    const { up } = client(r)
    expect(await failure(up.openBlob('library/app', DIGEST))).toMatchObject({ code: 'UpstreamProtocolError', message: expect.stringContaining('5') })
    expect(r.requests).toHaveLength(6)
    r.handler = (_req, res) => {
      res.writeHead(302, { location: 'file:///etc/passwd' })
      res.end()
    }
    expect((await failure(up.openBlob('library/app', DIGEST))).code).toBe('UpstreamProtocolError')
  })

  it('fails the stream with UpstreamUnavailableError when the body stalls for bodyIdleTimeoutMs', async () => {
    const r = await registry()
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.byteLength })
      res.write(BLOB.subarray(0, 1000)) // then silence
    }
    const { up } = client(r, { bodyIdleTimeoutMs: 100 })
    const { stream } = await up.openBlob('library/app', DIGEST)
    const started = Date.now()
    const err = await failure(collect(stream))
    expect(err.code).toBe('UpstreamUnavailableError')
    expect(err.message).toContain('100 ms')
    expect(Date.now() - started).toBeLessThan(800)
  })

  it('does not count a slow reader against the idle timeout', async () => {
    const r = await registry()
    const { up } = client(r, { bodyIdleTimeoutMs: 50 })
    const { stream } = await up.openBlob('library/app', DIGEST)
    await new Promise((resolve) => setTimeout(resolve, 150))
    expect((await collect(stream)).equals(BLOB)).toBe(true)
  })

  it('fails the stream when the upstream closes the body early', async () => {
    const r = await registry()
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.byteLength })
      res.write(BLOB.subarray(0, 1000))
      setTimeout(() => res.destroy(), 5)
    }
    const { stream } = await client(r).up.openBlob('library/app', DIGEST)
    const err = await failure(collect(stream))
    expect(err.code).toBe('UpstreamUnavailableError')
  })

  it('fails the stream with the caller abort reason', async () => {
    const r = await registry()
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.byteLength })
      res.write(BLOB.subarray(0, 1000))
    }
    const ac = new AbortController()
    const { stream } = await client(r).up.openBlob('library/app', DIGEST, { signal: ac.signal })
    const reason = new Error('client gone')
    setTimeout(() => ac.abort(reason), 20)
    await expect(collect(stream)).rejects.toBe(reason)
  })

  it('refuses a 200 without a Content-Length', async () => {
    const r = await registry()
    r.handler = (_req, res) => {
      res.writeHead(200)
      res.end(BLOB)
    }
    expect((await failure(client(r).up.openBlob('library/app', DIGEST))).code).toBe('UpstreamProtocolError')
  })

  it('does not hold the header deadline against a long body', async () => {
    const r = await registry()
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.byteLength })
      res.write(BLOB.subarray(0, 10))
      setTimeout(() => res.write(BLOB.subarray(10, 20)), 40)
      setTimeout(() => res.end(BLOB.subarray(20)), 80)
    }
    const { stream } = await client(r, { requestTimeoutMs: 50, bodyIdleTimeoutMs: 500 }).up.openBlob('library/app', DIGEST)
    expect((await collect(stream)).equals(BLOB)).toBe(true)
  })

  it('close() promptly fails open blob streams and later requests', async () => {
    const r = await registry()
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.byteLength })
      res.write(BLOB.subarray(0, 1000))
    }
    const { up } = client(r)
    const { stream } = await up.openBlob('library/app', DIGEST)
    const failed = failure(collect(stream))
    const started = Date.now()
    await up.close()
    expect(Date.now() - started).toBeLessThan(500)
    expect(await failed).toMatchObject({ code: 'UpstreamUnavailableError', message: expect.stringContaining('closed') })
    expect((await failure(up.statBlob('library/app', DIGEST))).code).toBe('UpstreamUnavailableError')
  })
})
