import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { AdmissionVerifier } from '../../content/admission/verifier.js'
import { useAdmissionSeed } from '../../test/helpers/admission-fixture.js'
import { TEST_AUDIENCE, TEST_ISSUER } from '../../test/helpers/admission-seed.js'
import { JwksCache } from './jwks-cache.js'
import { parseRevocations, RevocationCache, type RevocationCacheInit } from './revocation-cache.js'
import { TokenManager } from './token-manager.js'

const ISSUER = TEST_ISSUER
const AUDIENCE = TEST_AUDIENCE
const logger = pino({ level: 'silent' })

const fx = useAdmissionSeed('pollen-revocation-cache-')

function revocations(init: Partial<RevocationCacheInit> = {}, onChange?: (version: number, revoked: number) => void): RevocationCache {
  const cache = new RevocationCache({ seedUrl: fx.seed.url, dataDir: join(fx.dir, 'agent'), pollMs: 200, ...init }, { logger, onChange })
  fx.cleanups.push(() => cache.stop())
  return cache
}

describe('RevocationCache', () => {
  it('sees a revocation within one poll, and the verifier then refuses the peer\'s token', async () => {
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key).toString()
    const { token: joinToken } = await fx.seed.admission.joinTokens.create({})
    const tm = new TokenManager({ seedUrl: fx.seed.url, dataDir: join(fx.dir, 'peer'), joinToken }, { privateKey: key, logger })
    fx.cleanups.push(() => tm.stop())
    await tm.start()
    const jwks = new JwksCache({ seedUrl: fx.seed.url, dataDir: join(fx.dir, 'agent') }, { logger })
    fx.cleanups.push(() => jwks.stop())
    await jwks.start()
    const changes: number[] = []
    const cache = revocations({}, (version) => changes.push(version))
    await cache.start()
    const verifier = new AdmissionVerifier({ issuer: ISSUER, audience: AUDIENCE }, { keys: () => jwks.keys(), revoked: (p) => cache.isRevoked(p) })
    expect(cache.isRevoked(peerId)).toBe(false)
    expect(cache.version).toBe(0)
    await verifier.verify(tm.current(), { peerId })

    const revokedAt = Date.now()
    await fx.seed.admission.revocations.revoke(peerId, 'test')
    await vi.waitFor(() => expect(cache.isRevoked(peerId)).toBe(true), { timeout: 1_000, interval: 10 })
    expect(Date.now() - revokedAt).toBeLessThan(1_000)
    expect(cache.version).toBeGreaterThan(0)
    expect(changes).toEqual([0, cache.version])
    await expect(verifier.verify(tm.current(), { peerId })).rejects.toMatchObject({ name: 'AdmissionDeniedError', reason: 'revoked' })
  })

  it('keeps the persisted list across a restart while the seed is down', async () => {
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await fx.seed.admission.revocations.revoke(peerId)
    const first = revocations()
    await first.start()
    expect(first.isRevoked(peerId)).toBe(true)
    await first.stop()
    await fx.seed.down()

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
