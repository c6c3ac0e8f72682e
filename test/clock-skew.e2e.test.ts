/**
 * Reliability: clocks that disagree (within the admission tokens' tolerance). The seed keeps
 * this machine's clock; two agents run 20 s ahead of it and two 20 s behind (libfaketime
 * preloaded, so the agents' pairwise skew is 40 s). Enrollment, the seed's check of each
 * agent's token, peers admitting each other, and every pull must work.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CLOCK_TOLERANCE_S } from '../protocol/admission.js'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { recordResult, tally, verifiedPull, type PullOutcome } from './helpers/reliability.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const MiB = 1024 * 1024
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'
const SKEWS_S = [20, -20, 20, -20]

/** Runs a process with its wall clock shifted by `seconds` (monotonic clocks untouched, so timers behave). */
const skewed = (seconds: number): string[] => ['env', `LD_PRELOAD=${LIBFAKETIME}`, `FAKETIME=${seconds >= 0 ? '+' : ''}${seconds}s`, 'FAKETIME_DONT_FAKE_MONOTONIC=1']

const imageBytes = (image: BuiltImage): number => image.config.size + image.layers.reduce((n, l) => n + l.size, 0)

describeWithBinaries(['docker-registry', 'faketime'], 'clock skew of ±20 s between seed and agents', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  const agents: AgentProcess[] = []
  const outcomes: PullOutcome[] = []

  beforeAll(async () => {
    if (!existsSync(LIBFAKETIME)) throw new Error(`${LIBFAKETIME} missing (apt-get install -y faketime)`)
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-skew-'))
    registry = await startRegistry({})
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    for (const [i, skew] of SKEWS_S.entries()) {
      agents.push(await startAgentProcess(['--data', join(work, `agent-${i}`), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())], { prefix: skewed(skew) }))
    }
  }, 120_000)
  afterAll(async () => {
    for (const a of agents) await a.stop().catch(() => {})
    await seed?.stop().catch(() => {})
    await registry?.stop().catch(() => {})
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('the skew is real and within the tokens\' tolerance', async () => {
    expect(2 * Math.max(...SKEWS_S.map(Math.abs))).toBeGreaterThan(CLOCK_TOLERANCE_S) // agent to agent: beyond it
    expect(Math.max(...SKEWS_S.map(Math.abs))).toBeLessThan(CLOCK_TOLERANCE_S) // agent to seed: within it
    for (const [i, agent] of agents.entries()) {
      // Node's HTTP server stamps every answer with its own clock (the Date header, whole seconds).
      const res = await fetch(`${agent.opsUrl}/healthz`, { signal: AbortSignal.timeout(5000) })
      const offsetS = (Date.parse(res.headers.get('date')!) - Date.now()) / 1000
      expect(Math.abs(offsetS - SKEWS_S[i]!)).toBeLessThan(3)
    }
  })

  it('every agent enrolled, and pulls through skewed agents complete from the seed and from peers', async () => {
    for (const agent of agents) {
      const ready = await fetch(`${agent.opsUrl}/readyz`, { signal: AbortSignal.timeout(5000) })
      expect(ready.status).toBe(200)
    }
    expect(await seed.metric('pollen_seed_admission_issued_total')).toBeGreaterThanOrEqual(agents.length)
    const image = await buildImage(join(work, 'img'), { layers: [6 * MiB, 3 * MiB, 1 * MiB], seed: 'clock-skew' })
    await pushImage(registry.url, 'skew/app', 'v1', image)

    // The first agent (+20 s) fills from the seed; the others then find it (and each other) as peers.
    outcomes.push(await verifiedPull(agents[0]!.url, 'skew/app', 'v1', registry.host, { deadlineMs: 90_000 }))
    await new Promise((r) => setTimeout(r, 1500)) // the provider records go out after the commit
    outcomes.push(...(await Promise.all(agents.slice(1).map((a) => verifiedPull(a.url, 'skew/app', 'v1', registry.host, { deadlineMs: 90_000 })))))
    // And by digest, the way containerd fetches after resolving the tag.
    outcomes.push(...(await Promise.all(agents.map((a) => verifiedPull(a.url, 'skew/app', image.manifestDigest, registry.host, { deadlineMs: 90_000 })))))

    const peerBytes = await Promise.all(agents.map((a) => a.metric('pollen_agent_blob_bytes_total', { source: 'peer' })))
    const seedBytes = await Promise.all(agents.map((a) => a.metric('pollen_agent_blob_bytes_total', { source: 'seed' })))
    const denied = await Promise.all(agents.map((a) => a.metric('pollen_agent_admission_denied_total')))
    const seedDenied = await seed.metric('pollen_seed_admission_denied_total')
    const result = tally('clock-skew', outcomes, { skewsS: SKEWS_S, imageBytes: imageBytes(image), peerBytesByAgent: peerBytes, seedBytesByAgent: seedBytes, agentDenials: denied, seedDenials: seedDenied })
    await recordResult(result)

    expect(result.bytesCorrupted).toBe(0)
    expect(result.bytesLost).toBe(0)
    expect(result.pullsCompleted).toBe(result.pullsAttempted)
    expect(result.bytesVerified).toBeGreaterThanOrEqual(outcomes.length * imageBytes(image))
    // Peers admitted each other across 40 s of skew: the agents after the first got bytes from peers.
    expect(peerBytes.slice(1).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    expect(denied.every((n) => n === 0)).toBe(true)
    expect(seedDenied).toBe(0)
  }, 240_000)
})
