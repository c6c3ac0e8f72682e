/**
 * Samples processes' resident memory and open file descriptors from /proc every few seconds,
 * and, for information, their V8 heap from their /metrics (prom-client's default metrics).
 */
import { readFile, readdir } from 'node:fs/promises'
import { request } from 'undici'

export interface ProcSample {
  /** Milliseconds since the soak started. */
  atMs: number
  /** Which incarnation of the process (0, then 1 after its first restart, …). */
  incarnation: number
  pid: number
  rssBytes: number
  fds: number
  /** CPU time (user + system) the process has used since it started, seconds. */
  cpuSeconds?: number
  /** nodejs_heap_size_used_bytes, when /metrics answered. */
  heapUsedBytes?: number
  /** nodejs_external_memory_bytes (Buffers and the like outside the V8 heap), when /metrics answered. */
  externalBytes?: number
  /** nodejs_heap_size_total_bytes (what V8 has committed for its heap), when /metrics answered. */
  heapTotalBytes?: number
  /** Major (mark-compact) GCs so far, nodejs_gc_duration_seconds_count{kind="major"}, when /metrics answered. */
  majorGcs?: number
}

/** A process to watch; `pid()` is undefined while it is down. */
export interface Watched {
  name: string
  pid(): number | undefined
  incarnation(): number
  /** Where its /metrics is, if anywhere. */
  opsUrl(): string | undefined
}

/** VmRSS of `pid` in bytes; throws when the process is gone. */
export async function readRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]
  if (kb === undefined) throw new Error(`/proc/${pid}/status has no VmRSS (a zombie?)`)
  return Number(kb) * 1024
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on every Linux ABI in use). */
const USER_HZ = 100

/** User + system CPU seconds `pid` has used, from /proc/<pid>/stat; throws when the process is gone. */
export async function readCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  if (!Number.isFinite(ticks)) throw new Error(`/proc/${pid}/stat has no utime/stime`)
  return ticks / USER_HZ
}

/** The V8 heap figures from a Pollen process's /metrics; empty when it does not answer. */
export async function readHeap(opsUrl: string): Promise<Pick<ProcSample, 'heapUsedBytes' | 'externalBytes' | 'heapTotalBytes' | 'majorGcs'>> {
  try {
    const res = await request(`${opsUrl}/metrics`, { signal: AbortSignal.timeout(2_000) })
    const text = await res.body.text()
    if (res.statusCode !== 200) return {}
    const value = (name: string, labels = '(?:\\{[^}]*\\})?'): number | undefined => {
      const m = new RegExp(`^${name}${labels}\\s+(\\S+)$`, 'm').exec(text)
      return m === null ? undefined : Number(m[1])
    }
    return {
      heapUsedBytes: value('nodejs_heap_size_used_bytes'),
      externalBytes: value('nodejs_external_memory_bytes'),
      heapTotalBytes: value('nodejs_heap_size_total_bytes'),
      majorGcs: value('nodejs_gc_duration_seconds_count', '\\{kind="major"\\}'),
    }
  } catch {
    return {}
  }
}

/** Number of open file descriptors of `pid`; throws when the process is gone. */
export async function countFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length
}

export class ProcSampler {
  /** Samples by process name, in time order. */
  readonly samples = new Map<string, ProcSample[]>()
  readonly #watched: Watched[]
  readonly #startedAt: number
  #timer: NodeJS.Timeout | undefined
  #busy = false

  constructor(watched: Watched[], startedAt: number) {
    this.#watched = watched
    this.#startedAt = startedAt
    for (const w of watched) this.samples.set(w.name, [])
  }

  /** Samples now and then every `intervalMs` until stop(). */
  start(intervalMs: number): void {
    void this.sample()
    this.#timer = setInterval(() => void this.sample(), intervalMs)
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** One sample of every watched process that is up; a process that dies meanwhile is skipped. */
  async sample(): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      const atMs = Date.now() - this.#startedAt
      await Promise.all(
        this.#watched.map(async (w) => {
          const pid = w.pid()
          if (pid === undefined) return
          const incarnation = w.incarnation()
          try {
            const opsUrl = w.opsUrl()
            const [rssBytes, fds, cpuSeconds, heap] = await Promise.all([readRss(pid), countFds(pid), readCpuSeconds(pid), opsUrl === undefined ? {} : readHeap(opsUrl)])
            if (w.pid() !== pid) return
            this.samples.get(w.name)!.push({ atMs, incarnation, pid, rssBytes, fds, cpuSeconds, ...heap })
          } catch {
            /* died between pid() and the read */
          }
        }),
      )
    } finally {
      this.#busy = false
    }
  }
}
