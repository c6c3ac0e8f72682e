import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildImage, pushImage } from './helpers/oci-image.js'
import { TEST_OIDC_AUDIENCE, TEST_OIDC_ISSUER, TEST_OIDC_SUBJECT, createOidcIssuer, type TestOidcIssuer } from './helpers/oidc-issuer.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

describeWithBinaries(['docker-registry'], 'OIDC enrollment (Kubernetes-like service-account tokens)', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let issuer: TestOidcIssuer
  const agents: AgentProcess[] = []

  async function agentWithToken(token: string): Promise<AgentProcess> {
    const n = agents.length
    const tokenFile = join(work, `sa-token-${n}`)
    await writeFile(tokenFile, token, { mode: 0o600 })
    const a = await startAgentProcess(['--data', join(work, `agent-${n}`), '--seed', seed.url, '--default-ns', registry.host, '--oidc-token-file', tokenFile])
    agents.push(a)
    return a
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-oidc-'))
    registry = await startRegistry({})
    const image = await buildImage(join(work, 'img'), { layers: [200_000, 10_000], seed: 'oidc' })
    await pushImage(registry.url, 'team/app', 'v1', image)
    issuer = await createOidcIssuer({ alg: 'ES256', issuer: TEST_OIDC_ISSUER })
    await issuer.writeJwks(join(work, 'oidc-jwks.json'))
    seed = await startSeedProcess(
      seedArgsFor(registry, join(work, 'seed'), undefined, ['--oidc-issuer', TEST_OIDC_ISSUER, '--oidc-jwks', join(work, 'oidc-jwks.json'), '--oidc-audience', TEST_OIDC_AUDIENCE]),
    )
  })
  afterAll(async () => {
    for (const a of agents) await a.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('admits an agent with a service-account token and no join token: it pulls, and the seed counts and audits an oidc enrollment', async () => {
    const saToken = await issuer.mint()
    const a = await agentWithToken(saToken)
    const pulled = await pullImage(a.url, 'team/app', 'v1', registry.host)
    expect(pulled.blobs).toBe(3)
    expect(await seed.metric('pollen_seed_admission_issued_total', { how: 'oidc' })).toBe(1)
    expect(await seed.metric('pollen_seed_admission_issued_total', { how: 'join-token' })).toBe(0)
    expect((await fetch(`${a.url}/readyz`, { signal: AbortSignal.timeout(5000) })).status).toBe(200)

    const peerId = String(a.logs.find((l) => l.msg === 'agent listening')?.peerId)
    const audit = await readFile(join(work, 'seed', 'admission', 'audit.log'), 'utf8')
    const events = audit.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(events).toContainEqual(expect.objectContaining({ event: 'issue', peerId, subject: TEST_OIDC_SUBJECT, reason: 'oidc' }))
    for (const text of [audit, a.output(), seed.output()]) {
      expect(text).not.toContain(saToken.split('.')[1])
      expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\./)
    }
  })

  it('refuses an agent whose token is for another audience: it is not ready and the seed counts the denial', async () => {
    const a = await agentWithToken(await issuer.mint({ aud: ['https://kubernetes.default.svc'] }))
    const ready = await fetch(`${a.url}/readyz`, { signal: AbortSignal.timeout(5000) })
    expect(ready.status).toBe(503)
    expect(await seed.metric('pollen_seed_admission_denied_total', { reason: 'audience' })).toBeGreaterThanOrEqual(1)
    expect(a.logs).toContainEqual(expect.objectContaining({ msg: 'the seed refused admission', how: 'oidc' }))
    await expect(pullImage(a.url, 'team/app', 'v1', registry.host)).rejects.toThrow(/HTTP 40[13]/)
  })
})
