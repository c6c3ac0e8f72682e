import { connect } from 'node:net'
import { once } from 'node:events'
import { pino } from 'pino'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import type { CachingSource } from './caching-source.js'
import type { ManifestService } from './manifest-service.js'
import { closeServers, listen } from './ops-server.js'
import { createRegistryServer } from './registry-server.js'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.()
})

/** A registry server whose blob and manifest sources must never be reached by these requests. */
async function server(): Promise<string> {
  const unreachable = new Proxy({}, {
    get: (_t, key) => {
      throw new Error(`the request reached the content layer (${String(key)})`)
    },
  })
  const s = createRegistryServer(
    { defaultNs: 'docker.io' },
    {
      blobs: unreachable as CachingSource,
      manifests: unreachable as ManifestService,
      logger: pino({ level: 'silent' }),
      health: () => false,
    },
  )
  const url = await listen(s, '127.0.0.1', 0)
  cleanup.push(() => closeServers(s))
  return url
}

/** Sends `head` (request line and headers) on a fresh connection and returns everything the server wrote before closing it. */
async function raw(url: string, head: string): Promise<string> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  await once(socket, 'connect')
  const parts: Buffer[] = []
  socket.on('data', (d: Buffer) => parts.push(d))
  socket.end(head)
  await once(socket, 'close')
  return Buffer.concat(parts).toString('latin1')
}

function parseAnswer(text: string): { status: number; headers: Record<string, string>; body: string } {
  const [head = '', body = ''] = text.split('\r\n\r\n', 2)
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const at = line.indexOf(':')
    headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim()
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body }
}

const DIGEST = `sha256:${'a'.repeat(64)}`

describe('the registry server', () => {
  it.each([
    ['DELETE', `/v2/team/app/manifests/v1`],
    ['DELETE', `/v2/team/app/blobs/${DIGEST}`],
    ['PUT', `/v2/team/app/manifests/v1`],
    ['POST', '/v2/team/app/blobs/uploads/'],
    ['PATCH', '/v2/team/app/blobs/uploads/x'],
    ['OPTIONS', '/v2/'],
    ['DELETE', '/v2/'],
  ])('answers %s %s with 405, Allow: GET, HEAD and an UNSUPPORTED OCI error', async (method, path) => {
    const url = await server()
    const res = await request(`${url}${path}`, { method, body: method === 'PUT' || method === 'POST' || method === 'PATCH' ? '{}' : undefined, signal: AbortSignal.timeout(5_000) })
    expect(res.statusCode).toBe(405)
    expect(res.headers.allow).toBe('GET, HEAD')
    expect(res.headers['content-type']).toBe('application/json')
    const body = (await res.body.json()) as { errors: Array<{ code: string; message: string }> }
    expect(body.errors).toHaveLength(1)
    expect(body.errors[0]!.code).toBe('UNSUPPORTED')
    expect(body.errors[0]!.message).toContain(method)
  })

  it('still answers GET and HEAD of the base endpoint with 200', async () => {
    const url = await server()
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await request(`${url}/v2/`, { method, signal: AbortSignal.timeout(5_000) })
      expect(res.statusCode).toBe(200)
      await res.body.dump()
    }
  })

  it('answers a request whose headers pass 16 KiB with 431 and an OCI error body, and closes the connection', async () => {
    const url = await server()
    const answer = parseAnswer(await raw(url, `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(17 * 1024)}\r\n\r\n`))
    expect(answer.status).toBe(431)
    expect(answer.headers['content-type']).toBe('application/json')
    expect(answer.headers.connection).toBe('close')
    expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body))
    const body = JSON.parse(answer.body) as { errors: Array<{ code: string; message: string }> }
    expect(body.errors).toEqual([{ code: 'UNSUPPORTED', message: expect.stringContaining('too large') }])
  })

  it('answers 431 to many headers that together pass 16 KiB, as node:http clients send them', async () => {
    const url = await server()
    const headers: Record<string, string> = {}
    for (let i = 0; i < 40; i++) headers[`x-h${i}`] = 'v'.repeat(500)
    const res = await request(`${url}/v2/`, { headers, signal: AbortSignal.timeout(5_000) })
    expect(res.statusCode).toBe(431)
    expect(((await res.body.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('UNSUPPORTED')
  })

  it('serves a request whose headers stay under 16 KiB', async () => {
    const url = await server()
    const res = await request(`${url}/v2/`, { headers: { 'x-pad': 'p'.repeat(15 * 1024) }, signal: AbortSignal.timeout(5_000) })
    expect(res.statusCode).toBe(200)
    await res.body.dump()
  })

  it('answers a request the HTTP parser cannot read with 400', async () => {
    const url = await server()
    const answer = parseAnswer(await raw(url, 'GET /v2/ HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n'))
    expect(answer.status).toBe(400)
  })
})
