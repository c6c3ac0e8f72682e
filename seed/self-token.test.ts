import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { AdmissionVerifier } from '../content/admission/verifier.js'
import { SigningKeys } from './admission/signing-keys.js'
import { SelfToken } from './self-token.js'

const logger = pino({ level: 'silent' })

describe('SelfToken', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pollen-self-token-'))
  })
  afterEach(async () => {
    vi.useRealTimers()
    await rm(dir, { recursive: true, force: true })
  })

  it('signs the seed a token that peers verify against its PeerId, with no scope and the normal lifetime', async () => {
    const keys = await SigningKeys.open({ dir }, { logger })
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const self = new SelfToken({ issuer: 'pollen-seed', audience: 'pollen', peerId, ttlMs: 600_000 }, { keys, logger })
    expect(self.current()).toBeUndefined()
    await self.start()
    const verifier = new AdmissionVerifier({ issuer: 'pollen-seed', audience: 'pollen' }, { keys: () => keys.jwks() })
    const claims = await verifier.verify(self.current(), { peerId })
    expect(claims.sub).toBe(peerId)
    expect(claims.scope).toEqual([])
    expect(claims.exp - claims.iat).toBe(600)
    self.stop()
  })

  it('signs a new token at two thirds of its lifetime and says so, so the node presents it', async () => {
    vi.useFakeTimers({ now: 1_750_000_000_000, toFake: ['setTimeout', 'clearTimeout', 'Date'] })
    const keys = await SigningKeys.open({ dir }, { logger })
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    let refreshed = 0
    const self = new SelfToken({ issuer: 'i', audience: 'a', peerId, ttlMs: 60_000 }, { keys, logger, onRefresh: () => refreshed++ })
    await self.start()
    const first = self.current()
    await vi.advanceTimersByTimeAsync(39_999)
    expect(refreshed).toBe(0)
    await vi.advanceTimersByTimeAsync(1)
    await vi.waitFor(() => expect(refreshed).toBe(1))
    expect(self.current()).not.toBe(first)
    self.stop()
    await vi.advanceTimersByTimeAsync(120_000)
    expect(refreshed).toBe(1)
  })
})
