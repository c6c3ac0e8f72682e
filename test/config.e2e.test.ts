import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPollenProcess } from './helpers/pollen-process.js'

const AGENT_MAIN = fileURLToPath(new URL('../dist/agent/main.js', import.meta.url))

/** Runs the built agent to its exit, with `env` added to a POLLEN_-free environment. */
function runAgent(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('POLLEN_')))
  return new Promise((resolve) => {
    execFile(process.execPath, [AGENT_MAIN, ...args], { env: { ...base, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr })
    })
  })
}

describe('configuration of the built processes', () => {
  let work: string
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-config-'))
  })
  afterAll(() => rm(work, { recursive: true, force: true }))

  it('exits with code 2 and one line naming the bad key in the config file', async () => {
    const bad = join(work, 'bad.yaml')
    await writeFile(bad, 'listen: 127.0.0.1:0\ncache-size: lots\n')
    const result = await runAgent(['--config', bad])
    expect(result.code).toBe(2)
    expect(result.stderr).toBe(`pollen-agent: invalid cache-size in ${bad}: "lots" is not a size (examples: 1048576, 512MiB, 20GiB)\n`)
    expect(result.stdout).toBe('')
  })

  it('exits with code 2 and one line for an unknown key, broken YAML, or a bad POLLEN_ value', async () => {
    const typo = join(work, 'typo.yaml')
    await writeFile(typo, 'cache-sise: 1GiB\n')
    const broken = join(work, 'broken.yaml')
    await writeFile(broken, 'listen: 127.0.0.1:0\nseed: [http://seed:5000\n')
    const cases: Array<[string[], Record<string, string>, string]> = [
      [['--config', typo], {}, `pollen-agent: invalid cache-sise in ${typo}: unknown key (did you mean cache-size?)\n`],
      [['--config', join(work, 'missing.yaml')], {}, `pollen-agent: invalid --config: ENOENT: no such file or directory, open '${join(work, 'missing.yaml')}'\n`],
      [[], { POLLEN_CACHE_SIZE: 'lots' }, 'pollen-agent: invalid POLLEN_CACHE_SIZE: "lots" is not a size (examples: 1048576, 512MiB, 20GiB)\n'],
    ]
    for (const [args, env, stderr] of cases) {
      const result = await runAgent(args, env)
      expect([result.code, result.stderr], args.join(' ')).toEqual([2, stderr])
    }
    const result = await runAgent([], { POLLEN_CONFIG: broken })
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(new RegExp(`^pollen-agent: invalid ${broken.replaceAll('/', '\\/')}: line \\d+, column \\d+: [^\\n]+\\n$`))
  })

  it('warns about an unknown POLLEN_ variable and runs anyway (Kubernetes adds POLLEN_SEED_PORT for a Service named pollen-seed)', async () => {
    const result = await runAgent(['configure-containerd', '--hosts-dir', join(work, 'certs.d'), '--all'], { POLLEN_CACHE_SIZ: '1GiB', POLLEN_SEED_PORT: 'tcp://10.0.0.1:5000' })
    expect(result.code).toBe(0)
    expect(result.stderr).toContain('pollen-agent: warning: ignoring POLLEN_CACHE_SIZ: no option has this name (did you mean POLLEN_CACHE_SIZE?)\n')
    expect(result.stderr).toContain('pollen-agent: warning: ignoring POLLEN_SEED_PORT: no option has this name')
  })

  it('runs the agent and the seed with their addresses from YAML files', async () => {
    const agentYaml = join(work, 'agent.yaml')
    await writeFile(agentYaml, `# standalone agent\nlisten: 127.0.0.1:0\nmetrics-listen: 127.0.0.1:0\ndata: ${join(work, 'agent-data')}\ncache-size: 64MiB\ntag-ttl: 10\n`)
    const agent = await startPollenProcess('agent', ['--config', agentYaml])
    try {
      expect(agent.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect((await fetch(`${agent.opsUrl}/healthz`, { signal: AbortSignal.timeout(5000) })).status).toBe(200)
      expect(await agent.metric('pollen_agent_cache_capacity_bytes')).toBe(64 * 2 ** 20)
    } finally {
      await agent.stop()
    }
    const seedYaml = join(work, 'seed.yaml')
    await writeFile(
      seedYaml,
      [
        'listen: 127.0.0.1:0',
        'metrics-listen: 127.0.0.1:0',
        `data: ${join(work, 'seed-data')}`,
        "p2p-listen: [ '/ip4/127.0.0.1/tcp/0' ]",
        "upstream: [ 'docker.io=https://registry-1.docker.io', 'ghcr.io=https://ghcr.io' ]",
        'token-ttl: 5m',
        '',
      ].join('\n'),
    )
    const seed = await startPollenProcess('seed', ['--config', seedYaml])
    try {
      expect((await fetch(`${seed.opsUrl}/healthz`, { signal: AbortSignal.timeout(5000) })).status).toBe(200)
    } finally {
      await seed.stop()
    }
  })
})
