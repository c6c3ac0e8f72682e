import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { JoinTokenDeniedError } from './errors.js'
import { JoinTokenStore } from './join-tokens.js'

const logger = pino({ level: 'silent' })
const HOUR = 3_600_000

describe('JoinTokenStore', () => {
  let dir: string
  let path: string
  let t: number
  const now = (): number => t
  const open = (): Promise<JoinTokenStore> => JoinTokenStore.open({ path }, { logger, now })
  const denial = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'redeemed', (e: unknown) => (e instanceof JoinTokenDeniedError ? e.reason : e))

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pollen-jt-'))
    path = join(dir, 'admission', 'join-tokens.json')
    t = Date.parse('2025-01-01T00:00:00Z')
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('returns the secret once and stores only its hash, with mode 0600', async () => {
    const store = await open()
    const { token, id, expiresAt } = await store.create({ scope: ['library/*'] })
    expect(token).toMatch(/^pjt_[A-Za-z0-9_-]{43}$/)
    expect(expiresAt).toBe(t + 24 * HOUR)
    const onDisk = await readFile(path, 'utf8')
    expect(onDisk).not.toContain(token)
    expect(onDisk).not.toContain(token.slice(4))
    expect(onDisk).toContain(id)
    for (const name of await readdir(join(dir, 'admission'))) expect(await readFile(join(dir, 'admission', name), 'utf8')).not.toContain(token.slice(4))
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    expect(JSON.stringify(await store.list())).not.toContain(token.slice(4))
  })

  it('redeems a token for its id and scope, and survives a restart', async () => {
    const { token, id } = await (await open()).create({ uses: 2, scope: ['team-a/**'] })
    const store = await open()
    expect(await store.redeem(token)).toEqual({ id, scope: ['team-a/**'] })
    expect((await store.list())[0]).toMatchObject({ id, usesLeft: 1, state: 'active', scope: ['team-a/**'] })
  })

  it('lets exactly one of 20 concurrent redemptions of a one-use token succeed', async () => {
    const store = await open()
    const { token } = await store.create()
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => denial(store.redeem(token))))
    expect(outcomes.filter((o) => o === 'redeemed')).toHaveLength(1)
    expect(outcomes.filter((o) => o === 'used-up')).toHaveLength(19)
    expect((await store.list())[0]).toMatchObject({ usesLeft: 0, state: 'used-up' })
  })

  it('enforces the use count across two store instances on one file, as a CLI beside the seed would', async () => {
    const seed = await open()
    const cli = await open()
    const { token } = await cli.create({ uses: 3 })
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => denial((i % 2 === 0 ? seed : cli).redeem(token))))
    expect(outcomes.filter((o) => o === 'redeemed')).toHaveLength(3)
  })

  it('loses no token when two instances create tokens at once', async () => {
    const a = await open()
    const b = await open()
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).create()))
    expect(await a.list()).toHaveLength(10)
  })

  it('allows unlimited redemptions when uses is Infinity', async () => {
    const store = await open()
    const { token } = await store.create({ uses: Infinity })
    for (let i = 0; i < 5; i++) await store.redeem(token)
    expect((await store.list())[0]).toMatchObject({ usesLeft: null, state: 'active' })
  })

  it('refuses an expired token as expired', async () => {
    const store = await open()
    const { token } = await store.create({ ttlMs: HOUR })
    t += HOUR
    expect(await denial(store.redeem(token))).toBe('expired')
    expect((await store.list())[0]?.state).toBe('expired')
  })

  it('refuses an unknown or malformed token without echoing it', async () => {
    const store = await open()
    await store.create()
    const forged = `pjt_${Buffer.alloc(32, 1).toString('base64url')}`
    const err = await store.redeem(forged).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(JoinTokenDeniedError)
    expect(err).toMatchObject({ code: 'JoinTokenDeniedError', reason: 'unknown', ociCode: 'UNAUTHORIZED' })
    expect((err as Error).message).not.toContain(forged.slice(4))
    expect(await denial(store.redeem(''))).toBe('unknown')
    expect(await denial(store.redeem('not-a-token'))).toBe('unknown')
  })

  it('refuses a revoked token as unknown', async () => {
    const store = await open()
    const { token, id } = await store.create({ uses: 5 })
    expect(await store.revoke(id)).toBe(true)
    expect(await store.revoke(id)).toBe(false)
    expect(await denial(store.redeem(token))).toBe('unknown')
    expect(await store.list()).toEqual([])
  })

  it('forgets tokens a week after they expired', async () => {
    const store = await open()
    await store.create({ ttlMs: HOUR })
    t += HOUR + 7 * 24 * HOUR
    await store.create()
    expect(await store.list()).toHaveLength(1)
  })

  it('validates ttl, uses and scope patterns', async () => {
    const store = await open()
    await expect(store.create({ ttlMs: 0 })).rejects.toBeInstanceOf(RangeError)
    await expect(store.create({ uses: 0 })).rejects.toBeInstanceOf(RangeError)
    await expect(store.create({ uses: 1.5 })).rejects.toBeInstanceOf(RangeError)
    await expect(store.create({ scope: [] })).rejects.toBeInstanceOf(RangeError)
    await expect(store.create({ scope: ['Team A/*'] })).rejects.toMatchObject({ code: 'ScopePatternInvalidError' })
    expect(await store.list()).toEqual([])
  })

  it('refuses to open a corrupt state file rather than resetting it', async () => {
    await open()
    await writeFile(path, '{"format":1,"tokens":[{"id":1}]}')
    await expect(open()).rejects.toMatchObject({ code: 'AdmissionStateInvalidError' })
  })
})
