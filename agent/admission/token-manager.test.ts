import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino, type Logger } from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { AdmissionVerifier } from '../../content/admission/verifier.js'
import { TEST_AUDIENCE, TEST_ISSUER, startAdmissionSeed, type AdmissionSeed } from '../../test/helpers/admission-seed.js'
import { TEST_OIDC_AUDIENCE, createOidcIssuer, type TestOidcIssuer } from '../../test/helpers/oidc-issuer.js'
import { OidcVerifier } from '../../seed/admission/oidc.js'
import { JwksCache } from './jwks-cache.js'
import { TokenManager, type TokenManagerInit } from './token-manager.js'

const ISSUER = TEST_ISSUER
const AUDIENCE = TEST_AUDIENCE
const silent = pino({ level: 'silent' })

/** A logger that keeps every line, to check that no secret is ever logged. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = []
  return { logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }), lines }
}

let dir: string
let seed: AdmissionSeed
let key: PrivateKey
const cleanups: Array<() => Promise<void>> = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-token-manager-'))
  key = await generateKeyPair('Ed25519')
})
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  await rm(dir, { recursive: true, force: true })
})

function manager(init: Partial<TokenManagerInit>, c: Partial<ConstructorParameters<typeof TokenManager>[1]> = {}): TokenManager {
  const tm = new TokenManager({ seedUrl: seed.url, dataDir: join(dir, 'agent'), minBackoffMs: 100, maxBackoffMs: 300, ...init }, { privateKey: key, logger: silent, ...c })
  cleanups.push(() => tm.stop())
  return tm
}

async function withSeed(tokenTtlMs?: number, oidc?: OidcVerifier): Promise<void> {
  seed = await startAdmissionSeed(join(dir, 'seed'), tokenTtlMs, undefined, oidc)
  cleanups.push(() => seed.close())
}

/** A seed that also admits OIDC tokens from a test issuer; returns the issuer and a path for the agent's token file. */
async function withOidcSeed(tokenTtlMs?: number): Promise<{ issuer: TestOidcIssuer; tokenFile: string }> {
  const issuer = await createOidcIssuer({ alg: 'ES256' })
  await issuer.writeJwks(join(dir, 'oidc-jwks.json'))
  const oidc = new OidcVerifier({ issuer: issuer.issuer, audience: TEST_OIDC_AUDIENCE, jwks: join(dir, 'oidc-jwks.json') }, { logger: silent })
  await oidc.load()
  await withSeed(tokenTtlMs, oidc)
  return { issuer, tokenFile: join(dir, 'oidc-token') }
}

describe('TokenManager', () => {
  it('enrolls with a join token, persists the token 0600, and the token verifies against the JwksCache keys', async () => {
    await withSeed()
    const { token: joinToken } = await seed.admission.joinTokens.create({ scope: ['team-a/**'] })
    const { logger, lines } = capturingLogger()
    const tm = manager({ joinToken }, { logger })
    await tm.start()
    const token = tm.current()
    expect(token).toBeDefined()
    expect(tm.valid()).toBe(true)
    expect(tm.expiresAt()).toBeGreaterThan(Date.now() + 590_000)

    const jwks = new JwksCache({ seedUrl: seed.url, dataDir: join(dir, 'agent') }, { logger: silent })
    cleanups.push(() => jwks.stop())
    await jwks.start()
    const verifier = new AdmissionVerifier({ issuer: ISSUER, audience: AUDIENCE }, { keys: () => jwks.keys() })
    const peerId = peerIdFromPrivateKey(key).toString()
    const claims = await verifier.verify(token, { peerId, repository: { ns: 'docker.io', name: 'team-a/app' } })
    expect(claims.sub).toBe(peerId)

    const file = await stat(join(dir, 'agent', 'admission', 'token.json'))
    expect(file.mode & 0o777).toBe(0o600)
    expect((await stat(join(dir, 'agent', 'admission'))).mode & 0o777).toBe(0o700)
    expect(lines.length).toBeGreaterThan(0)
    expect(lines.join('')).not.toContain(token)
    expect(lines.join('')).not.toContain(joinToken)
  })

  it('keeps its persisted token across a restart while the seed is down', async () => {
    await withSeed()
    const { token: joinToken } = await seed.admission.joinTokens.create({})
    const first = manager({ joinToken })
    await first.start()
    const token = first.current()
    await first.stop()
    await seed.down()

    const failures: Error[] = []
    const refreshed: number[] = []
    const second = manager({ joinToken }, { onFailure: (err) => failures.push(err), onRefresh: (at) => refreshed.push(at) })
    await second.start()
    expect(second.current()).toBe(token)
    expect(second.valid()).toBe(true)
    expect(refreshed).toEqual([first.expiresAt() ?? second.expiresAt()])
    expect(failures).toEqual([])
  })

  it('refreshes at two thirds of the lifetime, before the token expires', async () => {
    await withSeed(3_000)
    const { token: joinToken } = await seed.admission.joinTokens.create({})
    const refreshes: Array<{ at: number; expiresAt: number }> = []
    const tm = manager({ joinToken }, { onRefresh: (expiresAt) => refreshes.push({ at: Date.now(), expiresAt }) })
    await tm.start()
    const first = tm.current()
    await vi.waitFor(() => expect(refreshes).toHaveLength(2), { timeout: 3_500, interval: 50 })
    const [enrolled, refreshed] = refreshes as [{ at: number; expiresAt: number }, { at: number; expiresAt: number }]
    expect(refreshed.at).toBeLessThan(enrolled.expiresAt)
    expect(refreshed.expiresAt).toBeGreaterThan(enrolled.expiresAt)
    expect(tm.current()).not.toBe(first)
    expect(seed.issued).toEqual(['join-token', 'refresh'])
  })

  it('leaves current() undefined and keeps retrying without throwing when the join token is used up', async () => {
    await withSeed()
    const { token: joinToken } = await seed.admission.joinTokens.create({ uses: 1 })
    await seed.admission.joinTokens.redeem(joinToken)
    const { logger, lines } = capturingLogger()
    const failures: Error[] = []
    const tm = manager({ joinToken }, { logger, onFailure: (err) => failures.push(err) })
    await expect(tm.start()).resolves.toBeUndefined()
    expect(tm.current()).toBeUndefined()
    expect(tm.valid()).toBe(false)
    // One attempt per second at most (the seed accepts one proof per PeerId and second).
    await vi.waitFor(() => expect(failures.length).toBeGreaterThanOrEqual(2), { timeout: 3_000, interval: 50 })
    for (const err of failures) expect(err).toMatchObject({ name: 'AdmissionRefusedError', status: 401, reason: 'missing' })
    expect(tm.current()).toBeUndefined()
    expect(lines.join('')).toContain('the seed refused admission')
    expect(lines.join('')).not.toContain(joinToken)
  })

  it('retries with backoff while the seed is unreachable and enrolls once it is back', async () => {
    await withSeed()
    const { token: joinToken } = await seed.admission.joinTokens.create({})
    await seed.down()
    const failures: Error[] = []
    const tm = manager({ joinToken }, { onFailure: (err) => failures.push(err) })
    await tm.start()
    expect(tm.current()).toBeUndefined()
    expect(failures).toMatchObject([{ name: 'SeedUnavailableError' }])
    await seed.up()
    await vi.waitFor(() => expect(tm.current()).toBeDefined(), { timeout: 3_000, interval: 50 })
  })

  it('falls back to the join token once its token expired while the seed was down', async () => {
    await withSeed(2_000)
    const { token: joinToken } = await seed.admission.joinTokens.create({ uses: 2 })
    const tm = manager({ joinToken, refreshAt: 0.99 })
    await tm.start()
    const expiresAt = tm.expiresAt() as number
    await seed.down()
    await vi.waitFor(() => expect(tm.valid()).toBe(false), { timeout: 3_000, interval: 50 })
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt)
    await seed.up()
    await vi.waitFor(() => expect(tm.valid()).toBe(true), { timeout: 3_000, interval: 50 })
    expect(seed.issued).toEqual(['join-token', 'join-token'])
  })

  it('enrolls with the OIDC token file and never logs the OIDC token', async () => {
    const { issuer, tokenFile } = await withOidcSeed()
    const oidcToken = await issuer.mint()
    await writeFile(tokenFile, `${oidcToken}\n`)
    const { logger, lines } = capturingLogger()
    const tm = manager({ oidcTokenFile: tokenFile }, { logger })
    await tm.start()
    expect(tm.valid()).toBe(true)
    expect(seed.issued).toEqual(['oidc'])
    expect(lines.join('')).toContain('"how":"oidc"')
    expect(lines.join('')).not.toContain(oidcToken)
  })

  it('reads the OIDC token file afresh for every attempt, so a rotated token is picked up', async () => {
    const { issuer, tokenFile } = await withOidcSeed()
    const stale = await issuer.mint({ aud: ['kubernetes'] })
    await writeFile(tokenFile, stale)
    const failures: Error[] = []
    const { logger, lines } = capturingLogger()
    const tm = manager({ oidcTokenFile: tokenFile }, { logger, onFailure: (err) => failures.push(err) })
    await tm.start()
    expect(tm.valid()).toBe(false)
    expect(failures).toMatchObject([{ name: 'AdmissionRefusedError', status: 401, reason: 'audience' }])
    await writeFile(tokenFile, await issuer.mint())
    await vi.waitFor(() => expect(tm.valid()).toBe(true), { timeout: 3_000, interval: 50 })
    expect(seed.issued).toEqual(['oidc'])
    expect(lines.join('')).not.toContain(stale)
  })

  it('prefers the OIDC token over a join token given too, leaving the join token unused', async () => {
    const { issuer, tokenFile } = await withOidcSeed()
    await writeFile(tokenFile, await issuer.mint())
    const { token: joinToken, id } = await seed.admission.joinTokens.create({ uses: 1 })
    const tm = manager({ oidcTokenFile: tokenFile, joinToken })
    await tm.start()
    expect(tm.valid()).toBe(true)
    expect(seed.issued).toEqual(['oidc'])
    expect((await seed.admission.joinTokens.list()).find((t) => t.id === id)?.usesLeft).toBe(1)
  })

  it('retries while the OIDC token file is missing and enrolls once it appears', async () => {
    const { issuer, tokenFile } = await withOidcSeed()
    const failures: Error[] = []
    const tm = manager({ oidcTokenFile: tokenFile }, { onFailure: (err) => failures.push(err) })
    await tm.start()
    expect(tm.valid()).toBe(false)
    expect(failures).toMatchObject([{ name: 'OidcTokenUnavailableError' }])
    expect(seed.requests()).toBe(0)
    await writeFile(tokenFile, await issuer.mint())
    await vi.waitFor(() => expect(tm.valid()).toBe(true), { timeout: 3_000, interval: 50 })
  })

  it('refreshes an OIDC-obtained token with the token itself, not with the OIDC token', async () => {
    const { issuer, tokenFile } = await withOidcSeed(3_000)
    await writeFile(tokenFile, await issuer.mint())
    const tm = manager({ oidcTokenFile: tokenFile })
    await tm.start()
    await vi.waitFor(() => expect(seed.issued).toEqual(['oidc', 'refresh']), { timeout: 3_500, interval: 50 })
    expect(tm.valid()).toBe(true)
  })

  it('refuses settings out of range', () => {
    seed = { url: 'http://127.0.0.1:1' } as AdmissionSeed
    expect(() => manager({ refreshAt: 1 })).toThrow(RangeError)
    expect(() => manager({ minBackoffMs: 500, maxBackoffMs: 100 })).toThrow(RangeError)
    expect(() => manager({ seedUrl: 'ftp://seed' })).toThrow(TypeError)
  })
})
