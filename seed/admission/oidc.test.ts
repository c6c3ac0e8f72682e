import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, exportSPKI } from 'jose'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { TEST_OIDC_AUDIENCE, TEST_OIDC_SUBJECT, createOidcIssuer, type TestOidcIssuer } from '../../test/helpers/oidc-issuer.js'
import { OidcKeysUnavailableError, OidcTokenDeniedError } from './errors.js'
import { OidcVerifier, type OidcVerifierInit } from './oidc.js'

const logger = pino({ level: 'silent' })
let dir: string
let jwksPath: string
let issuer: TestOidcIssuer
const servers: Server[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-oidc-'))
  jwksPath = join(dir, 'jwks.json')
  issuer = await createOidcIssuer({ alg: 'ES256' })
  await issuer.writeJwks(jwksPath)
})
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    await new Promise((r) => s.close(r))
  }
  await rm(dir, { recursive: true, force: true })
})

async function verifier(init: Partial<OidcVerifierInit> = {}): Promise<OidcVerifier> {
  const v = new OidcVerifier({ issuer: issuer.issuer, audience: TEST_OIDC_AUDIENCE, jwks: jwksPath, jwksFileCheckMs: 0, ...init }, { logger })
  await v.load()
  return v
}

/** The refusal `verify` throws, or undefined when it accepts the token. */
async function refusal(v: OidcVerifier, token: string): Promise<OidcTokenDeniedError | undefined> {
  try {
    await v.verify(token)
    return undefined
  } catch (err) {
    expect(err).toBeInstanceOf(OidcTokenDeniedError)
    if (token.length > 10) expect((err as Error).message).not.toContain(token)
    return err as OidcTokenDeniedError
  }
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

describe('OidcVerifier', () => {
  it('accepts a valid service-account token and returns its subject, the default scope and the expiry', async () => {
    const v = await verifier()
    const token = await issuer.mint()
    const identity = await v.verify(token)
    expect(identity.subject).toBe(TEST_OIDC_SUBJECT)
    expect(identity.scope).toEqual(['**'])
    expect(identity.expiresAt).toBeGreaterThan(Date.now() + 590_000)
  })

  it('accepts RS256 tokens, a subject matching a glob pattern, and grants the configured scope', async () => {
    issuer = await createOidcIssuer({ alg: 'RS256' })
    await issuer.writeJwks(jwksPath)
    const v = await verifier({ subjects: ['system:serviceaccount:other:*', 'system:serviceaccount:pollen:*'], scope: ['team-a/**'] })
    expect(await v.verify(await issuer.mint())).toMatchObject({ subject: TEST_OIDC_SUBJECT, scope: ['team-a/**'] })
  })

  it('refuses a token from another issuer, naming the verified subject for the audit', async () => {
    const err = await refusal(await verifier(), await issuer.mint({ iss: 'https://evil.example' }))
    expect(err).toMatchObject({ reason: 'issuer', subject: TEST_OIDC_SUBJECT, ociCode: 'UNAUTHORIZED' })
  })

  it('refuses a token for another audience', async () => {
    expect((await refusal(await verifier(), await issuer.mint({ aud: ['https://kubernetes.default.svc'] })))?.reason).toBe('audience')
  })

  it('refuses an expired token but tolerates 30 s of clock skew', async () => {
    const v = await verifier()
    const now = Math.floor(Date.now() / 1000)
    expect((await refusal(v, await issuer.mint({ iat: now - 700, nbf: now - 700, exp: now - 60 })))?.reason).toBe('expired')
    expect(await refusal(v, await issuer.mint({ iat: now - 700, nbf: now - 700, exp: now - 10 }))).toBeUndefined()
    expect((await refusal(v, await issuer.mint({ iat: now + 120, nbf: now + 120, exp: now + 600 })))?.reason).toBe('not-yet-valid')
  })

  it('refuses a token without exp, and one whose lifetime exceeds the cap', async () => {
    const v = await verifier({ maxLifetimeS: 3600 })
    expect((await refusal(v, await issuer.mint({ exp: undefined })))?.reason).toBe('malformed')
    const now = Math.floor(Date.now() / 1000)
    expect((await refusal(v, await issuer.mint({ exp: now + 365 * 86_400 })))?.reason).toBe('malformed')
  })

  it('refuses alg none', async () => {
    const v = await verifier()
    const now = Math.floor(Date.now() / 1000)
    const unsigned = `${b64({ alg: 'none', kid: issuer.kid })}.${b64({ iss: issuer.issuer, aud: TEST_OIDC_AUDIENCE, sub: TEST_OIDC_SUBJECT, exp: now + 600 })}.`
    expect((await refusal(v, unsigned))?.reason).toBe('algorithm')
  })

  it('refuses HS256 signed with the issuer\'s public key as the HMAC secret', async () => {
    issuer = await createOidcIssuer({ alg: 'RS256' })
    await issuer.writeJwks(jwksPath)
    const v = await verifier()
    const secret = new TextEncoder().encode(await exportSPKI(issuer.publicKey))
    const now = Math.floor(Date.now() / 1000)
    const forged = await new SignJWT({ iss: issuer.issuer, aud: TEST_OIDC_AUDIENCE, sub: TEST_OIDC_SUBJECT, iat: now, exp: now + 600 })
      .setProtectedHeader({ alg: 'HS256', kid: issuer.kid })
      .sign(secret)
    expect((await refusal(v, forged))?.reason).toBe('algorithm')
  })

  it('refuses an unknown kid, and a known kid with a signature from another key', async () => {
    const v = await verifier()
    expect((await refusal(v, await issuer.mint({}, { kid: 'no-such-key' })))?.reason).toBe('unknown-key')
    const impostor = await createOidcIssuer({ alg: 'ES256', kid: issuer.kid })
    expect((await refusal(v, await impostor.mint()))?.reason).toBe('signature')
  })

  it('refuses tokens that bring their own key in the header', async () => {
    const v = await verifier()
    expect((await refusal(v, await issuer.mint({}, { jwk: issuer.jwks.keys[0] })))?.reason).toBe('forbidden-header')
    expect((await refusal(v, await issuer.mint({}, { jku: 'https://evil.example/jwks' })))?.reason).toBe('forbidden-header')
  })

  it('refuses a subject that matches no pattern with a 403 reason', async () => {
    const v = await verifier({ subjects: ['system:serviceaccount:pollen:agent-*'] })
    const err = await refusal(v, await issuer.mint({ sub: 'system:serviceaccount:default:default' }))
    expect(err).toMatchObject({ reason: 'subject', subject: 'system:serviceaccount:default:default', ociCode: 'DENIED' })
  })

  it('refuses a missing or garbage token as missing or malformed', async () => {
    const v = await verifier()
    expect((await refusal(v, ''))?.reason).toBe('missing')
    expect((await refusal(v, 'not.a.jwt'))?.reason).toBe('malformed')
    expect((await refusal(v, 'x'.repeat(20_000)))?.reason).toBe('malformed')
  })

  it('reads the JWKS file again when it changes, and keeps the old keys when a rewrite is broken', async () => {
    const v = await verifier()
    const rotated = await createOidcIssuer({ alg: 'ES256' })
    expect((await refusal(v, await rotated.mint()))?.reason).toBe('unknown-key')
    await writeFile(jwksPath, JSON.stringify({ keys: [...issuer.jwks.keys, ...rotated.jwks.keys] }))
    expect((await v.verify(await rotated.mint())).subject).toBe(TEST_OIDC_SUBJECT)
    await writeFile(jwksPath, '{ not json')
    expect((await v.verify(await issuer.mint())).subject).toBe(TEST_OIDC_SUBJECT)
  })

  it('fails to load a JWKS file that is missing or not a JWKS', async () => {
    await expect(verifier({ jwks: join(dir, 'missing.json') })).rejects.toBeInstanceOf(OidcKeysUnavailableError)
    await writeFile(jwksPath, JSON.stringify({ nokeys: true }))
    await expect(verifier()).rejects.toBeInstanceOf(OidcKeysUnavailableError)
  })

  it('fetches the JWKS from a URL, and reports the keys unavailable when the URL does not answer in time', async () => {
    const served = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(issuer.jwks)))
    expect((await (await verifier({ jwks: `${served}/jwks` })).verify(await issuer.mint())).subject).toBe(TEST_OIDC_SUBJECT)
    const silent = await serve(() => {})
    const v = await verifier({ jwks: `${silent}/jwks`, jwksTimeoutMs: 200 })
    const started = Date.now()
    await expect(v.verify(await issuer.mint())).rejects.toBeInstanceOf(OidcKeysUnavailableError)
    expect(Date.now() - started).toBeLessThan(5_000)
  })
})

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler)
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}
