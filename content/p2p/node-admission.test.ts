import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { ADMISSION_PROTOCOL, AdmissionFrameReader, encodePresentation } from '../../protocol/admission-frames.js'
import { AdmissionVerifier, signAdmissionToken, type AdmissionJwks } from '../admission/verifier.js'
import { createPollenNode, type PollenNode } from './node.js'

const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' })
const ISSUER = 'pollen-seed'
const AUDIENCE = 'pollen'
const KID = 'test-key'
const DEADLINE_MS = 600
const signing = generateKeyPairSync('ed25519')
const jwks = { keys: [{ ...signing.publicKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'EdDSA' }] }

async function tokenFor(key: PrivateKey, lifetimeS = 600): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const sub = peerIdFromPrivateKey(key).toString()
  return signAdmissionToken({ iss: ISSUER, aud: AUDIENCE, sub, iat: now, nbf: now, exp: now + lifetimeS, jti: randomBytes(8).toString('hex'), scope: [] }, signing.privateKey, KID)
}

async function waitFor(check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const until = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * True when `from` cannot keep a connection to `to`: the dial fails, or (the refusing side
 * checks after Noise, and the dialler may finish its upgrade first) the connection it got is
 * closed within a second. A resolved dial is never handed to expect(): it holds the node.
 */
async function dialFails(from: PollenNode, to: PollenNode): Promise<boolean> {
  try {
    await from.libp2p.dial(multiaddr(to.multiaddrs()[0]!), { signal: AbortSignal.timeout(3_000) })
  } catch {
    return true
  }
  const toPeer = peerIdFromString(to.peerId)
  await waitFor(() => from.libp2p.getConnections(toPeer).length === 0, 1_000).catch(() => {})
  return from.libp2p.getConnections(toPeer).length === 0
}

const cidOf = (text: string): CID => CID.create(1, 0x55, Digest.create(0x12, new Uint8Array(Buffer.from(text.padEnd(32, '.').slice(0, 32)))))

describe('gated nodes over loopback', () => {
  const nodes: PollenNode[] = []
  const refusals: Array<{ node: string; peer: string; reason: string }> = []

  /** A node that gates peers and presents its own token (an enrolled agent, or the seed). */
  async function enrolled(bootstrap: string[] = [], keys: { current: AdmissionJwks; onUnknownKey?: () => void } = { current: jwks }): Promise<PollenNode> {
    const key = await generateKeyPair('Ed25519')
    const token = await tokenFor(key)
    let self = ''
    const node = await createPollenNode(
      { privateKey: key, bootstrap, admission: { deadlineMs: DEADLINE_MS } },
      {
        logger,
        token: () => token,
        admission: {
          verifier: new AdmissionVerifier({ issuer: ISSUER, audience: AUDIENCE }, { keys: () => keys.current }),
          onRefused: (peer, reason) => refusals.push({ node: self, peer, reason }),
          onUnknownKey: keys.onUnknownKey,
        },
      },
    )
    self = node.peerId
    nodes.push(node)
    return node
  }
  /** A node that gates nobody and presents nothing (an intruder, or an agent of an anonymous fleet). */
  async function plain(key?: PrivateKey): Promise<PollenNode> {
    const node = await createPollenNode({ privateKey: key ?? (await generateKeyPair('Ed25519')) }, { logger })
    nodes.push(node)
    return node
  }
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()))
    refusals.length = 0
  })

  it('lets enrolled nodes admit each other, fill their routing tables and find each other\'s provider records', async () => {
    const seed = await enrolled()
    const a = await enrolled([seed.multiaddrs()[0]!])
    const b = await enrolled([seed.multiaddrs()[0]!])
    await waitFor(() => seed.gate!.isAdmitted(a.peerId) && seed.gate!.isAdmitted(b.peerId) && a.gate!.isAdmitted(seed.peerId), 15_000)
    await waitFor(async () => (await seed.routingTable!.has(peerIdFromString(a.peerId))) && (await a.routingTable!.has(peerIdFromString(seed.peerId))), 15_000)
    const cid = cidOf('provided by a')
    for await (const _ of a.libp2p.services.dht.provide(cid, { signal: AbortSignal.timeout(5_000) })) { /* drain */ }
    const found: string[] = []
    for await (const event of b.libp2p.services.dht.findProviders(cid, { signal: AbortSignal.timeout(5_000) })) {
      if (event.name === 'PROVIDER') found.push(...event.providers.map((p) => p.id.toString()))
      if (found.length > 0) break
    }
    expect(found).toContain(a.peerId)
    expect(b.gate!.isAdmitted(a.peerId) || b.gate!.isAdmitted(seed.peerId)).toBe(true)
    expect(refusals).toEqual([])
  })

  it('asks a peer whose token names a key it has not fetched yet to present it again, and admits it once the keys arrived', async () => {
    const keys: { current: AdmissionJwks; onUnknownKey?: () => void } = { current: { keys: [] } }
    let fetched = 0
    keys.onUnknownKey = () => {
      fetched++
      keys.current = jwks
    }
    const seed = await enrolled([], keys)
    const a = await enrolled([seed.multiaddrs()[0]!])
    await waitFor(() => seed.gate!.isAdmitted(a.peerId), 15_000)
    expect(fetched).toBeGreaterThanOrEqual(1)
    expect(refusals).toEqual([])
  })

  it('disconnects a peer that presents no token within the deadline, refuses its redial and never puts it in the routing table', async () => {
    const seed = await enrolled()
    const intruder = await plain()
    const started = performance.now()
    await intruder.libp2p.dial(multiaddr(seed.multiaddrs()[0]!), { signal: AbortSignal.timeout(5_000) })
    expect(intruder.connectedPeers()).toBe(1)
    // Its DHT requests get no answer while it waits, and none after.
    const cid = cidOf('anything')
    const query = (async () => {
      let answered = 0
      try {
        for await (const event of intruder.libp2p.services.dht.findProviders(cid, { signal: AbortSignal.timeout(3_000) })) {
          if (event.name === 'PEER_RESPONSE') answered++
        }
      } catch { /* aborted */ }
      return answered
    })()
    await waitFor(() => intruder.libp2p.getConnections().length === 0 && seed.libp2p.getConnections().length === 0, DEADLINE_MS + 2_000)
    const ms = performance.now() - started
    console.log(`an unadmitted peer was disconnected ${Math.round(ms)} ms after it connected (deadline ${DEADLINE_MS} ms)`)
    expect(ms).toBeGreaterThanOrEqual(DEADLINE_MS - 50)
    expect(ms).toBeLessThan(DEADLINE_MS + 1_500)
    expect(refusals).toEqual([{ node: seed.peerId, peer: intruder.peerId, reason: 'not-presented' }])
    expect(await seed.routingTable!.has(peerIdFromString(intruder.peerId))).toBe(false)
    expect(seed.routingTable!.size()).toBe(0)
    expect(await dialFails(intruder, seed)).toBe(true)
    expect(intruder.libp2p.getConnections()).toHaveLength(0)
    expect(await query).toBe(0)
    // And the seed does not dial it either.
    expect(await dialFails(seed, intruder)).toBe(true)
  })

  it('refuses a token issued to another PeerId with reason peer-mismatch, and tells the presenter', async () => {
    const seed = await enrolled()
    const victimKey = await generateKeyPair('Ed25519')
    const stolen = await tokenFor(victimKey)
    const thief = await plain()
    const stream = await thief.libp2p.dialProtocol(multiaddr(seed.multiaddrs()[0]!), ADMISSION_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
    stream.send(encodePresentation({ token: stolen }))
    const reader = new AdmissionFrameReader('verdict')
    let verdict
    for await (const chunk of stream) {
      verdict = reader.push(chunk instanceof Uint8Array ? chunk : chunk.subarray())
      if (verdict !== undefined) break
    }
    expect(verdict).toEqual({ status: 'refused', reason: 'peer-mismatch' })
    expect(refusals).toEqual([{ node: seed.peerId, peer: thief.peerId, reason: 'peer-mismatch' }])
    await waitFor(() => thief.libp2p.getConnections().length === 0, 10_000)
    // The rightful owner of the token is still welcome.
    const owner = await plain(victimKey)
    const ownerStream = await owner.libp2p.dialProtocol(multiaddr(seed.multiaddrs()[0]!), ADMISSION_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
    ownerStream.send(encodePresentation({ token: stolen }))
    const ownerReader = new AdmissionFrameReader('verdict')
    let ownerVerdict
    for await (const chunk of ownerStream) {
      ownerVerdict = ownerReader.push(chunk instanceof Uint8Array ? chunk : chunk.subarray())
      if (ownerVerdict !== undefined) break
    }
    expect(ownerVerdict).toEqual({ status: 'ok' })
  })

  it('refuses a peer that sends junk on the admission protocol as malformed, without harm to the node', async () => {
    const seed = await enrolled()
    const a = await enrolled([seed.multiaddrs()[0]!])
    const junk = await plain()
    const stream = await junk.libp2p.dialProtocol(multiaddr(seed.multiaddrs()[0]!), ADMISSION_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
    stream.send(new Uint8Array([0, 0, 0, 9, 1, 1, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b]))
    await waitFor(() => junk.libp2p.getConnections().length === 0, 10_000)
    expect(refusals).toEqual([{ node: seed.peerId, peer: junk.peerId, reason: 'malformed' }])
    expect(seed.gate!.isAdmitted(a.peerId)).toBe(true)
  })
})
