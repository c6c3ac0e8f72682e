/** Reads the few agent counters the soak tracks from an agent's /metrics. */
import { request } from 'undici'

export interface AgentCounters {
  evictions: number
  /** pollen_agent_blob_bytes_total by its source label (local, peer, seed, …). */
  bytesBySource: Record<string, number>
}

/** GETs `${opsUrl}/metrics` and picks out the counters; throws when the agent does not answer. */
export async function readAgentCounters(opsUrl: string): Promise<AgentCounters> {
  const res = await request(`${opsUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`GET ${opsUrl}/metrics: HTTP ${res.statusCode}`)
  const counters: AgentCounters = { evictions: 0, bytesBySource: {} }
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line)
    if (m === null) continue
    if (m[1] === 'pollen_agent_evictions_total') counters.evictions += Number(m[3])
    if (m[1] === 'pollen_agent_blob_bytes_total') {
      const source = /source="([^"]*)"/.exec(m[2] ?? '')?.[1] ?? 'unknown'
      counters.bytesBySource[source] = (counters.bytesBySource[source] ?? 0) + Number(m[3])
    }
  }
  return counters
}

/** `after - before`, per field (sources missing before count from 0). */
export function counterDelta(before: AgentCounters, after: AgentCounters): AgentCounters {
  const bytesBySource: Record<string, number> = {}
  for (const [source, n] of Object.entries(after.bytesBySource)) bytesBySource[source] = n - (before.bytesBySource[source] ?? 0)
  return { evictions: after.evictions - before.evictions, bytesBySource }
}
