import { createServer, type Server } from 'node:http'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { listen, closeServers } from '../content/ops-server.js'
import { SeedReachability } from './seed-reachability.js'

const logger = pino({ level: 'silent' })
const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.()
})

function probeOf(results: Array<number | Error>): (signal: AbortSignal) => Promise<number> {
  return async () => {
    const r = results.shift() ?? 200
    if (r instanceof Error) throw r
    return r
  }
}

describe('SeedReachability', () => {
  it('is reachable after an answered probe, unreachable after a failed one, and keeps the last error', async () => {
    let now = 1_000
    const changes: boolean[] = []
    const seed = new SeedReachability(
      { seedUrl: 'http://seed.example:5000/', intervalMs: 60_000 },
      { logger, now: () => now, probe: probeOf([200, Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:5000'), { code: 'ECONNREFUSED' }), 503]), onChange: (r) => changes.push(r) },
    )
    cleanup.push(() => seed.stop())
    expect(seed.reachable).toBe(false)
    expect(seed.unreachable).toBe(false)
    await seed.start()
    expect(seed.reachable).toBe(true)
    expect(seed.checkedAt).toBe(1_000)
    now = 2_000
    await seed.check()
    expect(seed.reachable).toBe(false)
    expect(seed.unreachable).toBe(true)
    expect(seed.lastError).toEqual({ time: 2_000, message: 'seed seed.example:5000 unreachable: connect ECONNREFUSED 10.0.0.1:5000' })
    now = 3_000
    await seed.check() // any HTTP answer, 503 included, means the seed is there
    expect(seed.reachable).toBe(true)
    expect(seed.lastError?.time).toBe(2_000)
    expect(changes).toEqual([true, false, true])
  })

  it('counts a probe without an answer within the deadline as unreachable', async () => {
    const seed = new SeedReachability(
      { seedUrl: 'http://seed.example', intervalMs: 60_000, timeoutMs: 30 },
      { logger, probe: (signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))) },
    )
    cleanup.push(() => seed.stop())
    await seed.start()
    expect(seed.unreachable).toBe(true)
    expect(seed.lastError?.message).toBe('seed seed.example unreachable: no answer within 30 ms')
  })

  it('probes GET /healthz of a real seed, and notices when it goes away', async () => {
    const paths: string[] = []
    const server: Server = createServer((req, res) => {
      paths.push(`${req.method} ${req.url}`)
      res.end('{"status":"ok"}')
    })
    const url = await listen(server, '127.0.0.1', 0)
    const seed = new SeedReachability({ seedUrl: url, intervalMs: 60_000, timeoutMs: 2_000 }, { logger })
    cleanup.push(() => seed.stop())
    await seed.start()
    expect(seed.reachable).toBe(true)
    expect(paths).toEqual(['GET /healthz'])
    await closeServers(server)
    await seed.check()
    expect(seed.unreachable).toBe(true)
    expect(seed.lastError?.message).toMatch(/ECONNREFUSED/)
  })
})
