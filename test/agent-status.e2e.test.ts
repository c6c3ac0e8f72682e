import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from './helpers/free-port.js'
import { startPollenProcess, type PollenProcess } from './helpers/pollen-process.js'

const AGENT_MAIN = fileURLToPath(new URL('../dist/agent/main.js', import.meta.url))

/** Runs `pollen-agent status ARGS…` with pipes; resolves its exit code and output. */
function status(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [AGENT_MAIN, 'status', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}

describe('pollen-agent status against a running agent', () => {
  let work: string
  let agent: PollenProcess
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-status-'))
    agent = await startPollenProcess('agent', ['--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--data', join(work, 'agent'), '--cache-size', '2GiB'])
  })
  afterAll(async () => {
    await agent?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('prints every heading of a standalone agent and exits 0', async () => {
    const run = await status(['--url', agent.url])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    const headings = run.stdout.split('\n').filter((l) => /^\S/.test(l)).map((l) => l.split(':')[0])
    expect(headings).toEqual(['Agent', 'Ready', 'Mode', 'PeerId', 'Seed', 'Token', 'Cache', 'Peers', 'Last errors'])
    expect(run.stdout).toMatch(/^Ready: +yes$/m)
    expect(run.stdout).toMatch(/^Mode: +standalone/m)
    expect(run.stdout).toMatch(/^Cache: +0 B of 2\.0 GiB \(0%\)$/m)
  })

  it('reads the same from the metrics listener, and prints the JSON with --json', async () => {
    expect((await status(['--url', agent.opsUrl])).code).toBe(0)
    const run = await status(['--url', agent.url, '--json'])
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({ schema: 1, mode: 'standalone', seed: null, cache: { bytes: 0, capacity: 2 * 2 ** 30 } })
  })

  it('exits 3 with one clear line when nothing listens on the port', async () => {
    const run = await status(['--url', `http://127.0.0.1:${await freePort()}`])
    expect(run.code).toBe(3)
    expect(run.stdout).toBe('')
    expect(run.stderr).toMatch(/^pollen-agent status: cannot reach the agent at http:\/\/127\.0\.0\.1:\d+: connection refused \(is it running\? is --url its --listen address\?\)\n$/)
  })
})
