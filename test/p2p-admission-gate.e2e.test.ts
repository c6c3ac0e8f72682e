import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { signProof } from '../content/admission/proof.js'
import { DEFAULT_ADMISSION_DEADLINE_MS } from '../content/p2p/admission-gate.js'
import { createPollenNode, type PollenNode } from '../content/p2p/node.js'
import { digestToCid } from '../agent/p2p/router.js'
import { ADMISSION_PROTOCOL, AdmissionFrameReader, encodePresentation, type AdmissionVerdict } from '../protocol/admission-frames.js'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type PollenProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const DENIED = 'pollen_agent_admission_denied_total'
const SEED_DENIED = 'pollen_seed_admission_denied_total'
const ROUTING_TABLE = 'pollen_agent_dht_routing_table_peers'

const p2pAddrs = (p: PollenProcess): string[] => (p.logs.find((l) => l.msg === 'agent listening' || l.msg === 'seed listening')?.p2p as string[]) ?? []
const imageBytes = (image: BuiltImage): number => image.config.size + image.layers.reduce((n, l) => n + l.size, 0)

async function waitFor(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** A libp2p node of the test's own, with a fresh identity; it presents `token` when given one. */
async function client(token?: string, key?: PrivateKey): Promise<PollenNode> {
  return createPollenNode({ privateKey: key ?? (await generateKeyPair('Ed25519')) }, { logger: pino({ level: 'silent' }), token: token === undefined ? undefined : () => token })
}

/** Presents `token` over /pollen/admission/1.0.0 on a new connection to `addrs` and returns the verdict. */
async function present(node: PollenNode, addrs: string[], token: string): Promise<AdmissionVerdict | undefined> {
  const stream = await node.libp2p.dialProtocol(addrs.map((a) => multiaddr(a)), ADMISSION_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  stream.send(encodePresentation({ token }))
  const reader = new AdmissionFrameReader('verdict')
  for await (const chunk of stream) {
    const verdict = reader.push(chunk instanceof Uint8Array ? chunk : chunk.subarray())
    if (verdict !== undefined) return verdict
  }
  return undefined
}

/** True when `node` cannot keep a connection to `addrs`: the dial fails, or what it got is closed within a second. */
async function redialRefused(node: PollenNode, addrs: string[]): Promise<boolean> {
  try {
    await node.libp2p.dial(addrs.map((a) => multiaddr(a)), { signal: AbortSignal.timeout(5_000) })
  } catch {
    return true
  }
  await waitFor(() => node.libp2p.getConnections().length === 0, 1_000, 'refused redial closed').catch(() => {})
  return node.libp2p.getConnections().length === 0
}

describeWithBinaries(['docker-registry'], 'connection admission between real processes (seed and enrolled agents gate every libp2p connection)', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let image: BuiltImage
  const agents: AgentProcess[] = []
  const clients: PollenNode[] = []

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-p2p-gate-'))
    registry = await startRegistry({})
    image = await buildImage(join(work, 'img'), { layers: [1_500_000, 300_000], seed: 'p2p-gate' })
    await pushImage(registry.url, 'team/app', 'v1', image)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    for (let i = 0; i < 2; i++) {
      agents.push(await startAgentProcess(['--data', join(work, `agent-${i}`), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())]))
    }
    // Both agents and the seed admitted each other and filled their routing tables.
    for (const a of agents) await waitFor(async () => (await a.metric(ROUTING_TABLE)) >= 2, 30_000, 'routing table holds the seed and the other agent')
  })
  afterAll(async () => {
    for (const c of clients) await c.stop().catch(() => {})
    for (const a of agents) await a.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('lets enrolled agents admit the seed and each other, find each other in the DHT and pull blobs peer-to-peer', async () => {
    const [a, b] = agents as [AgentProcess, AgentProcess]
    await pullImage(a.url, 'team/app', 'v1', registry.host)
    await pullImage(b.url, 'team/app', 'v1', registry.host)
    expect(await b.metric('pollen_agent_blob_bytes_total', { source: 'peer' })).toBeGreaterThanOrEqual(imageBytes(image))
    expect(await a.metric('pollen_agent_peer_upload_bytes_total')).toBeGreaterThanOrEqual(imageBytes(image))
    for (const p of [a, b]) expect(await p.metric(DENIED)).toBe(0)
    expect(await seed.metric(SEED_DENIED, { reason: 'not-presented' })).toBe(0)
    for (const p of [seed, a, b]) expect(p.logs.filter((l) => l.msg === 'a peer refused our admission token' || String(l.msg).startsWith('peer refused admission'))).toEqual([])
  })

  it('disconnects a client that presents no token within the deadline, at the agent and at the seed, refuses its redial and keeps it out of the routing table and the DHT', async () => {
    const a = agents[0]!
    const tableBefore = await a.metric(ROUTING_TABLE)
    const [toAgent, toSeed] = [await client(), await client()]
    clients.push(toAgent, toSeed)
    const started = Date.now()
    await toAgent.libp2p.dial(p2pAddrs(a).map((m) => multiaddr(m)), { signal: AbortSignal.timeout(5_000) })
    await toSeed.libp2p.dial(p2pAddrs(seed).map((m) => multiaddr(m)), { signal: AbortSignal.timeout(5_000) })
    // While it waits, the DHT tells it nothing, though the agent provides this layer.
    let providers = 0
    try {
      for await (const event of toAgent.libp2p.services.dht.findProviders(digestToCid(image.layers[0]!.digest), { signal: AbortSignal.timeout(2_000) })) {
        if (event.name === 'PROVIDER') providers += event.providers.length
      }
    } catch { /* the deadline */ }
    expect(providers).toBe(0)
    expect(await a.metric(ROUTING_TABLE)).toBe(tableBefore)

    await waitFor(() => toAgent.libp2p.getConnections().length === 0, DEFAULT_ADMISSION_DEADLINE_MS + 3_000, 'agent disconnected the client')
    const agentMs = Date.now() - started
    await waitFor(() => toSeed.libp2p.getConnections().length === 0, DEFAULT_ADMISSION_DEADLINE_MS + 3_000, 'seed disconnected the client')
    const seedMs = Date.now() - started
    console.log(`a client without a token was disconnected by the agent after ${agentMs} ms and by the seed after ${seedMs} ms (deadline ${DEFAULT_ADMISSION_DEADLINE_MS} ms)`)
    expect(agentMs).toBeGreaterThanOrEqual(DEFAULT_ADMISSION_DEADLINE_MS - 500)
    expect(agentMs).toBeLessThan(DEFAULT_ADMISSION_DEADLINE_MS + 2_000)
    expect(seedMs).toBeLessThan(DEFAULT_ADMISSION_DEADLINE_MS + 2_500)

    expect(await a.metric(DENIED, { reason: 'not-presented' })).toBe(1)
    expect(await seed.metric(SEED_DENIED, { reason: 'not-presented' })).toBe(1)
    expect(a.logs).toContainEqual(expect.objectContaining({ level: 40, peer: toAgent.peerId, reason: 'not-presented' }))
    expect(seed.logs).toContainEqual(expect.objectContaining({ level: 40, peer: toSeed.peerId, reason: 'not-presented' }))
    expect(await redialRefused(toAgent, p2pAddrs(a))).toBe(true)
    expect(await redialRefused(toSeed, p2pAddrs(seed))).toBe(true)
    // Refused once, logged once: the redial was turned away by the connection gater.
    expect(await a.metric(DENIED, { reason: 'not-presented' })).toBe(1)
    expect(a.logs.filter((l) => l.peer === toAgent.peerId && l.level === 40)).toHaveLength(1)
    expect(await a.metric(ROUTING_TABLE)).toBe(tableBefore)
  })

  it('refuses a client that presents a token issued to another PeerId (a stolen token) as peer-mismatch, and disconnects it', async () => {
    const a = agents[1]!
    const stolen = await seed.clientToken()
    const thief = await client()
    clients.push(thief)
    const before = await a.metric(DENIED, { reason: 'peer-mismatch' })
    expect(await present(thief, p2pAddrs(a), stolen)).toEqual({ status: 'refused', reason: 'peer-mismatch' })
    await waitFor(() => thief.libp2p.getConnections().length === 0, 2_000, 'agent disconnected the thief')
    expect(await a.metric(DENIED, { reason: 'peer-mismatch' })).toBe(before + 1)
    expect(a.logs).toContainEqual(expect.objectContaining({ level: 40, peer: thief.peerId, reason: 'peer-mismatch' }))
    expect(await redialRefused(thief, p2pAddrs(a))).toBe(true)
  })

  it('admits a client that presents its own token: it stays connected past the deadline and finds providers in the DHT', async () => {
    const a = agents[0]!
    const key = await generateKeyPair('Ed25519')
    const proof = await signProof(key, 'pollen-seed', Math.floor(Date.now() / 1000))
    const joinToken = (await readFile(await seed.joinTokenFile(), 'utf8')).trim()
    const res = await fetch(`${seed.url}/v1/admission`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ peerId: proof.peerId, proof: { timestamp: proof.timestamp, signature: proof.signature }, joinToken }),
      signal: AbortSignal.timeout(10_000),
    })
    expect(res.status).toBe(200)
    const { token } = (await res.json()) as { token: string }
    const member = await client(token, key)
    clients.push(member)
    await member.libp2p.dial(p2pAddrs(a).map((m) => multiaddr(m)), { signal: AbortSignal.timeout(5_000) })
    const found = new Set<string>()
    for await (const event of member.libp2p.services.dht.findProviders(digestToCid(image.layers[0]!.digest), { signal: AbortSignal.timeout(5_000) })) {
      if (event.name === 'PROVIDER') for (const p of event.providers) found.add(p.id.toString())
      if (found.size >= 2) break
    }
    expect(found.size).toBeGreaterThanOrEqual(1)
    await new Promise((r) => setTimeout(r, DEFAULT_ADMISSION_DEADLINE_MS + 1_000))
    expect(member.libp2p.getConnections().length).toBeGreaterThanOrEqual(1)
    expect(a.logs.filter((l) => l.peer === member.peerId && l.level === 40)).toEqual([])
  })
})

describeWithBinaries(['docker-registry'], 'no connection admission in an anonymous fleet (seed --anonymous-pulls, agents not enrolled)', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  const agents: AgentProcess[] = []

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-p2p-anon-'))
    registry = await startRegistry({})
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed'), undefined, ['--anonymous-pulls']))
    for (let i = 0; i < 2; i++) agents.push(await startAgentProcess(['--data', join(work, `agent-${i}`), '--seed', seed.url, '--default-ns', registry.host]))
    for (const a of agents) await waitFor(async () => (await a.metric(ROUTING_TABLE)) >= 2, 30_000, 'routing table holds the seed and the other agent')
  })
  afterAll(async () => {
    for (const a of agents) await a.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('keeps everyone connected past the deadline and shares blobs peer-to-peer, as before', async () => {
    const image = await buildImage(join(work, 'img'), { layers: [1_000_000], seed: 'anon' })
    await pushImage(registry.url, 'team/anon', 'v1', image)
    const [a, b] = agents as [AgentProcess, AgentProcess]
    await pullImage(a.url, 'team/anon', 'v1', registry.host)
    await pullImage(b.url, 'team/anon', 'v1', registry.host)
    expect(await b.metric('pollen_agent_blob_bytes_total', { source: 'peer' })).toBeGreaterThanOrEqual(imageBytes(image))
    const outsider = await client()
    try {
      await outsider.libp2p.dial(p2pAddrs(a).map((m) => multiaddr(m)), { signal: AbortSignal.timeout(5_000) })
      await new Promise((r) => setTimeout(r, DEFAULT_ADMISSION_DEADLINE_MS + 1_000))
      expect(outsider.libp2p.getConnections().length).toBeGreaterThanOrEqual(1)
    } finally {
      await outsider.stop()
    }
    for (const p of [a, b]) expect(await p.metric(DENIED)).toBe(0)
    expect(await seed.metric(SEED_DENIED)).toBe(0)
  })
})
