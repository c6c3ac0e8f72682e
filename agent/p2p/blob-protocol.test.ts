import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CachingSource } from '../../content/caching-source.js'
import { FallbackSource } from '../../content/fallback-source.js'
import { MemorySource } from '../../content/fault-sources.js'
import { ContentStore } from '../../content/store.js'
import { BLOB_PROTOCOL, FrameReader, encodeResponse } from '../../protocol/blob-frames.js'
import { parseDigest, type Digest } from '../../protocol/digest.js'
import { BlobServer } from './blob-server.js'
import { createPollenNode, type PollenNode } from '../../content/p2p/node.js'
import { PeerSource, type PeerSourceComponents } from './peer-source.js'
import { DhtRouter } from './router.js'
import { readableOf, sendBytes } from './stream-io.js'

const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' })
const digestOf = (b: Buffer): Digest => parseDigest(`sha256:${createHash('sha256').update(b).digest('hex')}`)

interface Agent {
  node: PollenNode
  store: ContentStore
  router: DhtRouter
  seed: MemorySource
  peers: PeerSource
  cache: CachingSource
  server: BlobServer
  mismatches: string[]
}

let work: string
const agents: Agent[] = []

async function agent(bootstrap: string[], serverInit = {}, plan: Pick<PeerSourceComponents, 'askParent'> = {}): Promise<Agent> {
  const node = await createPollenNode({ privateKey: await generateKeyPair('Ed25519'), bootstrap }, { logger })
  const store = await ContentStore.open({ dir: await mkdtemp(join(work, 'agent-')) }, { logger })
  const router = new DhtRouter({ libp2p: node.libp2p, logger })
  const seed = new MemorySource('seed')
  const peers = new PeerSource({ announceWaitMs: 300 }, { libp2p: node.libp2p, router, logger, announce: (d) => router.provide(d.value, AbortSignal.timeout(1000)), ...plan })
  const mismatches: string[] = []
  const cache = new CachingSource({ idleTimeoutMs: 5000 }, { store, source: new FallbackSource([peers, seed], { logger }), logger, onMismatch: (s) => mismatches.push(s) })
  const server = new BlobServer(serverInit, { libp2p: node.libp2p, store, blobs: cache, logger })
  await server.start()
  const a = { node, store, router, seed, peers, cache, server, mismatches }
  agents.push(a)
  return a
}

async function collect(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of s) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

let boot: Agent
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'pollen-p2p-'))
  boot = await agent([])
})
afterAll(async () => {
  for (const a of agents) {
    await a.node.stop()
    await a.store.close()
  }
  await rm(work, { recursive: true, force: true })
})

describe('blob protocol between real libp2p nodes', () => {
  it('fetches a blob another agent holds, verifies it and commits it, without touching the seed', async () => {
    const a = await agent(boot.node.multiaddrs())
    const b = await agent(boot.node.multiaddrs())
    const bytes = randomBytes(3 * 1024 * 1024 + 5)
    const d = digestOf(bytes)
    await a.store.putBuffer(d, bytes)
    await a.router.provide(d.value, AbortSignal.timeout(5000))
    const got = await collect((await b.cache.open(d)).stream)
    expect(got.equals(bytes)).toBe(true)
    expect(b.seed.opens).toEqual([])
    expect((await readFile(b.store.blobPath(d))).equals(bytes)).toBe(true)
  })

  it('serves a fill in progress as it grows to a follower whose PeerId sorts after the filler', async () => {
    const x = await agent(boot.node.multiaddrs())
    const y = await agent(boot.node.multiaddrs())
    const [filler, follower] = x.node.peerId < y.node.peerId ? [x, y] : [y, x]
    const bytes = randomBytes(2 * 1024 * 1024)
    const d = digestOf(bytes)
    filler.seed.add(d.value, bytes)
    filler.seed.chunkDelayMs = 20
    const filling = filler.cache.open(d)
    await (await filling).stream.resume()
    await new Promise((r) => setTimeout(r, 300))
    expect(filler.cache.fillOf(d)).toBeDefined()
    const got = await collect((await follower.cache.open(d)).stream)
    expect(got.equals(bytes)).toBe(true)
    expect(follower.seed.opens).toEqual([])
  })

  it('follows the parent the seed names, reading its fill as it grows, even when the follower sorts below it', async () => {
    // A follower whose seed plan names the filler as its parent, and a filler that sorts above it.
    let filler: Agent | undefined
    const follower = await agent(boot.node.multiaddrs(), {}, { askParent: async () => ({ peerId: filler!.node.peerId, multiaddrs: filler!.node.multiaddrs() }) })
    while (filler === undefined || filler.node.peerId < follower.node.peerId) filler = await agent(boot.node.multiaddrs())
    const bytes = randomBytes(2 * 1024 * 1024)
    const d = digestOf(bytes)
    filler.seed.add(d.value, bytes)
    filler.seed.chunkDelayMs = 20
    await (await filler.cache.open(d)).stream.resume()
    await new Promise((r) => setTimeout(r, 300))
    expect(filler.cache.fillOf(d)).toBeDefined()
    const got = await collect((await follower.cache.open(d)).stream)
    expect(got.equals(bytes)).toBe(true)
    expect(follower.seed.opens).toEqual([])
    expect(filler.seed.opens).toEqual([0])
  })

  it('takes no partial copy from other peers when the seed says "from me", and fetches from the seed', async () => {
    const filler = await agent(boot.node.multiaddrs())
    const follower = await agent(boot.node.multiaddrs(), {}, { askParent: async () => null })
    const bytes = randomBytes(2 * 1024 * 1024)
    const d = digestOf(bytes)
    filler.seed.add(d.value, bytes)
    follower.seed.add(d.value, bytes)
    filler.seed.chunkDelayMs = 20
    await (await filler.cache.open(d)).stream.resume()
    await filler.router.provide(d.value, AbortSignal.timeout(5000))
    const got = await collect((await follower.cache.open(d)).stream)
    expect(got.equals(bytes)).toBe(true)
    expect(follower.seed.opens).toEqual([0])
  })

  it('never lets a lying peer\'s bytes into the cache: the fill starts over from another source and the liar is banned', async () => {
    const liar = await agent(boot.node.multiaddrs())
    const victim = await agent(boot.node.multiaddrs())
    const bytes = randomBytes(1024 * 1024)
    const d = digestOf(bytes)
    await liar.server.stop()
    await liar.node.libp2p.handle(BLOB_PROTOCOL, (stream) => {
      void (async () => {
        await sendBytes(stream, encodeResponse({ status: 'ok', size: bytes.byteLength, available: bytes.byteLength, complete: true }))
        await sendBytes(stream, randomBytes(bytes.byteLength))
        await stream.close()
      })().catch(() => {})
    })
    await liar.router.provide(d.value, AbortSignal.timeout(5000))
    victim.seed.add(d.value, bytes)
    const first = await victim.cache.open(d)
    await collect(first.stream).catch(() => undefined)
    await victim.cache.fillOf(d)?.done.catch(() => undefined)
    expect((await readFile(victim.store.blobPath(d))).equals(bytes)).toBe(true)
    expect(victim.mismatches).toEqual(['peer'])
    expect(victim.peers.bannedPeers()).toEqual([liar.node.peerId])
    expect(victim.seed.opens).toEqual([0])
    expect(await readdir(join(victim.store.dir, 'tmp'))).toEqual([])
  })

  it('answers garbage with bad-request and keeps serving others', async () => {
    const holder = await agent(boot.node.multiaddrs())
    const client = await agent(boot.node.multiaddrs())
    const bytes = randomBytes(100_000)
    const d = digestOf(bytes)
    await holder.store.putBuffer(d, bytes)
    for (const garbage of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0, 0, 0, 3, 1, 1, 0x7b]), Buffer.from([0xff, 0xff, 0xff, 0xff])]) {
      const stream = await client.node.libp2p.dialProtocol(holder.node.libp2p.getMultiaddrs(), BLOB_PROTOCOL)
      const readable = readableOf(stream)
      await sendBytes(stream, garbage)
      await stream.close()
      const reader = new FrameReader('response')
      let frame
      for await (const chunk of readable) {
        frame = reader.push(chunk as Uint8Array)?.frame
        if (frame !== undefined) break
      }
      expect(frame?.status).toBe('bad-request')
    }
    await holder.router.provide(d.value, AbortSignal.timeout(5000))
    expect((await collect((await client.cache.open(d)).stream)).equals(bytes)).toBe(true)
  })

  it('answers a malformed request with bad-request that echoes none of its bytes', async () => {
    const holder = await agent(boot.node.multiaddrs())
    const client = await agent(boot.node.multiaddrs())
    const json = (v: unknown) => Buffer.from(JSON.stringify(v))
    const frame = (body: Buffer, version = 1) => Buffer.concat([Buffer.from([0, 0, (body.length + 2) >> 8, (body.length + 2) & 0xff, version, 1]), body])
    const cases = [
      frame(json({ digest: `sha256:${'0'.repeat(64)}`, offset: 0, echoedField: 1 })),
      frame(json({ digest: 'echoedDigest:0000', offset: 0 })),
      frame(json({ digest: `sha256:${'0'.repeat(64)}`, offset: 'echoedOffset' })),
      frame(json({ digest: `sha256:${'0'.repeat(64)}`, offset: 0 }), 7),
    ]
    for (const garbage of cases) {
      const stream = await client.node.libp2p.dialProtocol(holder.node.libp2p.getMultiaddrs(), BLOB_PROTOCOL)
      const readable = readableOf(stream)
      await sendBytes(stream, garbage)
      await stream.close()
      const reader = new FrameReader('response')
      const parts: Buffer[] = []
      let frame
      for await (const chunk of readable) {
        parts.push(chunk as Buffer)
        frame = reader.push(chunk as Uint8Array)?.frame
        if (frame !== undefined) break
      }
      expect(frame?.status).toBe('bad-request')
      expect(Buffer.concat(parts).toString()).not.toMatch(/echoed/)
    }
  })

  it('answers busy beyond --max-uploads, and the client moves on to the next source', async () => {
    const holder = await agent(boot.node.multiaddrs(), { maxUploads: 0 })
    const client = await agent(boot.node.multiaddrs())
    const bytes = randomBytes(50_000)
    const d = digestOf(bytes)
    await holder.store.putBuffer(d, bytes)
    await holder.router.provide(d.value, AbortSignal.timeout(5000))
    client.seed.add(d.value, bytes)
    expect((await collect((await client.cache.open(d)).stream)).equals(bytes)).toBe(true)
    expect(client.seed.opens).toEqual([0])
  })
})
