/** HTTP GETs made from inside a namespace (with its curl), for agents that listen on their own loopback. */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { inNs } from './network.js'

const run = promisify(execFile)

/** Status code and body of `GET url` from inside `ns`; status 0 when nothing answered. */
export async function nsGet(ns: string, url: string): Promise<{ status: number; body: string }> {
  const [cmd, ...args] = [...inNs(ns), 'curl', '-s', '--max-time', '5', '-w', '\n%{http_code}', url]
  try {
    const { stdout } = await run(cmd!, args, { maxBuffer: 16 * 1024 * 1024 })
    const cut = stdout.lastIndexOf('\n')
    return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) }
  } catch {
    return { status: 0, body: '' }
  }
}

/** Every sample of `name` in Prometheus text, as label string (`{a="b"}` or ``) → value. */
export function metricSeries(text: string, name: string): Map<string, number> {
  const series = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line)
    if (m === null || m[1] !== name) continue
    series.set(m[2] ?? '', Number(m[3]))
  }
  return series
}

/** The sum of every sample of `name`. */
export function metricSum(text: string, name: string): number {
  let sum = 0
  for (const v of metricSeries(text, name).values()) sum += v
  return sum
}
