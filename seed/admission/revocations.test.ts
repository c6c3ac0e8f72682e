import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RevocationList } from './revocations.js'

const logger = pino({ level: 'silent' })
const newPeerId = async (): Promise<string> => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()

describe('RevocationList', () => {
  let dir: string
  let path: string
  const t = Date.parse('2025-01-01T00:00:00Z')
  const open = (): Promise<RevocationList> => RevocationList.open({ path }, { logger, now: () => t })

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pollen-rev-'))
    path = join(dir, 'admission', 'revoked.json')
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('persists revocations across a restart and raises the version with each one', async () => {
    const [a, b] = [await newPeerId(), await newPeerId()]
    const list = await open()
    expect(await list.version()).toBe(0)
    expect(await list.revoke(a, 'node decommissioned')).toEqual({ version: 1, changed: true })
    expect(list.isRevokedCached(a)).toBe(true)
    expect(await list.revoke(b)).toEqual({ version: 2, changed: true })
    const reopened = await open()
    expect(await reopened.isRevoked(a)).toBe(true)
    expect(await reopened.isRevoked(await newPeerId())).toBe(false)
    expect(await reopened.version()).toBe(2)
    expect(await reopened.list()).toEqual([
      { peerId: a, revokedAt: t, reason: 'node decommissioned' },
      { peerId: b, revokedAt: t },
    ])
    expect((await stat(path)).mode & 0o777).toBe(0o600)
  })

  it('leaves the version alone when a revoked PeerId is revoked again', async () => {
    const a = await newPeerId()
    const list = await open()
    await list.revoke(a)
    expect(await list.revoke(a)).toEqual({ version: 1, changed: false })
  })

  it('sees a revocation another process wrote', async () => {
    const a = await newPeerId()
    const seed = await open()
    expect(await seed.isRevoked(a)).toBe(false)
    await (await open()).revoke(a)
    expect(seed.isRevokedCached(a)).toBe(false)
    expect(await seed.isRevoked(a)).toBe(true)
    expect(seed.isRevokedCached(a)).toBe(true)
    expect(await seed.version()).toBe(1)
  })

  it('refuses a string that is not a PeerId, and never reports one as revoked', async () => {
    const list = await open()
    await expect(list.revoke('12D3KooWnotapeer')).rejects.toMatchObject({ code: 'PeerIdInvalidError' })
    expect(await list.isRevoked('garbage')).toBe(false)
    expect(await list.version()).toBe(0)
  })

  it('refuses to open a corrupt file rather than forgetting revocations', async () => {
    await (await open()).revoke(await newPeerId())
    await writeFile(path, 'not json')
    await expect(open()).rejects.toMatchObject({ code: 'AdmissionStateInvalidError' })
  })
})
