import { createServer } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { closeServers, listen } from '../content/ops-server.js'
import { RecentLog } from './status-log.js'
import { STATUS_PATH, type AgentStatusReport } from './status-report.js'
import { agentMode, packageVersion, statusHandler, statusReport, type StatusComponents } from './status.js'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.()
})

const T0 = Date.parse('2024-05-01T12:00:00Z')

function components(over: Partial<StatusComponents> = {}): StatusComponents {
  return {
    version: '1.2.3',
    cache: { bytes: () => 4096, capacity: 10_000 },
    recent: new RecentLog(),
    startedAt: T0,
    now: () => T0 + 90_500,
    ...over,
  }
}

describe('statusReport', () => {
  it('reports a standalone agent', () => {
    expect(statusReport(components())).toEqual({
      schema: 1,
      version: '1.2.3',
      peerId: null,
      mode: 'standalone',
      uptimeSeconds: 90,
      seed: null,
      token: { enrolled: false, valid: false, expiresAt: null },
      cache: { bytes: 4096, capacity: 10_000 },
      peers: { enabled: false, connected: 0, routingTable: 0 },
      lastErrors: [],
    } satisfies AgentStatusReport)
  })

  it('reports an enrolled agent whose seed is down as cache-only, with the seed\'s last error and the token\'s expiry', () => {
    const recent = new RecentLog(10, () => T0)
    recent.record('warn', 'seed-probe', [{ err: 'connect ECONNREFUSED' }, 'the seed does not answer'])
    const report = statusReport(
      components({
        seedUrl: 'http://seed.internal:5000/',
        seed: { reachable: false, unreachable: true, checkedAt: T0 + 80_000, lastError: { time: T0 + 80_000, message: 'seed seed.internal:5000 unreachable: connect ECONNREFUSED' } },
        peerId: '12D3KooWExample',
        token: { valid: () => true, expiresAt: () => T0 + 3_600_000 },
        peers: { connected: () => 3, routingTable: () => 5 },
        recent,
      }),
    )
    expect(report).toMatchObject({
      peerId: '12D3KooWExample',
      mode: 'cache-only',
      seed: {
        url: 'http://seed.internal:5000',
        reachable: false,
        checkedAt: '2024-05-01T12:01:20.000Z',
        lastError: { time: '2024-05-01T12:01:20.000Z', message: 'seed seed.internal:5000 unreachable: connect ECONNREFUSED' },
      },
      token: { enrolled: true, valid: true, expiresAt: '2024-05-01T13:00:00.000Z' },
      peers: { enabled: true, connected: 3, routingTable: 5 },
      lastErrors: [{ time: '2024-05-01T12:00:00.000Z', level: 'warn', component: 'seed-probe', msg: 'the seed does not answer', err: 'connect ECONNREFUSED' }],
    })
  })

  it('names the mode: standalone without a seed, cache-only only once a probe failed', () => {
    expect(agentMode(undefined, undefined)).toBe('standalone')
    expect(agentMode('http://seed', { unreachable: false })).toBe('seed')
    expect(agentMode('http://seed', { unreachable: true })).toBe('cache-only')
  })
})

describe('statusHandler', () => {
  async function serve(allow?: (req: unknown) => Promise<boolean>): Promise<string> {
    const handle = statusHandler(() => statusReport(components()), allow)
    const server = createServer((req, res) => {
      if (!handle(req, res)) {
        res.statusCode = 404
        res.end()
      }
    })
    const url = await listen(server, '127.0.0.1', 0)
    cleanup.push(() => closeServers(server))
    return url
  }

  it('answers GET /v1/status with the report as JSON, and leaves other paths alone', async () => {
    const url = await serve()
    const res = await fetch(`${url}${STATUS_PATH}`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(((await res.json()) as AgentStatusReport).version).toBe('1.2.3')
    expect((await fetch(`${url}/v1/other`)).status).toBe(404)
    expect((await fetch(`${url}${STATUS_PATH}`, { method: 'POST' })).status).toBe(405)
  })

  it('answers 403 when the caller is not allowed', async () => {
    const url = await serve(async () => false)
    const res = await fetch(`${url}${STATUS_PATH}`)
    expect(res.status).toBe(403)
    expect(await res.text()).not.toContain('version')
  })
})

describe('packageVersion', () => {
  it('reads the version of the pollen package', async () => {
    expect(await packageVersion()).toMatch(/^\d+\.\d+\.\d+/)
  })
})
