import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { signProof } from '../../content/admission/proof.js'
import { TEST_OIDC_AUDIENCE, TEST_OIDC_SUBJECT, createOidcIssuer, type TestOidcIssuer } from '../../test/helpers/oidc-issuer.js'
import { openAdmission, type Admission } from './admission.js'
import { admissionHandler, type EnrollmentResponse } from './http.js'
import { OidcVerifier } from './oidc.js'

const logger = pino({ level: 'silent' })
const ISSUER = 'pollen-seed'
const AUDIENCE = 'pollen'

let dir: string
let admission: Admission
let server: Server
let url: string
let verify: ReturnType<typeof admissionHandler>['verifier']
let oidcIssuer: TestOidcIssuer
const denied: string[] = []
const issued: string[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-admission-http-'))
  admission = await openAdmission({ dataDir: dir }, { logger })
  oidcIssuer = await createOidcIssuer({ alg: 'RS256' })
  await oidcIssuer.writeJwks(join(dir, 'oidc-jwks.json'))
  const oidc = new OidcVerifier(
    { issuer: oidcIssuer.issuer, audience: TEST_OIDC_AUDIENCE, jwks: join(dir, 'oidc-jwks.json'), scope: ['library/*'], subjects: ['system:serviceaccount:pollen:*'] },
    { logger },
  )
  await oidc.load()
  const { handle, verifier } = admissionHandler(
    { issuer: ISSUER, audience: AUDIENCE, tokenTtlMs: 600_000 },
    { admission, oidc, logger, onDenied: (r) => denied.push(r), onIssued: (how) => issued.push(how) },
  )
  verify = verifier
  url = await serve(handle)
  denied.length = 0
  issued.length = 0
})
afterEach(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
  await admission.close()
  await rm(dir, { recursive: true, force: true })
})

async function serve(handle: ReturnType<typeof admissionHandler>['handle']): Promise<string> {
  server = createServer((req, res) => {
    if (!handle(req, res)) {
      res.writeHead(404)
      res.end()
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function enroll(key: PrivateKey, body: Record<string, unknown>, peerId?: string, at = url): Promise<{ status: number; json: Record<string, unknown> }> {
  const proof = await signProof(key, ISSUER, Math.floor(Date.now() / 1000))
  const res = await fetch(`${at}/v1/admission`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ peerId: peerId ?? proof.peerId, proof: { timestamp: proof.timestamp, signature: proof.signature }, ...body }),
    signal: AbortSignal.timeout(5000),
  })
  return { status: res.status, json: (await res.json()) as Record<string, unknown> }
}

describe('POST /v1/admission', () => {
  it('issues a token bound to the agent\'s PeerId with the join token\'s scope, and refuses the used-up join token', async () => {
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key).toString()
    const { token: joinToken } = await admission.joinTokens.create({ uses: 1, scope: ['team-a/**'] })
    const first = await enroll(key, { joinToken })
    expect(first.status).toBe(200)
    const answer = first.json as unknown as EnrollmentResponse
    const claims = await verify.verify(answer.token, { peerId, repository: { ns: 'docker.io', name: 'team-a/app' } })
    expect(claims.sub).toBe(peerId)
    expect(claims.scope).toEqual(['team-a/**'])
    expect(claims.exp - claims.iat).toBe(600)
    const again = await enroll(await generateKeyPair('Ed25519'), { joinToken })
    expect(again.status).toBe(401)
    expect(JSON.stringify(again.json)).not.toContain(joinToken)
  })

  it('counts a refused join token as join-token-<why>, not as a missing token', async () => {
    const { token: usedUp } = await admission.joinTokens.create({ uses: 1 })
    expect((await enroll(await generateKeyPair('Ed25519'), { joinToken: usedUp })).status).toBe(200)
    const { token: expired } = await admission.joinTokens.create({ ttlMs: 1 })
    await new Promise((r) => setTimeout(r, 5))
    for (const joinToken of [usedUp, expired, 'pjt_never-issued']) {
      const answer = await enroll(await generateKeyPair('Ed25519'), { joinToken })
      expect(answer.status).toBe(401)
      expect(JSON.stringify(answer.json)).not.toContain(joinToken)
    }
    expect(denied).toEqual(['join-token-used-up', 'join-token-expired', 'join-token-unknown'])
  })

  it('refreshes a still-valid token, keeping its scope', async () => {
    const key = await generateKeyPair('Ed25519')
    const { token: joinToken } = await admission.joinTokens.create({ scope: ['library/*'] })
    const { token } = (await enroll(key, { joinToken })).json as unknown as EnrollmentResponse
    await new Promise((r) => setTimeout(r, 1100))
    const refreshed = await enroll(key, { token })
    expect(refreshed.status).toBe(200)
    expect((await verify.verify((refreshed.json as unknown as EnrollmentResponse).token)).scope).toEqual(['library/*'])
  })

  it('refuses a proof made with another key, a token stolen from another peer, and a revoked peer', async () => {
    const victim = await generateKeyPair('Ed25519')
    const thief = await generateKeyPair('Ed25519')
    const { token: joinToken } = await admission.joinTokens.create({ uses: 5 })
    const forged = await enroll(thief, { joinToken }, peerIdFromPrivateKey(victim).toString())
    expect(forged.status).toBe(401)
    const { token } = (await enroll(victim, { joinToken })).json as unknown as EnrollmentResponse
    const stolen = await enroll(thief, { token })
    expect(stolen.status).toBe(401)
    await admission.revocations.revoke(peerIdFromPrivateKey(victim).toString(), 'test')
    // A proof is accepted once per PeerId and second; a real agent's retry comes later.
    await new Promise((r) => setTimeout(r, 1100))
    const revoked = await enroll(victim, { joinToken })
    expect(revoked.status).toBe(403)
    expect(denied).toEqual(['signature', 'peer-mismatch', 'revoked'])
  })

  it('refuses a request with neither a join token nor a token, and garbage bodies', async () => {
    expect((await enroll(await generateKeyPair('Ed25519'), {})).status).toBe(401)
    const res = await fetch(`${url}/v1/admission`, { method: 'POST', body: 'not json', signal: AbortSignal.timeout(5000) })
    expect(res.status).toBe(401)
  })
})

async function auditEvents(): Promise<Array<Record<string, unknown>>> {
  await admission.audit.flush()
  const text = await readFile(join(dir, 'admission', 'audit.log'), 'utf8')
  return text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
}

describe('POST /v1/admission with an OIDC token', () => {
  it('issues a token bound to the PeerId with the OIDC scope, counted as oidc and audited with the service account, never the OIDC token', async () => {
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key).toString()
    const oidcToken = await oidcIssuer.mint()
    const answer = await enroll(key, { oidcToken })
    expect(answer.status).toBe(200)
    const claims = await verify.verify((answer.json as unknown as EnrollmentResponse).token, { peerId, repository: { ns: 'docker.io', name: 'library/alpine' } })
    expect(claims.scope).toEqual(['library/*'])
    expect(issued).toEqual(['oidc'])
    expect(await auditEvents()).toContainEqual(expect.objectContaining({ event: 'issue', peerId, subject: TEST_OIDC_SUBJECT, reason: 'oidc' }))
    expect(await readFile(join(dir, 'admission', 'audit.log'), 'utf8')).not.toContain(oidcToken.split('.')[1])
  })

  it('refuses a token for another audience (401) and a service account no subject pattern allows (403), auditing the subject', async () => {
    const wrongAudience = await enroll(await generateKeyPair('Ed25519'), { oidcToken: await oidcIssuer.mint({ aud: ['kubernetes'] }) })
    expect(wrongAudience.status).toBe(401)
    expect(JSON.stringify(wrongAudience.json)).toContain('admission token refused (audience): OIDC token')
    const otherAccount = await enroll(await generateKeyPair('Ed25519'), { oidcToken: await oidcIssuer.mint({ sub: 'system:serviceaccount:default:default' }) })
    expect(otherAccount.status).toBe(403)
    expect(denied).toEqual(['audience', 'subject'])
    expect(issued).toEqual([])
    expect(await auditEvents()).toContainEqual(expect.objectContaining({ event: 'refuse', reason: 'subject', subject: 'system:serviceaccount:default:default' }))
  })

  it('prefers the OIDC token over a join token sent with it, which stays unused', async () => {
    const { token: joinToken, id } = await admission.joinTokens.create({ uses: 1 })
    const answer = await enroll(await generateKeyPair('Ed25519'), { oidcToken: await oidcIssuer.mint(), joinToken })
    expect(answer.status).toBe(200)
    expect(issued).toEqual(['oidc'])
    expect((await admission.joinTokens.list()).find((t) => t.id === id)?.usesLeft).toBe(1)
  })

  it('refuses an OIDC token when the seed has no OIDC issuer configured', async () => {
    const { handle } = admissionHandler({ issuer: ISSUER, audience: AUDIENCE, tokenTtlMs: 600_000 }, { admission, logger, onDenied: (r) => denied.push(r) })
    const first = server
    const plain = await serve(handle)
    try {
      const answer = await enroll(await generateKeyPair('Ed25519'), { oidcToken: await oidcIssuer.mint() }, undefined, plain)
      expect(answer.status).toBe(401)
      expect(JSON.stringify(answer.json)).toContain('does not accept OIDC tokens')
      expect(denied).toEqual(['missing'])
    } finally {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
      server = first
    }
  })
})

describe('public admission endpoints', () => {
  it('serves the JWKS with only public Ed25519 keys, and the revocation list', async () => {
    const jwks = (await (await fetch(`${url}/.well-known/jwks.json`)).json()) as { keys: Array<Record<string, string>> }
    expect(jwks.keys.length).toBeGreaterThanOrEqual(1)
    for (const k of jwks.keys) {
      expect(k).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' })
      expect(k.d).toBeUndefined()
    }
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await admission.revocations.revoke(peer)
    const list = (await (await fetch(`${url}/v1/revocations`)).json()) as { version: number; revoked: Array<{ peerId: string }> }
    expect(list.revoked.map((r) => r.peerId)).toEqual([peer])
    expect(list.version).toBeGreaterThan(0)
  })
})
