import type { ServerResponse } from 'node:http'
import { createServer } from 'node:net'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { OCI_MANIFEST } from '../../protocol/media-types.js'
import { sendOciError, startRegistry, type FakeRegistry } from './fake-upstream.js'
import { failure } from './fake-upstream.js'
import { UpstreamRegistry, type UpstreamInit } from './upstream-registry.js'

const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' })
const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] }))

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.()
})

async function registry(): Promise<FakeRegistry> {
  const r = await startRegistry({ manifests: new Map([['library/app/latest', { bytes: MANIFEST, mediaType: OCI_MANIFEST }]]) })
  cleanup.push(() => r.close())
  return r
}

/** A client whose sleep records the waits instead of waiting. */
function client(target: { host: string; url: string }, init: Partial<UpstreamInit> = {}) {
  const waits: number[] = []
  const codes: string[] = []
  const up = new UpstreamRegistry(
    { ns: target.host, url: target.url, ...init },
    {
      logger,
      metrics: { request: (_r, code) => codes.push(code), bytes: () => {} },
      sleep: async (ms) => void waits.push(ms),
    },
  )
  cleanup.push(() => up.close())
  return { up, waits, codes }
}

/** Makes the first `n` requests fail with `fail`, then lets the registry answer. */
function failFirst(r: FakeRegistry, n: number, fail: (res: ServerResponse) => void): void {
  let left = n
  r.handler = (req, res) => {
    if (left-- > 0) return fail(res)
    r.serve(req, res)
  }
}


describe('UpstreamRegistry retries', () => {
  it('waits out a 429 Retry-After of 1 s and then succeeds', async () => {
    const r = await registry()
    failFirst(r, 1, (res) => sendOciError(res, 429, 'TOOMANYREQUESTS', 'slow down', { 'retry-after': '1' }))
    const { up, waits, codes } = client(r)
    expect((await up.getManifest('library/app', 'latest')).bytes.equals(MANIFEST)).toBe(true)
    expect(waits).toEqual([1000])
    expect(codes).toEqual(['429', '200'])
  })

  it('honours a Retry-After given as an HTTP-date', async () => {
    const r = await registry()
    failFirst(r, 1, (res) => sendOciError(res, 429, 'TOOMANYREQUESTS', 'x', { 'retry-after': new Date(Date.now() + 3000).toUTCString() }))
    const { up, waits } = client(r)
    await up.getManifest('library/app', 'latest')
    expect(waits).toHaveLength(1)
    expect(waits[0]).toBeGreaterThan(1000)
    expect(waits[0]).toBeLessThanOrEqual(3000)
  })

  it('fails with UpstreamRateLimitedError after maxRetries when the upstream keeps answering 429', async () => {
    const r = await registry()
    r.handler = (_req, res) => sendOciError(res, 429, 'TOOMANYREQUESTS', 'slow down', { 'retry-after': '2' })
    const { up, waits } = client(r, { maxRetries: 3 })
    const err = await failure(up.getManifest('library/app', 'latest'))
    expect(err.code).toBe('UpstreamRateLimitedError')
    expect(r.requests).toHaveLength(4)
    expect(waits).toEqual([2000, 2000, 2000])
  })

  it('fails at once with UpstreamRateLimitedError when Retry-After is beyond maxRetryAfterMs', async () => {
    const r = await registry()
    r.handler = (_req, res) => sendOciError(res, 429, 'TOOMANYREQUESTS', 'x', { 'retry-after': '3600' })
    const { up, waits } = client(r, { maxRetryAfterMs: 10_000 })
    const err = await failure(up.getManifest('library/app', 'latest'))
    expect(err.code).toBe('UpstreamRateLimitedError')
    expect(err.message).toContain('3600 s')
    expect(r.requests).toHaveLength(1)
    expect(waits).toEqual([])
  })

  it('retries a 503 with exponential backoff and succeeds', async () => {
    const r = await registry()
    failFirst(r, 2, (res) => sendOciError(res, 503, 'UNAVAILABLE'))
    const { up, waits } = client(r)
    await up.getManifest('library/app', 'latest')
    expect(waits).toHaveLength(2)
    expect(waits[0]).toBeGreaterThanOrEqual(100)
    expect(waits[0]).toBeLessThanOrEqual(200)
    expect(waits[1]).toBeGreaterThanOrEqual(200)
    expect(waits[1]).toBeLessThanOrEqual(400)
  })

  it('fails with UpstreamUnavailableError after maxRetries 5xx answers', async () => {
    const r = await registry()
    r.handler = (_req, res) => sendOciError(res, 502, 'UNAVAILABLE')
    const { up } = client(r, { maxRetries: 2 })
    expect((await failure(up.getManifest('library/app', 'latest'))).code).toBe('UpstreamUnavailableError')
    expect(r.requests).toHaveLength(3)
  })

  it('fails with UpstreamUnavailableError after bounded retries when the connection is refused', async () => {
    const port = await freePort()
    const { up, waits, codes } = client({ host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}` }, { maxRetries: 3 })
    const err = await failure(up.getManifest('library/app', 'latest'))
    expect(err.code).toBe('UpstreamUnavailableError')
    expect(err.message).toContain('ECONNREFUSED')
    expect(waits).toHaveLength(3)
    expect(codes).toEqual(['error', 'error', 'error', 'error'])
  })

  it('gives each attempt a deadline for the response headers', async () => {
    const r = await registry()
    r.handler = () => {} // never answers
    const { up, codes } = client(r, { requestTimeoutMs: 50, maxRetries: 1 })
    const started = Date.now()
    const err = await failure(up.getManifest('library/app', 'latest'))
    expect(err.code).toBe('UpstreamUnavailableError')
    expect(err.message).toContain('50 ms')
    expect(r.requests).toHaveLength(2)
    expect(codes).toEqual(['timeout', 'timeout'])
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('retries a manifest body that breaks off', async () => {
    const r = await registry()
    failFirst(r, 1, (res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': MANIFEST.byteLength })
      res.write(MANIFEST.subarray(0, 5))
      setTimeout(() => res.destroy(), 5)
    })
    const { up } = client(r)
    expect((await up.getManifest('library/app', 'latest')).bytes.equals(MANIFEST)).toBe(true)
    expect(r.requests).toHaveLength(2)
  })

  it('does not retry 404, 403 or 401', async () => {
    const r = await registry()
    const { up, waits } = client(r)
    for (const [status, code] of [[404, 'MANIFEST_UNKNOWN'], [403, 'DENIED'], [401, 'UNAUTHORIZED']] as const) {
      r.handler = (_req, res) => sendOciError(res, status, code)
      await failure(up.getManifest('library/app', 'latest'))
    }
    expect(r.requests).toHaveLength(3)
    expect(waits).toEqual([])
  })

  it('rejects with the caller abort reason at once, during a stalled request and during a retry wait', async () => {
    const r = await registry()
    r.handler = () => {}
    const { up } = client(r)
    const ac = new AbortController()
    const reason = new Error('client gone')
    setTimeout(() => ac.abort(reason), 20)
    await expect(up.getManifest('library/app', 'latest', { signal: ac.signal })).rejects.toBe(reason)

    r.handler = (_req, res) => sendOciError(res, 503, 'UNAVAILABLE')
    const real = new UpstreamRegistry({ ns: r.host, url: r.url }, { logger })
    cleanup.push(() => real.close())
    const ac2 = new AbortController()
    const started = Date.now()
    setTimeout(() => ac2.abort(reason), 30)
    await expect(real.getManifest('library/app', 'latest', { signal: ac2.signal })).rejects.toBe(reason)
    expect(Date.now() - started).toBeLessThan(150)
    await expect(real.getManifest('library/app', 'latest', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
  })
})

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}
