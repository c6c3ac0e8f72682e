import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { DhtJson, FleetJson, ReportInput, SuiteRun, ThroughputJson } from '../../bench/report/inputs.js'
import { renderReport } from '../../bench/report/render.js'

const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../../bench/report/fixtures/${name}.json`, import.meta.url), 'utf8')) as T

const suite: SuiteRun = {
  startedAt: '2026-11-28T16:00:00.000Z',
  endedAt: '2026-11-28T16:21:00.000Z',
  estimateSeconds: 1380,
  elapsedSeconds: 1260,
  parts: [
    { name: 'throughput', command: 'tsx bench/throughput/main.ts', exitCode: 0, seconds: 300 },
    { name: 'fleet', command: 'tsx bench/fleet/main.ts --json bench/results/fleet.json', exitCode: 1, seconds: 900 },
    { name: 'dht', command: 'tsx bench/dht/main.ts', exitCode: 0, seconds: 60 },
  ],
}
const machine = { cpu: 'AMD EPYC 7B13', cores: 2, ramGiB: 23.4, kernel: '6.1.0', node: 'v20.20.2', dockerRegistry: 'docker-registry github.com/docker/distribution 2.8.2+ds1' }
const input = (over: Partial<ReportInput> = {}): ReportInput => ({
  suite,
  machine,
  throughput: fixture<ThroughputJson>('throughput'),
  fleet: fixture<FleetJson>('fleet'),
  dht: fixture<DhtJson>('dht'),
  ...over,
})

describe('renderReport', () => {
  it('describes the machine and the run, with the estimate and the elapsed time', () => {
    const { markdown } = renderReport(input())
    expect(markdown).toContain('| CPU | AMD EPYC 7B13 |')
    expect(markdown).toContain('| RAM | 23.4 GiB |')
    expect(markdown).toContain('2.8.2+ds1')
    expect(markdown).toContain('21.0 min elapsed (estimated 23.0 min)')
    expect(markdown).toMatch(/\| fleet \| `tsx bench\/fleet\/main.ts[^|]*` \| \*\*FAILED\*\* \(exit 1\) \|/)
  })

  it('puts each throughput figure beside its limit and the docker-registry baseline, and states misses with the bottleneck', () => {
    const { markdown } = renderReport(input())
    expect(markdown).toContain('| peer fetch over libp2p, verified | pollen | 38 | 1.64 (receiving agent) | 164 | libp2p stream, unverified: 69 (0.55×) | 771 (0.05×) | ≥ 85% of unverified libp2p | **MISS** |')
    expect(markdown).toContain('| agent cache hit, 4 clients at once | pollen | 304 |')
    expect(markdown).toContain('**agent cache hit** missed "≥ 1.0× docker-registry" with 0.42× (323 MB/s). Bottleneck: event loop saturated by per-chunk hashing in the tee')
    expect(markdown).toContain('Noise decryption and sha256 on one thread')
  })

  it('puts Pollen beside the direct and pull-through baselines per fleet size, with the limit and pass or miss', () => {
    const { markdown } = renderReport(input())
    expect(markdown).toContain('| 8 | 21.5 | 1.06× | 1.12× | 1.21× | ≤ 1.5× | 1.01× | 1.40× | 0 | pass |')
    expect(markdown).toContain('| 32 | 21.5 | 1.35× | 2.47× | 1.62× | ≤ 1.5× | 1.01× | 2.30× | 0 | **MISS** |')
    expect(markdown).toContain('- **Missed** Pollen p95 ≤ 1.5× ideal at N = 32: measured 1.62×.')
    expect(markdown).toContain('CPU-BOUND: these times measure this machine')
    expect(markdown).toContain('**Run failed**: proxy, N = 64: cache did not start')
    expect(markdown).toContain('**This part failed in this run (exit 1)')
  })

  it('renders the DHT latencies, targets and the 10,000-node projection', () => {
    const dht = fixture<DhtJson>('dht')
    const { markdown } = renderReport(input())
    expect(markdown).toContain(`| provide | ${dht.provide.ms.p50!.toFixed(0)} | ${dht.provide.ms.p99!.toFixed(0)} |`)
    expect(markdown).toContain('| first provider found p99 |')
    expect(markdown).toContain('### Projection to 10,000 nodes')
    expect(markdown).toContain('B·K = 40,000 records')
  })

  it('lists every target across the parts in one table, counting the misses', () => {
    const { markdown } = renderReport(input())
    expect(markdown).toMatch(/\d+ of \d+ targets pass; missed: throughput: agent cache hit/)
    expect(markdown).toContain('| fleet | Pollen N = 32: seed serves ≤ 2× | 2.30× | ≤ 2× | **MISS** |')
    // A markdown table is contiguous lines: no blank line may split it.
    expect(markdown).toContain('| part | target | measured | limit | |\n|---|---|---|---|---|\n| throughput |')
  })

  it('draws the fleet and throughput charts as SVG holding the figures, referenced from the markdown', () => {
    const { markdown, charts } = renderReport(input())
    const fleet = charts.find((c) => c.file === 'chart-fleet.svg')!.svg
    const tp = charts.find((c) => c.file === 'chart-throughput.svg')!.svg
    expect(fleet.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
    expect(fleet).toContain('>1.62<')
    expect(fleet).toContain('>2.47<')
    expect(fleet).toContain('Pollen target ≤ 1.5×')
    expect(fleet).toContain('pull-through cache')
    expect(tp).toContain('>38.0<')
    expect(tp).toContain('>69.4<')
    expect(markdown).toContain('![fleet p95 ÷ ideal](results/chart-fleet.svg)')
    expect(markdown).toContain('![throughput vs limits](results/chart-throughput.svg)')
  })

  it('says plainly when a part has no results, and marks figures older than the run', () => {
    const { markdown, charts } = renderReport(input({ fleet: undefined, dht: { ...fixture<DhtJson>('dht'), writtenAt: '2026-11-27T10:00:00.000Z' } }))
    expect(markdown).toContain('**No results: the part failed in this run (exit 1)')
    expect(markdown).toContain('**These figures are from an earlier run (2026-11-27T10:00:00.000Z).**')
    expect(charts.map((c) => c.file)).toEqual(['chart-throughput.svg'])
  })
})
