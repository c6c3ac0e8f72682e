import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { AdmissionVerifier } from '../../content/admission/verifier.js'
import { useAdmissionSeed } from '../../test/helpers/admission-fixture.js'
import { TEST_AUDIENCE, TEST_ISSUER, startAdmissionSeed } from '../../test/helpers/admission-seed.js'
import { JwksCache, type JwksCacheInit } from './jwks-cache.js'
import { TokenManager } from './token-manager.js'

const ISSUER = TEST_ISSUER
const AUDIENCE = TEST_AUDIENCE
const logger = pino({ level: 'silent' })
const X = '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo'

const fx = useAdmissionSeed('pollen-jwks-cache-')

function cache(init: Partial<JwksCacheInit> = {}, now?: () => number): JwksCache {
  const jwks = new JwksCache({ seedUrl: fx.seed.url, dataDir: join(fx.dir, 'agent'), ...init }, { logger, now })
  fx.cleanups.push(() => jwks.stop())
  return jwks
}

describe('JwksCache', () => {
  it('polls as often as the seed\'s max-age asks while its next key is published ahead, and no more often than refreshMs otherwise', async () => {
    const jwks = cache({ refreshMs: 60_000 })
    await jwks.start()
    const afterStart = fx.seed.requests()
    await new Promise((r) => setTimeout(r, 1500))
    expect(fx.seed.requests()).toBe(afterStart)
    await jwks.stop()

    const fast = await startAdmissionSeed(join(fx.dir, 'fast-seed'), 600_000, 30_000)
    fx.cleanups.push(() => fast.close())
    const polling = new JwksCache({ seedUrl: fast.url, dataDir: join(fx.dir, 'agent-fast'), refreshMs: 60_000 }, { logger })
    fx.cleanups.push(() => polling.stop())
    await polling.start()
    await new Promise((r) => setTimeout(r, 2500))
    expect(fast.requests()).toBeGreaterThanOrEqual(2)
  })

  it('serves the persisted JWKS when the seed is down, and peers\' tokens keep verifying', async () => {
    const key = await generateKeyPair('Ed25519')
    const { token: joinToken } = await fx.seed.admission.joinTokens.create({})
    const tm = new TokenManager({ seedUrl: fx.seed.url, dataDir: join(fx.dir, 'peer'), joinToken }, { privateKey: key, logger })
    fx.cleanups.push(() => tm.stop())
    await tm.start()
    const first = cache()
    await first.start()
    const fetched = first.keys()
    expect(fetched.keys.length).toBeGreaterThanOrEqual(1)
    await first.stop()
    await fx.seed.down()

    const second = cache()
    await second.start()
    expect(second.keys()).toEqual(fetched)
    await expect(second.refresh()).rejects.toMatchObject({ name: 'SeedUnavailableError' })
    expect(second.keys()).toEqual(fetched)
    const verifier = new AdmissionVerifier({ issuer: ISSUER, audience: AUDIENCE }, { keys: () => second.keys() })
    const peerId = peerIdFromPrivateKey(key).toString()
    expect((await verifier.verify(tm.current(), { peerId })).sub).toBe(peerId)
  })

  it('starts with no keys and no error when the seed is down and nothing was persisted', async () => {
    await fx.seed.down()
    const jwks = cache({ requestTimeoutMs: 1_000 })
    await expect(jwks.start()).resolves.toBeUndefined()
    expect(jwks.keys()).toEqual({ keys: [] })
    expect(jwks.fetchedAt).toBeUndefined()
  })

  it('keeps only Ed25519 public signing keys, never one with a private part, and refuses a set with none', async () => {
    const good = { kty: 'OKP', crv: 'Ed25519', x: X, kid: 'k1', alg: 'EdDSA', use: 'sig', extra: 'dropped' }
    fx.seed.override = {
      keys: [
        good,
        { ...good, kid: 'k2', d: X },
        { kty: 'EC', crv: 'P-256', x: X, y: X, kid: 'k3' },
        { ...good, kid: 'k4', use: 'enc' },
        { ...good, kid: 'k5', x: 'short' },
        'not an object',
      ],
    }
    const jwks = cache()
    await jwks.start()
    expect(jwks.keys()).toEqual({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: X, kid: 'k1', alg: 'EdDSA', use: 'sig' }] })
    fx.seed.override = { keys: [{ ...good, kid: 'k6', d: X }] }
    await expect(jwks.refresh()).rejects.toMatchObject({ name: 'SeedAnswerInvalidError' })
    fx.seed.override = { notKeys: [] }
    await expect(jwks.refresh()).rejects.toMatchObject({ name: 'SeedAnswerInvalidError' })
    expect(jwks.keys().keys.map((k) => k.kid)).toEqual(['k1'])
  })

  it('refreshes on demand at most once per 5 s', async () => {
    let skew = 0
    const jwks = cache({}, () => Date.now() + skew)
    await jwks.start()
    expect(fx.seed.requests()).toBe(1)
    expect(jwks.refreshSoon()).toBe(false)
    skew = 5_000
    expect(jwks.refreshSoon()).toBe(true)
    expect(jwks.refreshSoon()).toBe(false)
    await new Promise((r) => setTimeout(r, 200))
    expect(fx.seed.requests()).toBe(2)
    expect(jwks.refreshSoon()).toBe(false)
  })

  it('fetches again every refreshMs', async () => {
    const jwks = cache({ refreshMs: 100 })
    await jwks.start()
    await new Promise((r) => setTimeout(r, 450))
    expect(fx.seed.requests()).toBeGreaterThanOrEqual(3)
  })
})
