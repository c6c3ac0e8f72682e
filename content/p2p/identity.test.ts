import { mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { IdentityKeyInvalidError, loadOrCreateIdentity, peerIdOf, PEER_KEY_PATH } from './identity.js'

describe('loadOrCreateIdentity', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'pollen-id-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('creates an Ed25519 key once and returns the same PeerId on reload', async () => {
    const first = await loadOrCreateIdentity(dir)
    const again = await loadOrCreateIdentity(dir)
    expect(first.type).toBe('Ed25519')
    expect(peerIdOf(again).toString()).toBe(peerIdOf(first).toString())
    expect(peerIdOf(first).toString()).toMatch(/^12D3KooW/)
  })

  it('writes the key with mode 0600 and leaves no temp file behind', async () => {
    await loadOrCreateIdentity(dir)
    const st = await stat(join(dir, PEER_KEY_PATH))
    expect(st.mode & 0o777).toBe(0o600)
    expect(await readdir(join(dir, 'p2p'))).toEqual(['peer-key'])
  })

  it('refuses a corrupt key file with a typed error instead of replacing the identity', async () => {
    await mkdir(join(dir, 'p2p'), { recursive: true })
    await writeFile(join(dir, PEER_KEY_PATH), Buffer.from('not a protobuf key at all'))
    const err = await loadOrCreateIdentity(dir).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IdentityKeyInvalidError)
    expect((err as IdentityKeyInvalidError).code).toBe('IdentityKeyInvalidError')
    expect((err as Error).message).toContain(join(dir, PEER_KEY_PATH))
  })

  it('refuses an empty key file', async () => {
    await mkdir(join(dir, 'p2p'), { recursive: true })
    await writeFile(join(dir, PEER_KEY_PATH), new Uint8Array())
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ code: 'IdentityKeyInvalidError' })
  })

  it('refuses a valid key of another type', async () => {
    await mkdir(join(dir, 'p2p'), { recursive: true })
    await writeFile(join(dir, PEER_KEY_PATH), privateKeyToProtobuf(await generateKeyPair('secp256k1')))
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ code: 'IdentityKeyInvalidError', message: expect.stringContaining('secp256k1') })
  })
})
