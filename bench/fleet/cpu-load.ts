/**
 * Machine-wide CPU utilisation from /proc/stat, sampled once a second while a run lasts.
 * It counts everything on the machine, not only the bench's processes.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'

export interface CpuLoad {
  cores: number
  /** Length of the sampled window. */
  seconds: number
  /** Busy time ÷ (wall time × cores) over the whole run, 0..1. */
  mean: number
  /** Share of the one-second samples in which the machine was at least 95% busy. */
  saturatedShare: number
  /** Interrupt and softirq time (the kernel moving packets: veth, bridge, tbf) ÷ (wall × cores). */
  irq: number
}

interface Ticks {
  busy: number
  irq: number
  total: number
}

const SATURATED = 0.95

function readTicks(): Ticks {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[]
  const idleAll = idle! + iowait!
  const busy = user! + nice! + system! + irq! + softirq! + steal!
  return { busy, irq: irq! + softirq!, total: busy + idleAll }
}

/** Starts sampling; `stop()` returns the load since the start. */
export function sampleCpuLoad(): { stop(): CpuLoad } {
  const first = readTicks()
  const startedAt = performance.now()
  let last = first
  let samples = 0
  let saturated = 0
  const timer = setInterval(() => {
    const now = readTicks()
    const total = now.total - last.total
    if (total > 0) {
      samples++
      if ((now.busy - last.busy) / total >= SATURATED) saturated++
    }
    last = now
  }, 1000)
  return {
    stop() {
      clearInterval(timer)
      const end = readTicks()
      const total = end.total - first.total
      return {
        cores: availableParallelism(),
        seconds: (performance.now() - startedAt) / 1000,
        mean: total > 0 ? (end.busy - first.busy) / total : 0,
        saturatedShare: samples > 0 ? saturated / samples : 0,
        irq: total > 0 ? (end.irq - first.irq) / total : 0,
      }
    },
  }
}
