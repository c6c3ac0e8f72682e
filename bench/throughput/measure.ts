/** Timing helpers shared by the throughput suite: curl downloads with server CPU and peak RSS from /proc. */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { cpuSeconds, peakRss, resetPeakRss } from '../proc-stats.js'

const run = promisify(execFile)

/** One measured path: MB/s (10^6 B/s), CPU seconds of the measured process, its peak RSS in MiB. */
export interface Sample {
  mbps: number
  cpu: number
  rssMiB: number | undefined
  /** Downloads the figure is the median of (1 when absent). */
  runs?: number
}

/** This process's CPU seconds (user + system) so far. */
export function selfCpu(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** Downloads `url` with curl to /dev/null; returns MB/s. Throws unless exactly `size` bytes arrived. */
export async function curl(url: string, size: number, headers: Record<string, string> = {}): Promise<number> {
  const h = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`])
  const { stdout } = await run('curl', ['-sS', '--fail', '--max-time', '600', ...h, '-o', '/dev/null', '-w', '%{size_download} %{speed_download}', url])
  const [bytes, speed] = stdout.trim().split(' ').map(Number)
  if (bytes !== size) throw new Error(`${url}: got ${bytes} bytes, expected ${size}`)
  return speed! / 1e6
}

/**
 * `runs` downloads of `url` by `clients` concurrent curls each; the server `pid`'s CPU and
 * peak RSS per run. Returns the median run by MB/s (aggregate over the clients).
 */
export async function measureServer(url: string, pid: number, size: number, options: { runs?: number; clients?: number; headers?: Record<string, string> } = {}): Promise<Sample> {
  const runs = options.runs ?? 1
  const clients = options.clients ?? 1
  const samples: Sample[] = []
  for (let i = 0; i < runs; i++) {
    await resetPeakRss(pid)
    const cpu0 = await cpuSeconds(pid)
    const t = performance.now()
    const speeds = await Promise.all(Array.from({ length: clients }, () => curl(url, size, options.headers)))
    const seconds = (performance.now() - t) / 1000
    const mbps = clients === 1 ? speeds[0]! : (clients * size) / 1e6 / seconds
    samples.push({ mbps, cpu: (await cpuSeconds(pid)) - cpu0, rssMiB: (await peakRss(pid)) / 2 ** 20 })
  }
  samples.sort((a, b) => a.mbps - b.mbps)
  return { ...samples[Math.floor(samples.length / 2)]!, runs }
}
