import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { readCpuSeconds } from './proc-sampler.js'

describe('the soak sampler', () => {
  it('reads the CPU time a process used, also when its command name holds spaces and parentheses', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pollen-cpu-'))
    // The kernel names the process after the path it was run by: here ") x (y".
    const odd = join(dir, ') x (y')
    await symlink(process.execPath, odd)
    const child = spawn(odd, ['-e', 'const end = Date.now() + 600; while (Date.now() < end); setTimeout(() => {}, 30_000)'], { stdio: 'ignore' })
    try {
      await new Promise((r) => setTimeout(r, 1_500))
      const cpu = await readCpuSeconds(child.pid!)
      expect(cpu).toBeGreaterThanOrEqual(0.4)
      expect(cpu).toBeLessThan(1.5)
    } finally {
      child.kill('SIGKILL')
      await once(child, 'exit')
      await rm(dir, { recursive: true, force: true })
    }
  })
})
