import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import type { SingleKadDHT } from '@libp2p/kad-dht'
import { afterEach, describe, expect, it } from 'vitest'
import { CONNECTION_PING_INTERVAL_MS, createPollenNode, type PollenNode, type PollenNodeInit } from './node.js'
import { withResolversPolyfilled } from './node20-shim.js'

const logger = pino({ level: 'silent' })
/** libp2p's own connection-monitor ping interval, which Pollen overrides. */
const DEFAULT_PING_INTERVAL_MS = 10_000

describe('createPollenNode', () => {
  const nodes: PollenNode[] = []
  async function start(init: Partial<PollenNodeInit> = {}): Promise<PollenNode> {
    const node = await createPollenNode({ privateKey: await generateKeyPair('Ed25519'), ...init }, { logger })
    nodes.push(node)
    return node
  }
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(n => n.stop()))
  })

  it('has Promise.withResolvers once node.ts is loaded, polyfilled only where the runtime lacks it', async () => {
    const major = Number(process.versions.node.split('.')[0])
    expect(typeof (Promise as unknown as { withResolvers?: unknown }).withResolvers).toBe('function')
    if (major >= 22) expect(withResolversPolyfilled).toBe(false)
    // ping and yamux call Promise.withResolvers: on Node 20 this fails with ECONNRESET without the shim.
    const a = await start()
    const b = await start({ bootstrap: [a.multiaddrs()[0]!] })
    expect(b.connectedPeers()).toBe(1)
    const rtt = await b.libp2p.services.ping.ping(a.libp2p.peerId, { signal: AbortSignal.timeout(3_000) })
    expect(rtt).toBeGreaterThanOrEqual(0)
  })

  it('lists its addresses with /p2p/<id> and rejects bootstrap addresses without one', async () => {
    const a = await start()
    expect(a.multiaddrs()[0]).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${a.peerId}$`))
    await expect(start({ bootstrap: ['/ip4/127.0.0.1/tcp/1'] })).rejects.toThrow(/\/p2p\/<PeerId>/)
  })

  it('re-bootstraps after every peer went away, once the bootstrap node is back on the same port and identity', async () => {
    const seedKey = await generateKeyPair('Ed25519')
    const seed = await start({ privateKey: seedKey })
    const seedAddr = seed.multiaddrs()[0]!
    const listen = seedAddr.replace(/\/p2p\/.*$/, '')
    const agent = await start({ bootstrap: [seedAddr] })
    expect(agent.connectedPeers()).toBe(1)

    await seed.stop()
    await waitFor(() => agent.connectedPeers() === 0, 5_000)
    const down = Date.now()
    const back = await start({ privateKey: seedKey, listen: [listen] })
    expect(back.multiaddrs()[0]).toBe(seedAddr)

    await waitFor(() => agent.connectedPeers() === 1, 10_000)
    console.log(`re-bootstrap: agent reconnected ${Date.now() - down} ms after the seed restarted`)
    expect(agent.libp2p.getPeers()[0]?.toString()).toBe(seed.peerId)
    // The DHT routing table refills from the new connection.
    const dht = agent.libp2p.services.dht as SingleKadDHT
    await waitFor(() => dht.routingTable.size >= 1, 5_000)
  })

  it('puts a connected DHT peer back into the routing table when kad-dht left it out (a first ping that timed out)', async () => {
    const seed = await start({ rebootstrapCheckMs: 100 })
    const agent = await start({ bootstrap: [seed.multiaddrs()[0]!], rebootstrapCheckMs: 100 })
    const dht = agent.libp2p.services.dht as SingleKadDHT
    await waitFor(() => dht.routingTable.size === 1, 5_000)
    // What a timed-out ping leaves behind: connected, yet missing from the table.
    await (dht.routingTable as unknown as { remove(p: unknown): Promise<void> }).remove(seed.libp2p.peerId)
    expect(dht.routingTable.size).toBe(0)
    expect(agent.connectedPeers()).toBe(1)
    await waitFor(() => dht.routingTable.size === 1, 5_000)
    expect(agent.connectedPeers()).toBe(1)
  })

  it('leaves an idle connection unpinged for longer than libp2p\'s default 10 s ping interval', async () => {
    // Every connection is pinged each CONNECTION_PING_INTERVAL_MS; the ping is what sets conn.rtt.
    expect(CONNECTION_PING_INTERVAL_MS).toBeGreaterThan(DEFAULT_PING_INTERVAL_MS + 1_500)
    const a = await start()
    const b = await start({ bootstrap: [a.multiaddrs()[0]!] })
    await new Promise((r) => setTimeout(r, DEFAULT_PING_INTERVAL_MS + 1_500))
    const conns = [...a.libp2p.getConnections(), ...b.libp2p.getConnections()]
    expect(conns.length).toBeGreaterThanOrEqual(2)
    expect(conns.map((c) => c.rtt)).toEqual(conns.map(() => undefined))
  }, 20_000)

  it('rebootstrap() reports how many bootstrap peers are connected', async () => {
    const seed = await start()
    const agent = await start({ bootstrap: [seed.multiaddrs()[0]!] })
    expect(await agent.rebootstrap()).toBe(1)
    await seed.stop()
    await waitFor(() => agent.connectedPeers() === 0, 5_000)
    expect(await agent.rebootstrap()).toBe(0)
  })
})

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise(r => setTimeout(r, 50))
  }
}
