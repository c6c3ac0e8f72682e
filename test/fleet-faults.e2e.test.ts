import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ContentStore } from '../content/store.js'
import { DigestVerifier } from '../protocol/digest-verifier.js'
import { startFleetAgents, startFleetSeed, waitFor, type FleetAgent, type FleetSeed } from './helpers/fleet-processes.js'
import { fleetPull, tally, type ExpectedImage, type PullOutcome } from './helpers/fleet-pull.js'
import { formatRow, recordRow, type ScenarioRow } from './helpers/fleet-report.js'
import { startUpstreamFaults, type UpstreamFaults } from './helpers/fleet-upstream-faults.js'
import { buildImage, pushImage } from './helpers/oci-image.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { createRng } from './helpers/rng.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

/*
 * A rollout of one small image (4 layers, 10 MiB) to 8 real `pollen-agent` processes, enrolled
 * with a real `pollen-seed` whose upstream is a real docker-registry behind a fault-injecting
 * proxy (test/helpers/fleet-upstream-faults.ts), under three faults: agents SIGKILLed mid-pull and
 * restarted, the seed SIGKILLed and restarted, and bursts of 500/429 from the upstream. Each
 * client hashes every body against its digest while it streams (test/helpers/fleet-pull.ts).
 * Each scenario prints one `fleet-faults | …` line and is written to test/results/fleet-faults.json.
 * FLEET_DEBUG=1 also prints the agents' warnings and every upstream request.
 */

const MiB = 1024 * 1024
const AGENTS = 8
const LAYERS = [4 * MiB, 3 * MiB, 2 * MiB, 1 * MiB]
/** A pull still running after this is ended and counted as failed, so that the row is printed before the test times out. */
const PULL_DEADLINE_MS = 150_000
const RESULTS = fileURLToPath(new URL('./results/fleet-faults.json', import.meta.url))
/** Replays a run's kill points and restart moment: FLEET_FAULTS_SEED=<printed seed>. */
const RNG_SEED = Number(process.env.FLEET_FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31))
const RUN = { startedAt: new Date().toISOString(), rngSeed: RNG_SEED, agents: AGENTS, layers: LAYERS }

describeWithBinaries(['docker-registry'], 'a fleet rollout to 8 agent processes under faults', () => {
  const random = createRng(RNG_SEED).next
  let work: string
  let registry: RunningRegistry
  let upstream: UpstreamFaults
  let seed: FleetSeed
  let agents: FleetAgent[] = []

  beforeAll(async () => {
    console.log(`fleet-faults: FLEET_FAULTS_SEED=${RNG_SEED}`)
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-fleet-faults-'))
    registry = await startRegistry({})
    upstream = await startUpstreamFaults(registry.url)
    // The seed's only way to the registry is the fault-injecting proxy, which also counts every upstream fetch.
    seed = await startFleetSeed(seedArgsFor({ ...registry, url: upstream.url }, join(work, 'seed')))
    const joinTokenFile = await seed.joinTokenFile({ uses: 4 * AGENTS })
    agents = await startFleetAgents(AGENTS, { work, seedUrl: seed.url, ns: registry.host, enroll: ['--join-token-file', joinTokenFile] })
    await waitForRoutingTables(agents)
  }, 180_000)
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()))
    await seed?.stop()
    await upstream?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  /** Builds an image of LAYERS under `name`, pushes it straight to the registry (not through the proxy). */
  async function prepare(name: string): Promise<{ repo: string; image: ExpectedImage }> {
    const built = await buildImage(join(work, name), { layers: LAYERS, seed: `${name}/${RNG_SEED}` })
    const repo = `fleet/${name}`
    await pushImage(registry.url, repo, 'v1', built)
    const blobs = [built.config, ...built.layers].map((b) => ({ digest: b.digest, size: b.size }))
    return { repo, image: { manifestDigest: built.manifestDigest, manifestSize: built.manifest.byteLength, blobs } }
  }

  /**
   * Every client pulls like containerd under kubelet: a failed manifest or blob fetch is tried
   * again after 1, 2, 4, 8, then 15 s, at most 8 times (about 75 s, enough to wait out a seed
   * restart on this loaded machine). Each repeat is counted and reported.
   */
  const pullOptions = (repo: string) => ({
    ns: registry.host,
    repo,
    tag: 'v1',
    retries: 8,
    retryDelayMs: (n: number) => Math.min(1000 * 2 ** n, 15_000),
    // Ends a stuck pull as failed (reported, then asserted) before the test's own timeout.
    deadline: AbortSignal.timeout(PULL_DEADLINE_MS),
  })

  /** The row for a scenario: the pulls' figures, and the upstream's answers to this image's blob GETs since `firstRequest`. */
  function row(scenario: string, started: number, image: ExpectedImage, outcomes: PullOutcome[], firstRequest: number, notes: Record<string, unknown>): ScenarioRow {
    const t = tally(outcomes)
    const gets = image.blobs.map((b) => upstream.blobGets(b.digest).ok)
    return {
      scenario,
      agents: AGENTS,
      pullsAttempted: t.pullsAttempted,
      pullsCompleted: t.pullsCompleted,
      pullsInterrupted: t.pullsInterrupted,
      pullsFailed: t.pullsFailed,
      clientRetries: t.clientRetries,
      bytesVerified: t.bytesVerified,
      bytesCorrupted: t.bytesCorrupted,
      bytesLost: t.bytesLost,
      upstreamBlobGets: gets.reduce((a, b) => a + b, 0),
      upstreamBlobGetsMaxPerBlob: Math.max(...gets),
      upstreamFaults: upstream.requests.slice(firstRequest).filter((r) => r.injected).length,
      slowestPullSeconds: t.slowestSeconds,
      seconds: (performance.now() - started) / 1000,
      notes: { ...notes, clientFailures: failureKinds(outcomes) },
    }
  }

  /** Prints the row (and the clients' failed fetches, and the agents' errors since `since`), and records it. */
  async function report(r: ScenarioRow, outcomes: PullOutcome[], since: number, firstRequest: number): Promise<void> {
    console.log(formatRow(r))
    const errors = outcomes.flatMap((o) => o.errors)
    if (errors.length > 0) console.log(`fleet-faults | ${r.scenario} | client-side fetch failures:\n  ${errors.join('\n  ')}`)
    // Errors (level 50) of every agent; with FLEET_DEBUG also its warnings.
    const level = process.env.FLEET_DEBUG === undefined ? 50 : 40
    const logged = agents.flatMap((a) => a.logs().filter((l) => Number(l.level) >= level && Number(l.time) >= since).map((l) => `agent ${a.index}: ${brief(l)}`))
    if (logged.length > 0) console.log(`fleet-faults | ${r.scenario} | agent ${level === 50 ? 'errors' : 'warnings and errors'}:\n  ${logged.join('\n  ')}`)
    if (process.env.FLEET_DEBUG !== undefined) {
      const t0 = upstream.requests[firstRequest]?.at ?? 0
      const seen = upstream.requests.slice(firstRequest).map((q) => `+${q.at - t0}ms ${q.method} ${q.path.replace(/sha256:(.{8})\w+/, '$1')} ${q.range ?? ''} -> ${q.status}${q.injected ? ' (injected)' : ''} ${q.bytes} B`)
      console.log(`fleet-faults | ${r.scenario} | upstream requests:\n  ${seen.join('\n  ')}`)
    }
    await recordRow(RESULTS, RUN, r)
  }

  /** What every scenario demands of its pulls: all complete (bar those whose own agent was killed), no byte wrong or missing. */
  function expectEveryPullWhole(r: ScenarioRow, image: ExpectedImage, outcomes: PullOutcome[]): void {
    expect(r.bytesCorrupted).toBe(0)
    expect(r.bytesLost).toBe(0)
    expect(r.pullsFailed).toBe(0)
    expect(r.pullsCompleted).toBe(r.pullsAttempted - r.pullsInterrupted)
    const whole = image.manifestSize + image.blobs.reduce((n, b) => n + b.size, 0)
    for (const o of outcomes.filter((o) => o.status === 'completed')) expect(o.bytesVerified).toBe(whole)
  }

  it('completes every pull with verified bytes while a quarter of the agents are SIGKILLed at random points of their pull, and each restarted agent completes its pull with a consistent store', async () => {
    const started = performance.now()
    const since = Date.now()
    const firstRequest = upstream.requests.length
    const { repo, image } = await prepare('kills')
    const whole = image.manifestSize + image.blobs.reduce((n, b) => n + b.size, 0)
    const victims = new Map<number, number>()
    while (victims.size < AGENTS / 4) {
      const i = Math.floor(random() * AGENTS)
      // Killed once its client has read between 10 % and 80 % of the image.
      if (!victims.has(i)) victims.set(i, Math.floor((0.1 + 0.7 * random()) * whole))
    }
    const kills: Array<{ agent: number; atBytes: number; restartMs: number }> = []
    const outcomes: PullOutcome[] = []
    await Promise.all(
      agents.map(async (agent, i) => {
        const killAt = victims.get(i)
        if (killAt === undefined) {
          outcomes.push(await fleetPull(agent.url, image, pullOptions(repo)))
          return
        }
        const died = new AbortController()
        let read = 0
        let killed: Promise<void> | undefined
        const kill = (): void => {
          killed = agent.kill()
          died.abort()
        }
        const first = await fleetPull(agent.url, image, {
          ...pullOptions(repo),
          signal: died.signal,
          onBytes: (n) => {
            read += n
            if (killed === undefined && read >= killAt) kill()
          },
        })
        outcomes.push(first)
        // A pull that failed before its kill point is a failure of its own (counted); the agent is killed all the same.
        if (killed === undefined) kill()
        await killed
        const restarting = Date.now()
        await agent.start()
        kills.push({ agent: i, atBytes: read, restartMs: Date.now() - restarting })
        outcomes.push(await fleetPull(agent.url, image, pullOptions(repo)))
      }),
    )
    const r = row('agent-kills', started, image, outcomes, firstRequest, { kills })
    await report(r, outcomes, since, firstRequest)
    expectEveryPullWhole(r, image, outcomes)
    expect(r.pullsInterrupted).toBe(victims.size)
    expect(r.pullsAttempted).toBe(AGENTS + victims.size)
    // The seed was not touched: it fetched each blob from the upstream exactly once.
    expect(r.upstreamBlobGetsMaxPerBlob).toBe(1)
    expect(r.upstreamBlobGets).toBe(image.blobs.length)

    // Each restarted agent's store: every indexed blob's bytes match its digest, this image's blobs are all there, no temp file is left.
    for (const i of victims.keys()) {
      const agent = agents[i]!
      await waitFor(async () => (await agent.process.metric('pollen_agent_inflight_fills')) === 0, 60_000, `agent ${i} has no fill in progress`)
      await agent.stop()
      const held = await verifyStore(agent.dataDir)
      for (const b of image.blobs) expect(held).toContain(b.digest)
      await agent.start()
    }
    await waitForRoutingTables(agents)
  }, 300_000)

  it('completes every pull with verified bytes when the seed is killed and restarted mid-rollout on the same data dir and ports', async () => {
    const started = performance.now()
    const since = Date.now()
    const firstRequest = upstream.requests.length
    const { repo, image } = await prepare('seed-restart')
    const blobBytes = image.blobs.reduce((n, b) => n + b.size, 0)
    // Restarted once the upstream sent the seed between 20 % and 60 % of the image's blob bytes.
    const restartAt = Math.floor((0.2 + 0.4 * random()) * blobBytes)
    let fromUpstream = 0
    let restarted: Promise<number> | undefined
    upstream.onBytes = (n, req) => {
      if (!req.path.includes('/blobs/')) return
      fromUpstream += n
      if (restarted === undefined && fromUpstream >= restartAt) {
        restarted = seed.restart()
        restarted.catch(() => {})
      }
    }
    let outcomes: PullOutcome[]
    try {
      outcomes = await Promise.all(agents.map((agent) => fleetPull(agent.url, image, pullOptions(repo))))
    } finally {
      upstream.onBytes = undefined
    }
    expect(restarted).toBeDefined()
    const downMs = await restarted!
    const r = row('seed-restart', started, image, outcomes, firstRequest, { restartAtUpstreamBytes: restartAt, seedDownMs: downMs })
    await report(r, outcomes, since, firstRequest)
    expectEveryPullWhole(r, image, outcomes)
    expect(r.pullsAttempted).toBe(AGENTS)
    // At most one upstream fetch of a blob was cut by the restart: each blob left the upstream at most twice.
    expect(r.upstreamBlobGetsMaxPerBlob).toBeLessThanOrEqual(2)
    expect(r.upstreamBlobGets).toBeLessThanOrEqual(2 * image.blobs.length)
    await waitForRoutingTables(agents)
  }, 300_000)

  it('completes every pull with verified bytes through bursts of 500s and 429s with Retry-After from the upstream, fetching each blob from the upstream once', async () => {
    const started = performance.now()
    const since = Date.now()
    const firstRequest = upstream.requests.length
    const { repo, image } = await prepare('upstream-burst')
    // 500, 429 (Retry-After: 1), 500, … : a burst on tag resolution, then one on the blob fetches.
    const BURST = { manifests: 6, blobs: 6 }
    upstream.burst({ count: BURST.manifests, only: 'manifests', statuses: [500, 429], retryAfterSeconds: 1 })
    upstream.burst({ count: BURST.blobs, only: 'blobs', statuses: [500, 429], retryAfterSeconds: 1 })
    const outcomes = await Promise.all(agents.map((agent) => fleetPull(agent.url, image, pullOptions(repo))))
    const seen = upstream.requests.slice(firstRequest)
    const injected = (kind: string): number => seen.filter((q) => q.injected && q.path.includes(`/${kind}/`)).length
    const r = row('upstream-5xx-429', started, image, outcomes, firstRequest, { burst: BURST, injected: { manifests: injected('manifests'), blobs: injected('blobs') } })
    await report(r, outcomes, since, firstRequest)
    expectEveryPullWhole(r, image, outcomes)
    expect(upstream.pending()).toBe(0)
    expect(r.upstreamFaults).toBe(BURST.manifests + BURST.blobs)
    expect(r.pullsAttempted).toBe(AGENTS)
    // Every blob was fetched whole from the upstream exactly once, and failed at most as often as faults were injected.
    expect(r.upstreamBlobGetsMaxPerBlob).toBe(1)
    for (const b of image.blobs) expect(upstream.blobGets(b.digest).failed).toBeLessThanOrEqual(BURST.blobs)
  }, 300_000)
})

/**
 * The clients' failed fetches by kind: `HTTP <status>` for an error answer, `body cut` for a
 * body that broke off. A 500 from an agent is a bug (an error that reached the HTTP edge
 * untranslated); 503 and 429 are the answers a mirror gives when its sources cannot serve.
 */
function failureKinds(outcomes: PullOutcome[]): Record<string, number> {
  const kinds: Record<string, number> = {}
  for (const e of outcomes.flatMap((o) => o.errors)) {
    const kind = /: HTTP (\d+)/.exec(e)?.[1] ?? (/ after \d+ bytes$/.test(e) ? 'body cut' : 'other')
    const key = /^\d+$/.test(kind) ? `HTTP ${kind}` : kind
    kinds[key] = (kinds[key] ?? 0) + 1
  }
  return kinds
}

/** A log line without the noise (a DOMException's constant table, stacks past their first frames). */
function brief(entry: Record<string, unknown>): string {
  return JSON.stringify(entry, (key, value: unknown) => {
    if (/^[A-Z_]+_ERR$/.test(key) || key === 'service') return undefined
    if (key === 'stack' && typeof value === 'string') return value.split('\n').slice(0, 4).join(' | ')
    return value
  })
}

/** Waits until every agent's DHT routing table holds the seed and at least one other agent. */
async function waitForRoutingTables(agents: FleetAgent[]): Promise<void> {
  await Promise.all(agents.map((a) => waitFor(async () => (await a.process.metric('pollen_agent_dht_routing_table_peers')) >= 2, 60_000, `agent ${a.index}'s routing table holds 2 peers`)))
}

/**
 * Opens a stopped agent's store and checks that every indexed blob's file hashes to its digest
 * and that no temp file is left. Returns the digests it holds.
 */
async function verifyStore(dataDir: string): Promise<string[]> {
  const store = await ContentStore.open({ dir: join(dataDir, 'content') }, { logger: pino({ level: 'silent' }) })
  const held: string[] = []
  try {
    for await (const [digest, record] of store.entries()) {
      const verifier = new DigestVerifier(digest, record.size)
      for await (const chunk of await store.createReadStream(digest)) verifier.update(chunk as Buffer)
      expect(() => verifier.verify(), `${digest.value} in ${dataDir}`).not.toThrow()
      held.push(digest.value)
    }
  } finally {
    await store.close()
  }
  expect(await readdir(join(dataDir, 'content', 'tmp')).catch(() => [])).toEqual([])
  return held
}
