import { mkdtemp, readdir, readFile, rm, stat, writeFile, rename } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, createLocalJWKSet, jwtVerify } from 'jose'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { KEY_RETIREMENT_SKEW_MS } from './constants.js'
import { SigningKeyInvalidError } from './errors.js'
import { SigningKeys } from './signing-keys.js'

const logger = pino({ level: 'silent' })
const HOUR = 3_600_000
const DAY = 24 * HOUR
const PREPUBLISH = 10 * 60_000

describe('SigningKeys', () => {
  let dir: string
  let t: number
  const now = (): number => t
  const open = (): Promise<SigningKeys> => SigningKeys.open({ dir, rotationMs: DAY, maxTokenLifetimeMs: HOUR }, { logger, now })

  beforeEach(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'pollen-keys-')), 'keys')
    t = Date.parse('2025-01-01T00:00:00Z')
  })
  afterEach(async () => {
    await rm(join(dir, '..'), { recursive: true, force: true })
  })

  it('creates one Ed25519 key with mode 0600 and finds the same key after reopening', async () => {
    const keys = await open()
    const { kid } = await keys.current()
    expect(await readdir(dir)).toEqual([`${kid}.json`])
    expect((await stat(join(dir, `${kid}.json`))).mode & 0o777).toBe(0o600)
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    const again = await open()
    expect((await again.current()).kid).toBe(kid)
    expect(await readdir(dir)).toEqual([`${kid}.json`])
  })

  it('publishes only public parts in the JWKS, and a token signed with current() verifies against it', async () => {
    const keys = await open()
    const { kid, privateKey } = await keys.current()
    const jwks = await keys.jwks()
    expect(jwks.keys).toEqual([{ kty: 'OKP', crv: 'Ed25519', x: expect.any(String), kid, alg: 'EdDSA', use: 'sig' }])
    expect(JSON.stringify(jwks)).not.toContain('"d"')
    const jwt = await new SignJWT({ scope: ['**'] }).setProtectedHeader({ alg: 'EdDSA', kid }).setSubject('peer').sign(privateKey)
    const { payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(jwks))
    expect(payload.sub).toBe('peer')
    expect(protectedHeader.kid).toBe(kid)
  })

  it('uses the RFC 7638 thumbprint as kid and refuses to export the private key', async () => {
    const keys = await open()
    const { kid, privateKey } = await keys.current()
    expect(kid).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(privateKey.extractable).toBe(false)
  })

  it('publishes the next key ten minutes before it signs, rotates after rotationMs, and keeps the retired key in the JWKS until its tokens have expired', async () => {
    const keys = await open()
    const first = (await keys.current()).kid
    t += DAY - PREPUBLISH - 1
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([first])
    t += 1
    const published = (await keys.jwks()).keys.map((k) => k.kid)
    expect(published).toHaveLength(2)
    const second = published[0]!
    expect(published[1]).toBe(first)
    expect((await keys.current()).kid).toBe(first)
    t += PREPUBLISH - 1
    expect((await keys.current()).kid).toBe(first)
    t += 1
    expect((await keys.current()).kid).toBe(second)
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([second, first])
    t += HOUR + KEY_RETIREMENT_SKEW_MS - 1
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([second, first])
    expect(await readdir(dir)).toContain(`${first}.json`)
    t += 1
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([second])
    expect(await readdir(dir)).toEqual([`${second}.json`])
  })

  it('rotates through rotateIfDue() and remembers the next key and the retirement across a restart', async () => {
    const keys = await open()
    const first = (await keys.current()).kid
    expect(await keys.rotateIfDue()).toBe(false)
    t += DAY - PREPUBLISH
    expect(await keys.rotateIfDue()).toBe(true)
    expect(await keys.rotateIfDue()).toBe(false)
    const second = (await keys.jwks()).keys[0]!.kid
    const reopened = await open()
    expect((await reopened.current()).kid).toBe(first)
    expect((await reopened.jwks()).keys.map((k) => k.kid)).toEqual([second, first])
    t += PREPUBLISH
    expect((await (await open()).current()).kid).toBe(second)
    t += HOUR + KEY_RETIREMENT_SKEW_MS
    const later = await open()
    expect((await later.jwks()).keys.map((k) => k.kid)).toEqual([second])
    expect(await readdir(dir)).toEqual([`${second}.json`])
  })

  it('keeps signing with the current key past its planned retirement until the late successor has been published for the whole lead time', async () => {
    const keys = await open()
    const first = (await keys.current()).kid
    t += 3 * DAY
    expect((await keys.current()).kid).toBe(first)
    const second = (await keys.jwks()).keys[0]!.kid
    expect(second).not.toBe(first)
    t += PREPUBLISH
    expect((await keys.current()).kid).toBe(second)
    t += HOUR
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([second, first])
  })

  it('signs at once with a new key on first start, and reads key files written before keys were pre-published', async () => {
    const keys = await open()
    const { kid } = await keys.current()
    const path = join(dir, `${kid}.json`)
    const file = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>
    expect(file.activatesAt).toBe(file.createdAt)
    delete file.activatesAt
    await writeFile(path, JSON.stringify(file))
    expect((await (await open()).current()).kid).toBe(kid)
  })

  it('creates a single new key when many callers ask during a rotation', async () => {
    const keys = await open()
    t += DAY - PREPUBLISH
    const kids = new Set((await Promise.all(Array.from({ length: 20 }, () => keys.current()))).map((k) => k.kid))
    expect(kids.size).toBe(1)
    expect(await readdir(dir)).toHaveLength(2)
  })

  it('refuses a corrupt key file with a typed error and leaves the file alone', async () => {
    const keys = await open()
    const { kid } = await keys.current()
    const path = join(dir, `${kid}.json`)
    await writeFile(path, '{"format":1,"kid":')
    const err = await open().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SigningKeyInvalidError)
    expect((err as SigningKeyInvalidError).code).toBe('SigningKeyInvalidError')
    expect((err as Error).message).toContain(path)
    expect(await readFile(path, 'utf8')).toBe('{"format":1,"kid":')
    expect(await readdir(dir)).toEqual([`${kid}.json`])
  })

  it('refuses a key file whose name or kid does not match its key', async () => {
    const keys = await open()
    const { kid } = await keys.current()
    await rename(join(dir, `${kid}.json`), join(dir, 'other.json'))
    await expect(open()).rejects.toMatchObject({ code: 'SigningKeyInvalidError' })
  })

  it('refuses a key file whose public and private halves disagree', async () => {
    const keys = await open()
    const { kid } = await keys.current()
    const path = join(dir, `${kid}.json`)
    const file = JSON.parse(await readFile(path, 'utf8')) as { privateJwk: { d: string } }
    file.privateJwk.d = Buffer.alloc(32, 7).toString('base64url')
    await writeFile(path, JSON.stringify(file))
    await expect(open()).rejects.toMatchObject({ code: 'SigningKeyInvalidError' })
  })

  it('removes temp files a crashed write left behind', async () => {
    await open()
    await writeFile(join(dir, 'abc.json.0123.tmp'), 'partial')
    await open()
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([])
  })

  it('readCurrent reads the active key, never the pre-published one, and changes nothing on disk', async () => {
    expect(await SigningKeys.readCurrent(dir, { logger, now })).toBeUndefined()
    expect(await readdir(join(dir, '..'))).toEqual([])
    const keys = await open()
    const first = (await keys.current()).kid
    t += DAY - PREPUBLISH
    await keys.rotateIfDue()
    const files = (await readdir(dir)).sort()
    expect(files).toHaveLength(2)
    expect((await SigningKeys.readCurrent(dir, { logger, now }))?.kid).toBe(first)
    t += PREPUBLISH
    const next = (await SigningKeys.readCurrent(dir, { logger, now }))?.kid
    expect(next).not.toBe(first)
    expect(next).toBe((await keys.current()).kid)
    t += 10 * DAY
    await SigningKeys.readCurrent(dir, { logger, now })
    expect((await readdir(dir)).sort()).toEqual(files)
  })
})
