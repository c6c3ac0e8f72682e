import type { IncomingMessage } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { signAdmissionToken } from '../../content/admission/verifier.js'
import { openAdmission, admissionPaths, type Admission } from './admission.js'
import { seedAuthorizer } from './authorize.js'
import { admissionHandler } from './http.js'
import { RevocationList } from './revocations.js'

const logger = pino({ level: 'silent' })
const repository = { ns: 'registry.example', name: 'team/app' }

let dir: string
let admission: Admission
const denied: string[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-seed-authorize-'))
  admission = await openAdmission({ dataDir: dir }, { logger })
  denied.length = 0
})
afterEach(async () => {
  await admission.close()
  await rm(dir, { recursive: true, force: true })
})

function authorizer(): (req: IncomingMessage, repo: typeof repository | undefined) => Promise<void> {
  const { verifier } = admissionHandler({ issuer: 'pollen-seed', audience: 'pollen', tokenTtlMs: 600_000 }, { admission, logger })
  return seedAuthorizer({ verifier, audit: admission.audit, revocations: admission.revocations, onDenied: (r) => denied.push(r) })
}

async function tokenFor(peerId: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const key = await admission.keys.current()
  return signAdmissionToken({ iss: 'pollen-seed', aud: 'pollen', sub: peerId, iat: now, nbf: now, exp: now + 300, jti: 'j1', scope: ['**'] }, key.privateKey, key.kid)
}

const request = (token: string): IncomingMessage => ({ headers: { authorization: `Bearer ${token}` }, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage

describe('seedAuthorizer', () => {
  it('refuses a peer at once after another process (the revoke CLI) revoked it', async () => {
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const token = await tokenFor(peerId)
    const authorize = authorizer()
    await expect(authorize(request(token), repository)).resolves.toBeUndefined()

    // What `pollen-seed revoke` does: its own RevocationList over the same file.
    const cli = await RevocationList.open({ path: admissionPaths(dir).revoked }, { logger })
    await cli.revoke(peerId)

    await expect(authorize(request(token), repository)).rejects.toMatchObject({ name: 'AdmissionDeniedError', reason: 'revoked' })
    expect(denied).toEqual(['revoked'])
  })
})
