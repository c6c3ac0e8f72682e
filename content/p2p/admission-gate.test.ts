import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { AdmissionDeniedError, AdmissionKeysUnavailableError } from '../../protocol/admission.js'
import { AdmissionGate, VERDICT_LINGER_MS, type AdmissionGateInit, type GateNetwork } from './admission-gate.js'
import { RefusedPeers } from './refused-peers.js'

const logger = pino({ level: 'silent' })
const T0 = 1_750_000_000_000

/** A network of connected peers that records what the gate did to it. */
class FakeNetwork implements GateNetwork {
  readonly connected = new Set<string>()
  readonly disconnected: string[] = []
  readonly forgotten: string[] = []
  isConnected(peer: string): boolean {
    return this.connected.has(peer)
  }
  async disconnect(peer: string): Promise<void> {
    this.disconnected.push(peer)
    this.connected.delete(peer)
  }
  async forget(peer: string): Promise<void> {
    this.forgotten.push(peer)
  }
}

/** Tokens are "valid:<peer>:<exp seconds>"; anything else is refused like the real verifier would. */
const fakeVerifier = {
  async verify(token: string | undefined, expect: { peerId: string }): Promise<{ exp: number }> {
    if (token === 'unknown-key') throw new AdmissionDeniedError('unknown-key', 'no such kid')
    if (token === 'no-keys') throw new AdmissionKeysUnavailableError('keys are down')
    if (token === 'boom') throw new Error('bug')
    const [kind, sub, exp] = (token ?? '').split(':')
    if (kind !== 'valid') throw new AdmissionDeniedError('malformed', 'not a token')
    if (sub !== expect.peerId) throw new AdmissionDeniedError('peer-mismatch', 'bound to another peer')
    if (Number(exp) * 1000 <= Date.now()) throw new AdmissionDeniedError('expired', 'expired')
    return { exp: Number(exp) }
  },
}
const tokenFor = (peer: string, lifetimeS = 600): string => `valid:${peer}:${Math.floor(Date.now() / 1000) + lifetimeS}`

describe('AdmissionGate', () => {
  let network: FakeNetwork
  let refusals: Array<[string, string]>
  let revoked: Set<string>
  let unknownKey: number

  function gate(init: AdmissionGateInit = {}): AdmissionGate {
    const g = new AdmissionGate(
      { deadlineMs: 5_000, refuseForMs: 60_000, clockToleranceMs: 0, ...init },
      {
        logger,
        verifier: fakeVerifier,
        revoked: (peer) => revoked.has(peer),
        onRefused: (peer, reason) => refusals.push([peer, reason]),
        onUnknownKey: () => unknownKey++,
      },
    )
    g.attach(network)
    return g
  }
  function connect(g: AdmissionGate, peer: string): void {
    network.connected.add(peer)
    g.connected(peer)
  }

  beforeEach(() => {
    vi.useFakeTimers({ now: T0 })
    network = new FakeNetwork()
    refusals = []
    revoked = new Set()
    unknownKey = 0
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('admits a peer that presents a valid token bound to its PeerId, until the token expires', async () => {
    const g = gate()
    connect(g, 'A')
    expect(g.isPending('A')).toBe(true)
    expect(await g.present('A', tokenFor('A'))).toEqual({ status: 'ok' })
    expect(g.isAdmitted('A')).toBe(true)
    expect(g.isPending('A')).toBe(false)
    await vi.advanceTimersByTimeAsync(10_000)
    expect(network.disconnected).toEqual([])
    expect(refusals).toEqual([])
  })

  it('disconnects, forgets and refuses a connected peer that presents nothing within the deadline', async () => {
    const g = gate()
    connect(g, 'B')
    await vi.advanceTimersByTimeAsync(4_999)
    expect(network.disconnected).toEqual([])
    await vi.advanceTimersByTimeAsync(1)
    expect(network.disconnected).toEqual(['B'])
    expect(network.forgotten).toEqual(['B'])
    expect(refusals).toEqual([['B', 'not-presented']])
    expect(g.isRefused('B')).toBe(true)
    expect(g.isAdmitted('B')).toBe(false)
  })

  it('refuses a token issued to another PeerId with reason peer-mismatch, after letting the verdict go out', async () => {
    const g = gate()
    connect(g, 'thief')
    expect(await g.present('thief', tokenFor('victim'))).toEqual({ status: 'refused', reason: 'peer-mismatch' })
    expect(refusals).toEqual([['thief', 'peer-mismatch']])
    expect(g.isRefused('thief')).toBe(true)
    expect(network.disconnected).toEqual([])
    await vi.advanceTimersByTimeAsync(VERDICT_LINGER_MS)
    expect(network.disconnected).toEqual(['thief'])
    expect(network.forgotten).toEqual(['thief'])
  })

  it('keeps a refused peer refused for refuseForMs, counts and logs it once, then lets it try again', async () => {
    const g = gate({ refuseForMs: 30_000 })
    connect(g, 'C')
    await g.present('C', 'garbage')
    expect(await g.present('C', tokenFor('C'))).toEqual({ status: 'refused', reason: 'malformed' })
    connect(g, 'C')
    g.refuse('C', 'missing')
    expect(refusals).toEqual([['C', 'malformed']])
    await vi.advanceTimersByTimeAsync(30_001)
    expect(g.isRefused('C')).toBe(false)
    connect(g, 'C')
    expect(await g.present('C', tokenFor('C'))).toEqual({ status: 'ok' })
    expect(g.isAdmitted('C')).toBe(true)
  })

  it('refuses a connected peer whose token expires without a newer one, and keeps one that refreshed', async () => {
    const g = gate()
    connect(g, 'stale')
    connect(g, 'fresh')
    await g.present('stale', tokenFor('stale', 60))
    await g.present('fresh', tokenFor('fresh', 60))
    await vi.advanceTimersByTimeAsync(40_000)
    expect(await g.present('fresh', tokenFor('fresh', 60))).toEqual({ status: 'ok' })
    await vi.advanceTimersByTimeAsync(20_001)
    expect(refusals).toEqual([['stale', 'expired']])
    expect(g.isAdmitted('fresh')).toBe(true)
    expect(network.disconnected).toEqual(['stale'])
  })

  it('forgets without refusing an admitted peer whose token expires while it is not connected', async () => {
    const g = gate()
    connect(g, 'D')
    await g.present('D', tokenFor('D', 60))
    network.connected.delete('D')
    await vi.advanceTimersByTimeAsync(60_001)
    expect(g.isAdmitted('D')).toBe(false)
    expect(g.isRefused('D')).toBe(false)
    expect(refusals).toEqual([])
  })

  it('asks to retry, and fetches the keys, for a token signed by an unknown key; the deadline still applies', async () => {
    const g = gate()
    connect(g, 'E')
    expect(await g.present('E', 'unknown-key')).toEqual({ status: 'retry', reason: 'unknown-key' })
    expect(await g.present('E', 'no-keys')).toEqual({ status: 'retry', reason: 'unavailable' })
    expect(unknownKey).toBe(1)
    expect(g.isRefused('E')).toBe(false)
    await vi.advanceTimersByTimeAsync(5_000)
    expect(refusals).toEqual([['E', 'unavailable']])
  })

  it('refuses with reason error, never throwing, when the verifier fails unexpectedly', async () => {
    const g = gate()
    connect(g, 'F')
    expect(await g.present('F', 'boom')).toEqual({ status: 'refused', reason: 'error' })
  })

  it('refuses admitted peers that were revoked, on recheck and periodically', async () => {
    const g = gate({ recheckMs: 10_000 })
    for (const p of ['G', 'H']) {
      connect(g, p)
      await g.present(p, tokenFor(p))
    }
    revoked.add('G')
    g.recheck()
    expect(refusals).toEqual([['G', 'revoked']])
    revoked.add('H')
    await vi.advanceTimersByTimeAsync(10_000)
    expect(refusals).toEqual([['G', 'revoked'], ['H', 'revoked']])
  })

  it('only forgets a peer that left before its deadline without presenting', async () => {
    const g = gate()
    connect(g, 'I')
    network.connected.delete('I')
    await vi.advanceTimersByTimeAsync(5_000)
    expect(refusals).toEqual([])
    expect(network.forgotten).toEqual(['I'])
    expect(g.isPending('I')).toBe(false)
  })

  it('resolves whenAdmitted on admission, and false on refusal or abort', async () => {
    const g = gate()
    connect(g, 'J')
    connect(g, 'K')
    const j = g.whenAdmitted('J', AbortSignal.timeout(60_000))
    const k = g.whenAdmitted('K', AbortSignal.timeout(60_000))
    const stopWaiting = new AbortController()
    const l = g.whenAdmitted('L', stopWaiting.signal)
    await g.present('J', tokenFor('J'))
    expect(await j).toBe(true)
    await vi.advanceTimersByTimeAsync(5_000)
    expect(await k).toBe(false)
    stopWaiting.abort()
    expect(await l).toBe(false)
    expect(await g.whenAdmitted('J', AbortSignal.timeout(1))).toBe(true)
    expect(await g.whenAdmitted('K', AbortSignal.timeout(1))).toBe(false)
  })

  it('stays refused when the deadline passes while the token is being verified', async () => {
    let release: () => void = () => {}
    const slow = new AdmissionGate({ deadlineMs: 100 }, {
      logger,
      verifier: { verify: () => new Promise((resolve) => { release = () => resolve({ exp: Date.now() / 1000 + 600 }) }) },
    })
    slow.attach(network)
    network.connected.add('M')
    slow.connected('M')
    const verdict = slow.present('M', 'anything')
    await vi.advanceTimersByTimeAsync(100)
    release()
    expect(await verdict).toEqual({ status: 'refused', reason: 'not-presented' })
    expect(slow.isAdmitted('M')).toBe(false)
  })
})

describe('RefusedPeers', () => {
  it('forgets the oldest refusal first once full, and each refusal when it expires', () => {
    let now = 0
    const set = new RefusedPeers({ refuseForMs: 100, maxPeers: 2 }, () => now)
    expect(set.add('a', 'x')).toBe(true)
    expect(set.add('b', 'y')).toBe(true)
    expect(set.add('b', 'z')).toBe(false)
    expect(set.reason('b')).toBe('y')
    set.add('c', 'x')
    expect([set.has('a'), set.has('b'), set.has('c')]).toEqual([false, true, true])
    now = 100
    expect(set.has('b')).toBe(false)
  })
})
