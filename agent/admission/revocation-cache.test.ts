import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { AdmissionVerifier } from '../../content/admission/verifier.js'
import type { Admission } from '../../seed/admission/admission.js'
import { TEST_AUDIENCE, TEST_ISSUER, startAdmissionSeed, type AdmissionSeed } from '../../test/helpers/admission-seed.js'
import { JwksCache } from './jwks-cache.js'
import { parseRevocations, RevocationCache, type RevocationCacheInit } from './revocation-cache.js'
import { TokenManager } from './token-manager.js'

const ISSUER = TEST_ISSUER
const AUDIENCE = TEST_AUDIENCE
const logger = pino({ level: 'silent' })

let dir: string
let admission: Admission
let url: string
const cleanups: Array<() => Promise<void>> = []

let seed: AdmissionSeed

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-revocation-cache-'))
  seed = await startAdmissionSeed(join(dir, 'seed'))
  admission = seed.admission
  url = seed.url
})
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  await seed.close()
  await rm(dir, { recursive: true, force: true })
})

function revocations(init: Partial<RevocationCacheInit> = {}, onChange?: (version: number, revoked: number) => void): RevocationCache {
  const cache = new RevocationCache({ seedUrl: url, dataDir: join(dir, 'agent'), pollMs: 200, ...init }, { logger, onChange })
  cleanups.push(() => cache.stop())
  return cache
}

describe('RevocationCache', () => {
  it('sees a revocation within one poll, and the verifier then refuses the peer\'s token', async () => {
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key).toString()
    const { token: joinToken } = await admission.joinTokens.create({})
    const tm = new TokenManager({ seedUrl: url, dataDir: join(dir, 'peer'), joinToken }, { privateKey: key, logger })
    cleanups.push(() => tm.stop())
    await tm.start()
    const jwks = new JwksCache({ seedUrl: url, dataDir: join(dir, 'agent') }, { logger })
    cleanups.push(() => jwks.stop())
    await jwks.start()
    const changes: number[] = []
    const cache = revocations({}, (version) => changes.push(version))
    await cache.start()
    const verifier = new AdmissionVerifier({ issuer: ISSUER, audience: AUDIENCE }, { keys: () => jwks.keys(), revoked: (p) => cache.isRevoked(p) })
    expect(cache.isRevoked(peerId)).toBe(false)
    expect(cache.version).toBe(0)
    await verifier.verify(tm.current(), { peerId })

    const revokedAt = Date.now()
    await admission.revocations.revoke(peerId, 'test')
    await vi.waitFor(() => expect(cache.isRevoked(peerId)).toBe(true), { timeout: 1_000, interval: 10 })
    expect(Date.now() - revokedAt).toBeLessThan(1_000)
    expect(cache.version).toBeGreaterThan(0)
    expect(changes).toEqual([0, cache.version])
    await expect(verifier.verify(tm.current(), { peerId })).rejects.toMatchObject({ name: 'AdmissionDeniedError', reason: 'revoked' })
  })

  it('keeps the persisted list across a restart while the seed is down', async () => {
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await admission.revocations.revoke(peerId)
    const first = revocations()
    await first.start()
    expect(first.isRevoked(peerId)).toBe(true)
    await first.stop()
    await seed.down()

    const second = revocations({ requestTimeoutMs: 1_000 })
    await second.start()
    expect(second.isRevoked(peerId)).toBe(true)
    expect(second.version).toBe(first.version)
    await expect(second.refresh()).rejects.toMatchObject({ name: 'SeedUnavailableError' })
    expect(second.isRevoked(peerId)).toBe(true)
  })

  it('refuses a malformed list whole rather than apply part of it', () => {
    expect(parseRevocations({ version: 2, revoked: [{ peerId: 'a', revokedAt: 1 }] }).revoked.get('a')).toBe(1)
    for (const bad of [
      { version: 2, revoked: [{ peerId: 'a', revokedAt: 1 }, { peerId: 'b' }] },
      { version: -1, revoked: [] },
      { version: 1 },
      [],
    ]) {
      expect(() => parseRevocations(bad)).toThrow(expect.objectContaining({ name: 'SeedAnswerInvalidError' }))
    }
  })
})
