import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STATUS_EXIT, parseStatusArgs, statusCommand } from './status-command.js'

const TOKEN = 'a-mirror-token-of-32-characters!'

/** A fake agent: /v1/status answers `status`, /readyz `ready`; a request without the token gets 403 when `needToken`. */
class FakeAgent {
  ready = true
  needToken = false
  seen: IncomingMessage[] = []
  server!: Server
  url = ''

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.seen.push(req)
      if (this.needToken && req.headers['x-pollen-mirror-token'] !== TOKEN) return void res.writeHead(403).end('{"status":"forbidden"}')
      if (req.url === '/v1/status') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ schema: 1, mode: 'standalone', seed: null, cache: { bytes: 0, capacity: 1024 } }))
      if (req.url === '/readyz') {
        const checks = this.ready ? [{ name: 'store', ok: true }] : [{ name: 'store', ok: true }, { name: 'admission', ok: false, detail: 'no valid admission token' }]
        return void res.writeHead(this.ready ? 200 : 503).end(JSON.stringify({ status: this.ready ? 'ready' : 'not ready', checks }))
      }
      res.writeHead(404).end()
    })
    this.server.listen(0, '127.0.0.1')
    await new Promise((r) => this.server.once('listening', r))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }
}

function io(files: Record<string, string> = {}) {
  const out = { stdout: '', stderr: '' }
  return {
    out,
    io: {
      stdout: { write: (t: string) => (out.stdout += t) },
      stderr: { write: (t: string) => (out.stderr += t) },
      readFile: async (path: string) => {
        const text = files[path]
        if (text === undefined) throw new Error(`ENOENT: no such file, open '${path}'`)
        return text
      },
    },
  }
}

describe('pollen-agent status', () => {
  const agent = new FakeAgent()
  beforeAll(() => agent.start())
  afterAll(() => agent.server.close())

  it('defaults to the agent\'s default --listen and accepts a bare HOST:PORT', () => {
    expect(parseStatusArgs([])).toEqual({ url: 'http://127.0.0.1:5050', json: false })
    expect(parseStatusArgs(['--url', '10.0.0.7:5050', '--json'])).toEqual({ url: 'http://10.0.0.7:5050', json: true })
  })

  it('exits 0 with the table when the agent is ready, 1 with the failed checks when it is not', async () => {
    const ready = io()
    expect(await statusCommand(['--url', agent.url], ready.io)).toBe(STATUS_EXIT.healthy)
    expect(ready.out.stdout).toMatch(/^Agent: +http:\/\/127\.0\.0\.1:\d+\nReady: +yes\nMode: +standalone/)
    agent.ready = false
    const notReady = io()
    expect(await statusCommand(['--url', agent.url], notReady.io)).toBe(STATUS_EXIT.notReady)
    expect(notReady.out.stdout).toContain('Ready:       no (admission: no valid admission token)\n')
    agent.ready = true
  })

  it('prints the status JSON with --json', async () => {
    const run = io()
    expect(await statusCommand(['--url', agent.url, '--json'], run.io)).toBe(0)
    expect(JSON.parse(run.out.stdout)).toMatchObject({ schema: 1, mode: 'standalone' })
  })

  it('sends the mirror token from --mirror-token-file, and says to give it when refused', async () => {
    agent.needToken = true
    try {
      const refused = io()
      expect(await statusCommand(['--url', agent.url], refused.io)).toBe(STATUS_EXIT.unreachable)
      expect(refused.out.stderr).toBe(`pollen-agent status: the agent at ${agent.url} refused the status request (HTTP 403): give its --mirror-token-file\n`)
      const admitted = io({ '/etc/pollen/mirror-token': `${TOKEN}\n` })
      expect(await statusCommand(['--url', agent.url, '--mirror-token-file', '/etc/pollen/mirror-token'], admitted.io)).toBe(0)
    } finally {
      agent.needToken = false
    }
  })

  it('exits 2 for bad arguments and an unreadable token file', async () => {
    const bad = io()
    expect(await statusCommand(['--url', 'ftp://x'], bad.io)).toBe(STATUS_EXIT.badArguments)
    expect(bad.out.stderr).toBe('pollen-agent status: invalid --url: "ftp://x" must be http:// or https://\n')
    const missing = io()
    expect(await statusCommand(['--mirror-token-file', '/nope'], missing.io)).toBe(STATUS_EXIT.badArguments)
    expect(missing.out.stderr).toMatch(/^pollen-agent status: invalid --mirror-token-file: ENOENT/)
    expect(await statusCommand(['--bogus'], io().io)).toBe(STATUS_EXIT.badArguments)
  })

  it('exits 3 with one line when nothing listens', async () => {
    const run = io()
    expect(await statusCommand(['--url', 'http://127.0.0.1:9'], run.io)).toBe(STATUS_EXIT.unreachable)
    expect(run.out.stdout).toBe('')
    expect(run.out.stderr).toBe('pollen-agent status: cannot reach the agent at http://127.0.0.1:9: connection refused (is it running? is --url its --listen address?)\n')
  })
})
