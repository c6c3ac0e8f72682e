import { expect, it } from 'vitest'
import { AGENT_MEMORY_LIMIT, DEFAULT_CACHE_SIZE, SEED_MEMORY_LIMIT } from '../chaos/constants.js'
import { formatReport, judge } from '../chaos/report.js'
import { runSoak } from '../chaos/soak.js'
import { parseSize } from '../protocol/units.js'
import { describeWithBinaries } from './helpers/requirements.js'

/** The CI cut of `npm run chaos` (chaos/soak.ts): too short for slopes to mean much, so they are printed, not asserted. */
const DURATION_MS = 75_000

describeWithBinaries(['docker-registry'], 'soak (short npm run chaos)', () => {
  it(
    'rolls out new image versions to 3 agents under eviction pressure and agent SIGKILLs with no failed request and every pulled byte verified',
    async () => {
      const result = await runSoak({
        durationMs: DURATION_MS,
        agents: 3,
        cacheSizeBytes: parseSize(DEFAULT_CACHE_SIZE),
        rngSeed: 20_261_128,
        faultProbability: 0.5,
        log: (line) => console.log(`soak: ${line}`),
      })
      console.log(formatReport(result, judge(result)))
      expect(result.counters.failures, JSON.stringify(result.failures, null, 2)).toBe(0)
      expect(result.counters.requests).toBeGreaterThan(0)
      expect(result.counters.bytesVerified).toBeGreaterThan(0)
      expect(result.counters.bytesVerified).toBe(result.counters.bytesReceived)
      expect(result.restartFailures).toEqual([])
      expect(result.evictions).toBeGreaterThan(0)
      // Each process ran under its Kubernetes memory limit (a cgroup as root, else the heap flag) and none outgrew it.
      expect(Object.values(result.memory.oomKills)).toEqual([0, 0, 0, 0])
      expect(result.memory.limitBytes).toMatchObject({ seed: parseSize(SEED_MEMORY_LIMIT), 'agent 1': parseSize(AGENT_MEMORY_LIMIT) })
    },
    DURATION_MS + 180_000,
  )
})
