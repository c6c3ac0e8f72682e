import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { signProof } from '../content/admission/proof.js'
import { createPollenNode } from '../content/p2p/node.js'
import { readFrame, readableOf, sendBytes } from '../agent/p2p/stream-io.js'
import { BLOB_PROTOCOL, encodeRequest } from '../protocol/blob-frames.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { fetchBlob, pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const run = promisify(execFile)
const SEED_MAIN = fileURLToPath(new URL('../dist/seed/main.js', import.meta.url))

describeWithBinaries(['docker-registry'], 'admission on the seed hop (the default)', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let image: BuiltImage
  const agents: AgentProcess[] = []

  async function joinToken(scope: string): Promise<string> {
    const { stdout } = await run(process.execPath, [SEED_MAIN, 'join-token', 'create', '--data', join(work, 'seed'), '--uses', '1', '--scope', scope], { timeout: 30_000 })
    const path = join(work, `join-${agents.length}-${Math.random().toString(36).slice(2)}`)
    await writeFile(path, stdout, { mode: 0o600 })
    return path
  }
  async function agent(extra: string[]): Promise<AgentProcess> {
    const a = await startAgentProcess(['--data', join(work, `agent-${agents.length}`), '--seed', seed.url, '--default-ns', registry.host, ...extra])
    agents.push(a)
    return a
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-admission-'))
    registry = await startRegistry({})
    image = await buildImage(join(work, 'img'), { layers: [300_000, 20_000], seed: 'admission' })
    await pushImage(registry.url, 'team/app', 'v1', image)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
  })
  afterAll(async () => {
    for (const a of agents) await a.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('lets an agent enrolled with a join token pull, and shows a valid token in /readyz', async () => {
    const a = await agent(['--join-token-file', await joinToken('**')])
    const pulled = await pullImage(a.url, 'team/app', 'v1', registry.host)
    expect(pulled.blobs).toBe(3)
    expect(await seed.metric('pollen_seed_admission_issued_total', { how: 'join-token' })).toBe(1)
    const ready = (await (await fetch(`${a.url}/readyz`)).json()) as { checks: Array<{ name: string; ok: boolean }> }
    expect(ready.checks).toContainEqual({ name: 'admission', ok: true })
    expect(a.output()).not.toMatch(/pjt_|eyJ[A-Za-z0-9_-]{20,}\./)
    const peerId = String(a.logs.find((l) => l.msg === 'agent listening')?.peerId)
    const audit = await readFile(join(work, 'seed', 'admission', 'audit.log'), 'utf8')
    const events = audit.trim().split('\n').map((l) => JSON.parse(l) as { event: string; peerId?: string; repository?: string })
    expect(events).toContainEqual(expect.objectContaining({ event: 'issue', peerId }))
    expect(events).toContainEqual(expect.objectContaining({ event: 'pull', peerId, repository: `${registry.host}/team/app` }))
    expect(audit).not.toMatch(/pjt_|eyJ[A-Za-z0-9_-]{20,}\./)
  })

  it('refuses requests without a token, with a garbage token, and outside the token\'s scope', async () => {
    const base = await fetch(`${seed.url}/v2/`, { signal: AbortSignal.timeout(10_000) })
    expect(base.status).toBe(401)
    expect(base.headers.get('www-authenticate')).toBe(`Bearer realm="${seed.url}/v1/admission",service="pollen"`)
    const noToken = await fetch(`${seed.url}/v2/team/app/manifests/v1`, { signal: AbortSignal.timeout(10_000) })
    expect(noToken.status).toBe(401)
    expect(((await noToken.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('UNAUTHORIZED')
    const garbage = await fetch(`${seed.url}/v2/team/app/manifests/v1`, { headers: { authorization: 'Bearer not.a.token' }, signal: AbortSignal.timeout(10_000) })
    expect(garbage.status).toBe(401)
    expect(await seed.metric('pollen_seed_admission_denied_total', { reason: 'missing' })).toBeGreaterThanOrEqual(1)
    expect(await seed.metric('pollen_seed_admission_denied_total', { reason: 'malformed' })).toBeGreaterThanOrEqual(1)

    const unenrolled = await agent([])
    await expect(pullImage(unenrolled.url, 'team/app', 'v1', registry.host)).rejects.toThrow(/HTTP 403/)
    const outOfScope = await agent(['--join-token-file', await joinToken('other/**')])
    await expect(pullImage(outOfScope.url, 'team/app', 'v1', registry.host)).rejects.toThrow(/HTTP 403/)
    expect(await seed.metric('pollen_seed_admission_denied_total', { reason: 'scope' })).toBeGreaterThanOrEqual(1)
  })

  it('serves blobs over libp2p to an enrolled peer and refuses one without a token', async () => {
    const a = await agent(['--join-token-file', await joinToken('**')])
    const b = await agent(['--join-token-file', await joinToken('**')])
    const c = await agent([])
    await new Promise((r) => setTimeout(r, 1000))
    await pullImage(a.url, 'team/app', 'v1', registry.host)
    await pullImage(b.url, 'team/app', 'v1', registry.host)
    expect(await b.metric('pollen_agent_blob_bytes_total', { source: 'peer' })).toBeGreaterThanOrEqual(image.layers.reduce((n, l) => n + l.size, 0))
    // The blob by digest: no peer serves C (no token), and neither does the seed.
    await expect(fetchBlob(c.url, 'team/app', image.layers[0]!.digest, `?ns=${registry.host}`)).rejects.toThrow(/HTTP 403/)
    expect(await c.metric('pollen_agent_blob_bytes_total', { source: 'peer' })).toBe(0)
    // C never shows a token on its libp2p connections: the seed, its bootstrap node, disconnects it
    // once the admission deadline (5 s) has passed, and the DHT never names a peer to it.
    const deadline = Date.now() + 10_000
    while ((await seed.metric('pollen_seed_admission_denied_total', { reason: 'not-presented' })) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
    expect(await seed.metric('pollen_seed_admission_denied_total', { reason: 'not-presented' })).toBeGreaterThanOrEqual(1)
  })

  it('refuses over libp2p a token that was issued to another PeerId (a stolen token)', async () => {
    const holder = await agent(['--join-token-file', await joinToken('**')])
    await pullImage(holder.url, 'team/app', 'v1', registry.host)
    // Enroll identity X with the seed, then present X's token from identity Y.
    const x = await generateKeyPair('Ed25519')
    const proof = await signProof(x, 'pollen-seed', Math.floor(Date.now() / 1000))
    const join = (await readFile(await joinToken('**'), 'utf8')).trim()
    const enrolled = await fetch(`${seed.url}/v1/admission`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ peerId: proof.peerId, proof: { timestamp: proof.timestamp, signature: proof.signature }, joinToken: join }),
      signal: AbortSignal.timeout(10_000),
    })
    expect(enrolled.status).toBe(200)
    const stolen = ((await enrolled.json()) as { token: string }).token
    const y = await createPollenNode({ privateKey: await generateKeyPair('Ed25519') }, { logger: pino({ level: 'silent' }) })
    try {
      const addrs = (holder.logs.find((l) => l.msg === 'agent listening')?.p2p as string[]).map((a) => multiaddr(a))
      const stream = await y.libp2p.dialProtocol(addrs, BLOB_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const readable = readableOf(stream)
      await sendBytes(stream, encodeRequest({ digest: image.layers[0]!.digest, offset: 0, token: stolen }))
      const answer = await readFrame(readable, 'response', AbortSignal.timeout(10_000))
      expect(answer.status).toBe('unauthorized')
      readable.destroy()
    } finally {
      await y.stop()
    }
    expect(await holder.metric('pollen_agent_admission_denied_total', { reason: 'peer-mismatch' })).toBe(1)
  })

  it('refuses a used-up join token at enrollment, and the agent reports itself not ready', async () => {
    const path = await joinToken('**')
    await agent(['--join-token-file', path])
    const second = await agent(['--join-token-file', path])
    const ready = await fetch(`${second.url}/readyz`)
    expect(ready.status).toBe(503)
    expect(await seed.metric('pollen_seed_admission_denied_total')).toBeGreaterThanOrEqual(1)
  })
})
