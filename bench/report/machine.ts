/** The machine the suite ran on, for RESULTS.md. Never throws: what cannot be read says "unknown". */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism, release, totalmem, version } from 'node:os'
import type { Machine } from './inputs.js'

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'))
    return line?.split(':').slice(1).join(':').trim() ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

function dockerRegistryVersion(): string {
  try {
    return execFileSync('docker-registry', ['--version'], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'not installed'
  }
}

export function describeMachine(): Machine {
  return {
    cpu: cpuModel(),
    cores: availableParallelism(),
    ramGiB: totalmem() / 2 ** 30,
    kernel: `${release()} (${version()})`,
    node: process.version,
    dockerRegistry: dockerRegistryVersion(),
  }
}
