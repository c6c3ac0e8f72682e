import { describe, expect, it } from 'vitest'
import { MAX_RSS_SLOPE_MIB_PER_HOUR } from './constants.js'
import type { ProcSample } from './proc-sampler.js'
import { formatReport, judge } from './report.js'
import type { SoakResult } from './soak.js'

const MiB = 2 ** 20
const RUN_MS = 60 * 60_000

/** Samples every 5 s over the hour with a GC sawtooth; `rss(t)` and `heapTotal(t)` in MiB at t hours. */
function samples(rss: (h: number) => number, heapTotal: (h: number) => number, incarnationAt?: number): ProcSample[] {
  const out: ProcSample[] = []
  for (let atMs = 0; atMs <= RUN_MS; atMs += 5_000) {
    const h = atMs / 3_600_000
    const saw = ((atMs / 5_000) % 6) * 4
    out.push({
      atMs,
      incarnation: incarnationAt !== undefined && atMs >= incarnationAt ? 1 : 0,
      pid: 100,
      rssBytes: (rss(h) + saw) * MiB,
      fds: 40 + ((atMs / 5_000) % 3),
      // A quarter of a core; a restart starts its count again.
      cpuSeconds: (atMs - (incarnationAt !== undefined && atMs >= incarnationAt ? incarnationAt : 0)) / 4_000,
      heapUsedBytes: (30 + saw) * MiB,
      heapTotalBytes: heapTotal(h) * MiB,
    })
  }
  return out
}

function result(bySeries: Record<string, ProcSample[]>, failures = 0, oomKills: Record<string, number> = {}): SoakResult {
  return {
    options: { durationMs: RUN_MS, agents: 1, cacheSizeBytes: 12 * MiB, rngSeed: 1, faultProbability: 0.2, sampleIntervalMs: 5_000 },
    startedAt: new Date(0).toISOString(),
    ranMs: RUN_MS,
    interrupted: false,
    rollouts: 10,
    releases: 10,
    rolloutsEvictingEverywhere: 10,
    evictions: 10,
    bytesBySource: { peer: 1, seed: 1 },
    kills: 0,
    restartFailures: [],
    counters: { requests: 100, manifestRequests: 20, blobRequests: 80, failures, bytesReceived: 1000, bytesVerified: 1000 },
    failures: [],
    pullSeconds: { count: 20, p50: 1, p95: 2, max: 3 },
    samples: bySeries,
    logTallies: {},
    memory: { how: 'cgroups', limitBytes: Object.fromEntries(Object.keys(bySeries).map((n) => [n, 1024 * MiB])), oomKills },
  }
}

describe('the soak verdict', () => {
  it('passes flat processes and fails one whose RSS floor climbs outside the V8 heap', () => {
    const verdict = judge(
      result({
        seed: samples(() => 200, () => 80),
        'agent 1': samples((h) => 200 + 200 * h, () => 80),
      }),
    )
    expect(verdict.pass).toBe(false)
    expect(verdict.reasons).toEqual([expect.stringMatching(/^agent 1: RSS grows \+200\.0 MiB\/h \(limit 64\)$/)])
    const [seed, agent] = verdict.trends
    expect(seed!.rssOk).toBe(true)
    expect(seed!.rss.slope).toBeCloseTo(0, 5)
    expect(agent!.rss.slope).toBeCloseTo(200, 5)
    // The growth is outside the V8 heap: the report tells native memory from JS objects.
    expect(agent!.outsideHeap.slope).toBeCloseTo(200, 5)
    expect(agent!.heap.slope).toBeCloseTo(0, 5)
    expect(agent!.cpuPercent).toBeCloseTo(25, 5)
    const text = formatReport(result({ 'agent 1': samples((h) => 200 + 200 * h, () => 80) }), verdict)
    expect(text).toMatch(/RSS outside V8 heap slope/)
    expect(text).toMatch(/^FAIL: agent 1: RSS grows/m)
  })

  it('attributes growth that V8 committed to the heap, not to native memory', () => {
    const verdict = judge(result({ seed: samples((h) => 200 + 100 * h, (h) => 80 + 100 * h) }))
    expect(verdict.trends[0]!.rss.slope).toBeCloseTo(100, 5)
    expect(verdict.trends[0]!.outsideHeap.slope).toBeCloseTo(0, 5)
  })

  it(`does not judge the RSS of a process restarted in the window, and fails any failed request`, () => {
    const restarted = samples((h) => (h < 0.75 ? 100 + 400 * h : 100 + 400 * (h - 0.75)), () => 80, 0.75 * RUN_MS)
    const verdict = judge(result({ 'agent 2': restarted }, 1))
    expect(verdict.trends[0]!.rssJudged).toBe(false)
    expect(verdict.trends[0]!.cpuPercent).toBeCloseTo(25, 5)
    expect(verdict.trends[0]!.rss.slope).toBeGreaterThan(MAX_RSS_SLOPE_MIB_PER_HOUR)
    expect(verdict.reasons).toEqual(['1 of 100 requests failed'])
  })

  it('fails a soak in which the kernel killed a process for outgrowing its memory limit', () => {
    const verdict = judge(result({ seed: samples(() => 200, () => 80), 'agent 1': samples(() => 200, () => 80) }, 0, { seed: 0, 'agent 1': 1 }))
    expect(verdict.reasons).toEqual(['agent 1 outgrew its 1.0 GiB memory limit: 1 OOM kill'])
    expect(verdict.pass).toBe(false)
  })

  it('reads RSS right after major GCs when the process reports them, so a slow sawtooth over a flat floor passes and a rising floor fails', () => {
    /** Old space fills for `periodS` seconds, then a major GC brings RSS back to `floor(h)`. */
    const sawtooth = (floor: (h: number) => number, periodS: number): ProcSample[] =>
      samples(() => 0, () => 80).map((s) => {
        const sinceGc = (s.atMs / 1_000) % periodS
        const gcs = Math.floor(s.atMs / 1_000 / periodS)
        return { ...s, rssBytes: (floor(s.atMs / 3_600_000) + sinceGc * 0.8) * MiB, majorGcs: gcs }
      })
    // A GC every 150 s: most minutes hold no trough, and their lows sit up to 72 MiB above the floor.
    const flat = judge(result({ seed: sawtooth(() => 200, 150) }))
    expect(flat.trends[0]!.afterMajorGc).toBeGreaterThan(0)
    expect(flat.trends[0]!.afterMajorGc).toBeLessThan(flat.trends[0]!.samples / 10)
    expect(flat.trends[0]!.rss.slope).toBeCloseTo(0, 5)
    expect(flat.pass).toBe(true)
    const leaking = judge(result({ seed: sawtooth((h) => 200 + 100 * h, 150) }))
    expect(leaking.trends[0]!.rss.slope).toBeGreaterThan(90)
    expect(leaking.pass).toBe(false)
  })
})
