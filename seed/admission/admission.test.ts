import { randomUUID } from 'node:crypto'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AdmissionVerifier, signAdmissionToken } from '../../content/admission/verifier.js'
import { admissionPaths, openAdmission, type Admission } from './admission.js'
import { KEY_RETIREMENT_SKEW_MS } from './constants.js'

const HOUR = 3_600_000
const ISS = 'https://seed.test'
const AUD = 'pollen'

describe('openAdmission', () => {
  let dataDir: string
  let t: number
  let admission: Admission | undefined
  const now = (): number => t
  const open = async (): Promise<Admission> => (admission = await openAdmission({ dataDir, keyRotationMs: 24 * HOUR }, { logger: pino({ level: 'silent' }), now }))

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'pollen-adm-'))
    t = Date.parse('2025-01-01T00:00:00Z')
  })
  afterEach(async () => {
    await admission?.close()
    await rm(dataDir, { recursive: true, force: true })
  })

  it('lays out keys, join tokens and the audit log under <dataDir>/admission with mode 0700', async () => {
    const { joinTokens } = await open()
    await joinTokens.create()
    const paths = admissionPaths(dataDir)
    expect((await stat(paths.dir)).mode & 0o777).toBe(0o700)
    expect((await readdir(paths.dir)).sort()).toEqual(['audit.log', 'join-tokens.json', 'keys'])
    expect(await readdir(paths.keys)).toHaveLength(1)
  })

  it('signs tokens the shared verifier accepts, across a key rotation, and refuses revoked peers', async () => {
    const { keys, revocations } = await open()
    const verifier = new AdmissionVerifier({ issuer: ISS, audience: AUD }, { keys: () => keys.jwks(), revoked: (p) => revocations.isRevokedCached(p), now })
    const sub = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const issue = async (): Promise<string> => {
      const { kid, privateKey } = await keys.current()
      const iat = Math.floor(t / 1000)
      return signAdmissionToken({ iss: ISS, aud: AUD, sub, iat, nbf: iat, exp: iat + 3600, jti: randomUUID(), scope: ['library/*'] }, privateKey, kid)
    }
    t += 24 * HOUR - 10 * 60_000
    await keys.jwks() // a verifier polls and gets the next key ahead of its first token
    t += 10 * 60_000 - 1000
    const beforeRotation = await issue()
    t += 1000
    const afterRotation = await issue()
    t += HOUR - 1000
    expect((await verifier.verify(beforeRotation, { peerId: sub })).sub).toBe(sub)
    expect((await verifier.verify(afterRotation, { peerId: sub, repository: { ns: 'docker.io', name: 'library/alpine' } })).sub).toBe(sub)
    t += KEY_RETIREMENT_SKEW_MS + 1000
    expect((await keys.jwks()).keys).toHaveLength(1)
    const fresh = await issue()
    await verifier.verify(fresh)
    await revocations.revoke(sub, 'test')
    await expect(verifier.verify(fresh)).rejects.toMatchObject({ code: 'AdmissionDeniedError', reason: 'revoked' })
  })
})
