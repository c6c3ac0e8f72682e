import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildImage, pushImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

/** Short enough for two rotations in a test; the next key is published 2.4 s before it signs. */
const ROTATION_S = 24
/** Agents refresh at two thirds of this: every few seconds, so new keys sign their tokens soon after each rotation. */
const TOKEN_TTL_S = 9
const AGENTS = 3
const KiB = 1024

describeWithBinaries(['docker-registry'], 'admission keys rotating under load', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  const agents: AgentProcess[] = []

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-rotation-'))
    registry = await startRegistry({})
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed'), undefined, ['--key-rotation', `${ROTATION_S}s`, '--token-ttl', `${TOKEN_TTL_S}s`]))
    for (let i = 0; i < AGENTS; i++) agents.push(await startAgentProcess(['--data', join(work, `agent-${i}`), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())]))
    await new Promise((r) => setTimeout(r, 1500))
  })
  afterAll(async () => {
    for (const a of agents) await a.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('keeps every pull working, from the seed and from peers, across two key rotations', async () => {
    const keysCreated = (): number => seed.logs.filter((l) => l.msg === 'admission signing key created').length
    const peerBytes = async (): Promise<number> => {
      let sum = 0
      for (const a of agents) sum += await a.metric('pollen_agent_blob_bytes_total', { source: 'peer' })
      return sum
    }
    const initialKeys = keysCreated()
    let attempted = 0
    let failed = 0
    const failures: string[] = []
    let peerBytesAfterSecondRotation = 0
    let round = 0
    // Each round: a new image; one agent pulls it through the seed, the others from peers.
    const deadline = Date.now() + (2 * ROTATION_S + 12) * 1000
    while (Date.now() < deadline) {
      round++
      const image = await buildImage(join(work, `img-${round}`), { layers: [256 * KiB + round, 64 * KiB], seed: `rotation-${round}` })
      await pushImage(registry.url, 'team/app', `r${round}`, image)
      const first = agents[round % AGENTS]!
      const others = agents.filter((a) => a !== first)
      const before = await peerBytes()
      for (const pulls of [[first], others]) {
        await Promise.all(
          pulls.map(async (a) => {
            attempted++
            await pullImage(a.url, 'team/app', `r${round}`, registry.host).catch((err: unknown) => {
              failed++
              failures.push(`round ${round}: ${(err as Error).message}`)
            })
          }),
        )
      }
      if (keysCreated() - initialKeys >= 2) peerBytesAfterSecondRotation += (await peerBytes()) - before
      await new Promise((r) => setTimeout(r, 300))
    }
    const denied = await Promise.all(agents.map((a) => a.metric('pollen_agent_admission_denied_total')))
    console.log(
      `key rotation under load: ${keysCreated() - initialKeys} new keys, ${attempted} pulls, ${failed} failed, ` +
        `${peerBytesAfterSecondRotation} bytes from peers after the second rotation, peer refusals ${denied.join('/')}`,
    )
    expect(failures).toEqual([])
    expect(keysCreated() - initialKeys).toBeGreaterThanOrEqual(2)
    expect(peerBytesAfterSecondRotation).toBeGreaterThan(0)
    // Every peer knew each new key before it signed a token: no token was refused.
    expect(denied).toEqual(agents.map(() => 0))
    expect(await seed.metric('pollen_seed_admission_denied_total')).toBe(0)
  })
})
