import { Counter, Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { closeServers, createOpsServer, listen, sendJson, storeReadiness, type ReadinessCheck, type ReadinessReport } from './ops-server.js'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.()
})

async function ops(checks: () => Promise<ReadinessCheck[]>, mode?: () => string): Promise<string> {
  const metrics = new Registry()
  new Counter({ name: 'pollen_test_total', help: 'A test counter.', registers: [metrics] }).inc()
  const server = createOpsServer({
    readiness: checks,
    mode,
    metrics,
    routes: (req, res) => {
      if (req.url !== '/v1/status') return false
      sendJson(res, 200, { ok: true })
      return true
    },
  })
  const url = await listen(server, '127.0.0.1', 0)
  cleanup.push(() => closeServers(server))
  return url
}

describe('the ops server', () => {
  it('answers /healthz, /metrics, its extra routes, and 404 for anything else', async () => {
    const url = await ops(async () => [])
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' })
    const metrics = await fetch(`${url}/metrics`)
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(await metrics.text()).toContain('# HELP pollen_test_total A test counter.')
    expect(await (await fetch(`${url}/v1/status`)).json()).toEqual({ ok: true })
    expect((await fetch(`${url}/nope`)).status).toBe(404)
  })

  it('is ready (200) when every check passes, with the mode and each check in the body', async () => {
    const url = await ops(async () => [{ name: 'store', ok: true }, { name: 'seed', ok: true, detail: 'unreachable; serving cached and peer content only (cache-only)' }], () => 'cache-only')
    const res = await fetch(`${url}/readyz`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({
      status: 'ready',
      mode: 'cache-only',
      checks: [{ name: 'store', ok: true }, { name: 'seed', ok: true, detail: 'unreachable; serving cached and peer content only (cache-only)' }],
    } satisfies ReadinessReport)
  })

  it('is not ready (503) when a check fails or the checks throw', async () => {
    let fail = true
    const url = await ops(async () => {
      if (!fail) throw new Error('boom')
      return [{ name: 'store', ok: true }, { name: 'admission', ok: false, detail: 'no valid admission token' }]
    })
    const res = await fetch(`${url}/readyz`)
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ status: 'not ready', checks: [{ name: 'store', ok: true }, { name: 'admission', ok: false, detail: 'no valid admission token' }] })
    fail = false
    const thrown = await fetch(`${url}/readyz`)
    expect(thrown.status).toBe(503)
    expect(await thrown.json()).toEqual({ status: 'not ready', checks: [{ name: 'readiness', ok: false, detail: 'boom' }] })
  })
})

describe('storeReadiness', () => {
  it('is ok for a writable store and names the failure otherwise', async () => {
    expect(await storeReadiness({ checkWritable: async () => {} })).toEqual({ name: 'store', ok: true })
    expect(await storeReadiness({ checkWritable: async () => Promise.reject(new Error("EACCES: permission denied, open '/data/x'")) })).toEqual({
      name: 'store',
      ok: false,
      detail: "data directory not writable: EACCES: permission denied, open '/data/x'",
    })
  })
})
