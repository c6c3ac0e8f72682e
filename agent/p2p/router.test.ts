import { createHash } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { createPollenNode, type PollenNode, type PollenNodeInit } from '../../content/p2p/node.js'
import { DhtRouter, RAW_CODEC, digestToCid, type ProviderInfo } from './router.js'

const logger = pino({ level: 'silent' })

function sha256Of(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`
}

describe('digestToCid', () => {
  it('is a CIDv1, raw codec, sha2-256 multihash of the digest bytes themselves', () => {
    const hex = createHash('sha256').update('layer').digest('hex')
    const cid = digestToCid(`sha256:${hex}`)
    const expected = CID.create(1, 0x55, Digest.create(0x12, Buffer.from(hex, 'hex')))
    expect(cid.equals(expected)).toBe(true)
    expect(cid.toString()).toBe(expected.toString())
    expect(cid.version).toBe(1)
    expect(cid.code).toBe(RAW_CODEC)
    expect(cid.multihash.code).toBe(0x12)
    expect(Buffer.from(cid.multihash.digest).toString('hex')).toBe(hex)
    expect(digestToCid(`sha256:${hex}`).toString()).toBe(cid.toString())
  })

  it('maps sha512 digests to multihash 0x13', () => {
    const hex = createHash('sha512').update('layer').digest('hex')
    const cid = digestToCid(`sha512:${hex}`)
    expect(cid.multihash.code).toBe(0x13)
    expect(cid.equals(CID.create(1, 0x55, Digest.create(0x13, Buffer.from(hex, 'hex'))))).toBe(true)
  })

  it('rejects anything that is not a canonical sha256/sha512 digest with a typed error', () => {
    const hex = 'a'.repeat(64)
    for (const bad of ['', 'latest', hex, `sha256:${hex.slice(1)}`, `sha256:${hex.toUpperCase()}`, `sha256:${'g'.repeat(64)}`, `sha512:${hex}`]) {
      expect(() => digestToCid(bad), bad).toThrowError(expect.objectContaining({ code: 'DigestInvalidError' }))
    }
    expect(() => digestToCid(`md5:${'a'.repeat(32)}`)).toThrowError(expect.objectContaining({ code: 'UnsupportedDigestAlgorithmError' }))
  })
})

describe('DhtRouter on real nodes over loopback', () => {
  const nodes: PollenNode[] = []
  async function start(init: Partial<PollenNodeInit> = {}): Promise<PollenNode> {
    const node = await createPollenNode({ privateKey: await generateKeyPair('Ed25519'), ...init }, { logger })
    nodes.push(node)
    return node
  }
  /** A seed plus `n` nodes bootstrapping from it. */
  async function network(n: number, init: Partial<PollenNodeInit> = {}): Promise<PollenNode[]> {
    const seed = await start(init)
    const rest = await Promise.all(Array.from({ length: n }, () => start({ ...init, bootstrap: [seed.multiaddrs()[0]!] })))
    return [seed, ...rest]
  }
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(n => n.stop()))
  })

  it('finds the node that provided a digest among six nodes (latencies printed; bench/dht measures them)', async () => {
    const net = await network(5)
    const digest = sha256Of('six nodes')
    const lookups: Array<{ seconds: number; found: number }> = []
    const provider = new DhtRouter({ libp2p: net[1]!.libp2p, logger })
    const finder = new DhtRouter({ libp2p: net[5]!.libp2p, logger, onLookup: (seconds, found) => lookups.push({ seconds, found }) })

    // Cold: right after start, kad-dht first waits for its routing table and initial self-query.
    let t = performance.now()
    const provided = await provider.provide(digest, AbortSignal.timeout(30_000))
    const coldMs = performance.now() - t
    expect(provided.complete).toBe(true)
    expect(provided.peers).toBeGreaterThan(0)
    t = performance.now()
    const warm = await provider.provide(sha256Of('six nodes, warm'), AbortSignal.timeout(30_000))
    const warmMs = performance.now() - t
    expect(warm.complete).toBe(true)

    t = performance.now()
    let firstFindMs: number | undefined
    const found: ProviderInfo[] = []
    for await (const p of finder.findProviders(digest, { signal: AbortSignal.timeout(20_000) })) {
      firstFindMs ??= performance.now() - t
      found.push(p)
    }
    console.log(`6 nodes: provide cold ${coldMs.toFixed(1)} ms (${provided.peers} peers), warm ${warmMs.toFixed(1)} ms (${warm.peers} peers); ` +
      `first provider found in ${firstFindMs?.toFixed(1)} ms, lookup ended after ${(lookups[0]!.seconds * 1000).toFixed(1)} ms`)

    expect(found.map(p => p.peerId)).toEqual([net[1]!.peerId])
    expect(found[0]!.multiaddrs.some(a => a.startsWith('/ip4/127.0.0.1/tcp/'))).toBe(true)
    expect(lookups).toEqual([{ seconds: expect.any(Number), found: 1 }])
  })

  it('never lists the caller itself as a provider, and honours limit', async () => {
    const net = await network(3)
    const digest = sha256Of('self')
    await Promise.all([1, 2].map(i => new DhtRouter({ libp2p: net[i]!.libp2p, logger }).provide(digest, AbortSignal.timeout(5_000))))
    const router = new DhtRouter({ libp2p: net[1]!.libp2p, logger })
    const all: string[] = []
    for await (const p of router.findProviders(digest, { signal: AbortSignal.timeout(2_000) })) all.push(p.peerId)
    expect(all).toEqual([net[2]!.peerId])
    const one: string[] = []
    for await (const p of new DhtRouter({ libp2p: net[3]!.libp2p, logger }).findProviders(digest, { signal: AbortSignal.timeout(2_000), limit: 1 })) one.push(p.peerId)
    expect(one).toHaveLength(1)
  })

  it('resolves a provide that cannot reach anyone when its signal aborts, instead of hanging', async () => {
    const lonely = await start()
    const t = performance.now()
    const result = await new DhtRouter({ libp2p: lonely.libp2p, logger }).provide(sha256Of('alone'), AbortSignal.timeout(300))
    expect(result).toEqual({ peers: 0, complete: false })
    expect(performance.now() - t).toBeLessThan(2_000)
  })

  it('withdraw cuts short a provide still in flight', async () => {
    const lonely = await start()
    const router = new DhtRouter({ libp2p: lonely.libp2p, logger })
    const digest = sha256Of('in flight')
    const pending = router.provide(digest) // no signal: only the 30 s default deadline would end it
    await new Promise(r => setTimeout(r, 100))
    const t = performance.now()
    await router.withdraw(digest)
    expect(await pending).toEqual({ peers: 0, complete: false })
    expect(performance.now() - t).toBeLessThan(1_000)
  })

  it('stops re-providing a withdrawn digest while it keeps re-providing the others', async () => {
    // Records live 2 s and are re-provided at half-life: only re-providing keeps them findable.
    const validity = 2_000
    const interval = 300
    const net = await network(2, { provideValidityMs: validity, reprovideIntervalMs: interval })
    const holder = new DhtRouter({ libp2p: net[1]!.libp2p, logger })
    const asker = new DhtRouter({ libp2p: net[2]!.libp2p, logger })
    const kept = sha256Of('kept')
    const dropped = sha256Of('dropped')
    await Promise.all([holder.provide(kept, AbortSignal.timeout(5_000)), holder.provide(dropped, AbortSignal.timeout(5_000))])
    expect(await providersOf(asker, dropped)).toEqual([net[1]!.peerId])

    await holder.withdraw(dropped)
    // Our own store no longer names us for the withdrawn digest: the re-provider has nothing to republish.
    expect(await selfProvides(net[1]!, dropped)).toBe(false)
    expect(await selfProvides(net[1]!, kept)).toBe(true)

    await new Promise(r => setTimeout(r, validity + 2 * interval + 300))
    expect(await providersOf(asker, kept)).toEqual([net[1]!.peerId])
    expect(await providersOf(asker, dropped)).toEqual([])
    expect(await selfProvides(net[1]!, dropped)).toBe(false)
  })
})

async function providersOf(router: DhtRouter, digest: string): Promise<string[]> {
  const ids: string[] = []
  for await (const p of router.findProviders(digest, { signal: AbortSignal.timeout(2_000) })) ids.push(p.peerId)
  return ids
}

/** True when the node's local provider store lists the node itself for `digest`. */
async function selfProvides(node: PollenNode, digest: string): Promise<boolean> {
  const events = node.libp2p.services.dht.findProviders(digestToCid(digest), { signal: AbortSignal.timeout(1_000) })
  for await (const e of events) {
    // The local store answers first, with path index -1; anything later is the network's.
    if (e.name === 'PROVIDER' && e.path.index === -1) return e.providers.some(p => p.id.equals(node.libp2p.peerId))
    if (e.name === 'PROVIDER' || e.name === 'SEND_QUERY') return false
  }
  return false
}
