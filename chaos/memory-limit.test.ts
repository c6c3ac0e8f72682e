import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { MemoryLimits } from './memory-limit.js'

const GiB = 2 ** 30
const run = promisify(execFile)
const dirs: string[] = []
const real = await MemoryLimits.create(`test-${process.pid}`)

async function fakeRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pollen-cgroup-'))
  dirs.push(dir)
  return dir
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true })
})

describe('memory limits for soak processes', () => {
  it('puts a process in a v1 memory cgroup under its own group, with the limit written and OOM kills read back', async () => {
    const root = await fakeRoot()
    await mkdir(join(root, 'memory', 'ci', 'job'), { recursive: true })
    await writeFile(join(root, 'memory', 'memory.limit_in_bytes'), '9223372036854771712')
    await writeFile(join(root, 'self'), '5:cpu:/\n4:memory:/ci/job\n')
    const limits = await MemoryLimits.create('t1', root, join(root, 'self'))
    expect(limits.fallbackReason).toBeUndefined()
    const spawn = await limits.spawnOptions('agent 1', GiB)
    const group = join(root, 'memory', 'ci', 'job', 'pollen-soak-t1', 'agent-1')
    expect(await readFile(join(group, 'memory.limit_in_bytes'), 'utf8')).toBe(String(GiB))
    expect(spawn).toEqual({ prefix: ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', join(group, 'cgroup.procs')] })
    await writeFile(join(group, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n')
    expect(await limits.oomKills('agent 1')).toBe(2)
    expect(await limits.oomKills('seed')).toBeUndefined()
    expect(limits.describe()).toMatch(/memory cgroup \(v1\)/)
    expect(await limits.summary()).toEqual({ how: limits.describe(), limitBytes: { 'agent 1': GiB }, oomKills: { 'agent 1': 2 } })
  })

  it('makes the v2 group beside its own (a group with processes may not have children) and enables the memory controller in it', async () => {
    const root = await fakeRoot()
    await writeFile(join(root, 'cgroup.controllers'), 'cpu memory io')
    const base = join(root, 'system.slice', 'pollen-soak-t2')
    // What the kernel puts in a new group.
    await mkdir(base, { recursive: true })
    await writeFile(join(base, 'cgroup.controllers'), 'cpu memory io pids')
    await writeFile(join(root, 'self'), '0::/system.slice/ci.service\n')
    const limits = await MemoryLimits.create('t2', root, join(root, 'self'))
    expect(limits.fallbackReason).toBeUndefined()
    expect(await readFile(join(base, 'cgroup.subtree_control'), 'utf8')).toBe('+memory')
    const spawn = await limits.spawnOptions('seed', 2 * GiB)
    expect(await readFile(join(base, 'seed', 'memory.max'), 'utf8')).toBe(String(2 * GiB))
    expect(spawn.prefix?.at(-1)).toBe(join(base, 'seed', 'cgroup.procs'))
    await writeFile(join(base, 'seed', 'memory.events'), 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n')
    expect(await limits.oomKills('seed')).toBe(1)
  })

  it('falls back to the heap limit Node would derive (half the memory limit) where no cgroup can be made, and says why', async () => {
    const root = await fakeRoot()
    const limits = await MemoryLimits.create('t3', join(root, 'missing'), join(root, 'self'))
    expect(limits.fallbackReason).toMatch(/ENOENT/)
    expect(await limits.spawnOptions('agent 1', GiB)).toEqual({ nodeArgs: ['--max-old-space-size=512'] })
    expect(await limits.oomKills('agent 1')).toBeUndefined()
    expect(await limits.summary()).toMatchObject({ limitBytes: { 'agent 1': GiB }, oomKills: { 'agent 1': 0 } })
    expect(limits.describe()).toMatch(/^no memory cgroups \(.*\): each process gets --max-old-space-size/)
  })

  // With real cgroups (root on a writable cgroup filesystem), Node inside the group sizes its heap from the limit.
  it.skipIf(real.fallbackReason !== undefined)(`runs node inside a real cgroup whose limit Node sizes its heap by${real.fallbackReason === undefined ? '' : ` (skipped: ${real.fallbackReason})`}`, async () => {
    const spawn = await real.spawnOptions('probe', GiB)
    const [command, ...args] = [...spawn.prefix!, process.execPath, '-e', 'console.log(require("v8").getHeapStatistics().heap_size_limit)']
    const { stdout } = await run(command!, args, { timeout: 30_000 })
    const inside = Number(stdout)
    expect(inside).toBeLessThanOrEqual(0.6 * GiB)
    expect(inside).toBeGreaterThan(0.3 * GiB)
    expect(await real.oomKills('probe')).toBe(0)
  })
  afterAll(() => real.close())
})
