import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { exportJWK, generateKeyPair as generateJoseKeyPair, SignJWT } from 'jose'
import { generateKeyPair as generateLibp2pKey } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  AdmissionDeniedError,
  AdmissionKeysUnavailableError,
  MAX_TOKEN_LIFETIME_S,
  type AdmissionClaims,
} from '../../protocol/admission.js'
import { AdmissionVerifier, signAdmissionToken, type AdmissionVerifierComponents } from './verifier.js'

const ISSUER = 'https://seed.pollen.test'
const AUDIENCE = 'pollen'
const KID = 'seed-2025-01'
const NOW_MS = 1_750_000_000_000
const NOW = NOW_MS / 1000

const seedKey = generateKeyPairSync('ed25519')
const otherKey = generateKeyPairSync('ed25519')
const seedJwk = { ...seedKey.publicKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'EdDSA' }
const jwks = { keys: [seedJwk] }
const peerA = peerIdFromPrivateKey(await generateLibp2pKey('Ed25519')).toString()
const peerB = peerIdFromPrivateKey(await generateLibp2pKey('Ed25519')).toString()
const alpine = { ns: 'docker.io', name: 'library/alpine' }

function claims(change: Partial<Record<keyof AdmissionClaims, unknown>> = {}): AdmissionClaims {
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: peerA,
    iat: NOW - 60,
    nbf: NOW - 60,
    exp: NOW + 540,
    jti: 'jti-1',
    scope: ['docker.io/library/*'],
    ...change,
  } as AdmissionClaims
}

function verifier(components: Partial<AdmissionVerifierComponents> = {}, clockToleranceS?: number): AdmissionVerifier {
  const init = clockToleranceS === undefined ? { issuer: ISSUER, audience: AUDIENCE } : { issuer: ISSUER, audience: AUDIENCE, clockToleranceS }
  return new AdmissionVerifier(init, { keys: () => jwks, now: () => NOW_MS, ...components })
}

const b64json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** A compact JWS with any header and payload, really signed by `key` with Ed25519 (or left unsigned). */
function craft(header: Record<string, unknown>, payload: unknown, key: KeyObject | undefined = seedKey.privateKey): string {
  const input = `${b64json(header)}.${b64json(payload)}`
  const signature = key === undefined ? '' : sign(null, Buffer.from(input), key).toString('base64url')
  return `${input}.${signature}`
}

/** Awaits a refusal; fails the test on acceptance or on an error of another type. */
async function refusal(pending: Promise<unknown>): Promise<AdmissionDeniedError> {
  const outcome = await pending.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(outcome, 'token was accepted').toBeDefined()
  expect(outcome).toBeInstanceOf(AdmissionDeniedError)
  return outcome as AdmissionDeniedError
}

async function reason(token: string | undefined, v = verifier(), expect_: Parameters<AdmissionVerifier['verify']>[1] = {}): Promise<string> {
  return (await refusal(v.verify(token, expect_))).reason
}

describe('AdmissionVerifier', () => {
  it('accepts a valid token and returns its claims', async () => {
    const token = await signAdmissionToken(claims(), seedKey.privateKey, KID)
    await expect(verifier().verify(token, { peerId: peerA, repository: alpine })).resolves.toEqual(claims())
  })

  it('accepts a token signed with a jose-generated key published through exportJWK', async () => {
    const { publicKey, privateKey } = await generateJoseKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
    const keys = { keys: [{ ...(await exportJWK(publicKey)), kid: 'jose-key' }] }
    const token = await signAdmissionToken(claims(), privateKey, 'jose-key')
    await expect(verifier({ keys: async () => keys }).verify(token, { peerId: peerA })).resolves.toMatchObject({ sub: peerA })
  })

  it('refuses a request without a token as missing', async () => {
    expect(await reason(undefined)).toBe('missing')
    expect(await reason('')).toBe('missing')
  })

  it.each([
    ['a word', 'garbage'],
    ['two parts', 'abc.def'],
    ['four parts', 'a.b.c.d'],
    ['a header that is not JSON', `${Buffer.from('not json').toString('base64url')}.e30.AAAA`],
    ['a header that is a JSON array', `${b64json(['EdDSA'])}.e30.AAAA`],
    ['characters outside base64url', 'eyJhbGciOiJFZERTQSJ9.e30+.AAAA'],
    ['padding', 'eyJhbGciOiJFZERTQSJ9.e30=.AAAA'],
  ])('refuses a garbage token (%s) as malformed', async (_label, token) => {
    expect(await reason(token)).toBe('malformed')
  })

  it('refuses a token longer than 8 KiB as malformed without parsing it', async () => {
    const token = craft({ alg: 'EdDSA', kid: KID, typ: 'JWT' }, { ...claims(), padding: 'x'.repeat(6200) })
    expect(token.length).toBeGreaterThan(8192)
    expect(await reason(token)).toBe('malformed')
  })

  it('refuses an expired token as expired', async () => {
    const token = await signAdmissionToken(claims({ iat: NOW - 700, nbf: NOW - 700, exp: NOW - 100 }), seedKey.privateKey, KID)
    expect(await reason(token)).toBe('expired')
  })

  it('accepts a token that expired 20 s ago with 30 s tolerance', async () => {
    const token = await signAdmissionToken(claims({ iat: NOW - 620, nbf: NOW - 620, exp: NOW - 20 }), seedKey.privateKey, KID)
    await expect(verifier({}, 30).verify(token, {})).resolves.toMatchObject({ exp: NOW - 20 })
  })

  it('refuses a token that expired 40 s ago with 30 s tolerance', async () => {
    const token = await signAdmissionToken(claims({ iat: NOW - 640, nbf: NOW - 640, exp: NOW - 40 }), seedKey.privateKey, KID)
    expect(await reason(token, verifier({}, 30))).toBe('expired')
  })

  it('refuses a token that is not valid yet as not-yet-valid', async () => {
    const token = await signAdmissionToken(claims({ iat: NOW, nbf: NOW + 120, exp: NOW + 600 }), seedKey.privateKey, KID)
    expect(await reason(token)).toBe('not-yet-valid')
  })

  it('refuses a token issued in the future as not-yet-valid', async () => {
    const token = await signAdmissionToken(claims({ iat: NOW + 120, nbf: NOW - 60, exp: NOW + 600 }), seedKey.privateKey, KID)
    expect(await reason(token)).toBe('not-yet-valid')
  })

  it('accepts a token whose nbf is 20 s ahead with 30 s tolerance', async () => {
    const token = await signAdmissionToken(claims({ iat: NOW + 20, nbf: NOW + 20, exp: NOW + 600 }), seedKey.privateKey, KID)
    await expect(verifier({}, 30).verify(token, {})).resolves.toBeDefined()
  })

  it('refuses a token living longer than one hour as malformed', async () => {
    const token = craft({ alg: 'EdDSA', kid: KID, typ: 'JWT' }, claims({ iat: NOW - 60, nbf: NOW - 60, exp: NOW - 60 + MAX_TOKEN_LIFETIME_S + 1 }))
    expect(await reason(token)).toBe('malformed')
  })

  it('refuses to sign a token living longer than one hour', async () => {
    const pending = signAdmissionToken(claims({ exp: NOW - 60 + MAX_TOKEN_LIFETIME_S + 1 }), seedKey.privateKey, KID)
    expect((await refusal(pending)).reason).toBe('malformed')
  })

  it('refuses a token from another issuer as issuer', async () => {
    const token = await signAdmissionToken(claims({ iss: 'https://evil.test' }), seedKey.privateKey, KID)
    expect(await reason(token)).toBe('issuer')
  })

  it('refuses a token for another audience as audience', async () => {
    const token = await signAdmissionToken(claims({ aud: 'other-service' }), seedKey.privateKey, KID)
    expect(await reason(token)).toBe('audience')
  })

  it('refuses a token naming several audiences, ours among them, as audience', async () => {
    const token = craft({ alg: 'EdDSA', kid: KID, typ: 'JWT' }, { ...claims(), aud: [AUDIENCE, 'other-service'] })
    expect(await reason(token)).toBe('audience')
  })

  it('accepts a single-element audience array', async () => {
    const token = craft({ alg: 'EdDSA', kid: KID, typ: 'JWT' }, { ...claims(), aud: [AUDIENCE] })
    await expect(verifier().verify(token, {})).resolves.toMatchObject({ aud: AUDIENCE })
  })

  it('refuses a token whose kid is in the JWKS but signed by another key as signature', async () => {
    const token = await signAdmissionToken(claims(), otherKey.privateKey, KID)
    expect(await reason(token)).toBe('signature')
  })

  it('refuses a token whose kid is not in the JWKS as unknown-key', async () => {
    const token = await signAdmissionToken(claims(), otherKey.privateKey, 'attacker-key')
    expect(await reason(token)).toBe('unknown-key')
  })

  it('refuses a token without a kid as unknown-key', async () => {
    expect(await reason(craft({ alg: 'EdDSA', typ: 'JWT' }, claims()))).toBe('unknown-key')
  })

  it.each([
    ['an encryption key', { use: 'enc' }],
    ['a key for another algorithm', { alg: 'ES256' }],
    ['a key whose key_ops exclude verify', { key_ops: ['sign'] }],
    ['an X25519 key', { crv: 'X25519' }],
    ['an entry carrying a private part', { d: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }],
  ])('refuses a kid that names %s as unknown-key', async (_label, change) => {
    const keys = { keys: [{ ...seedJwk, ...change }] }
    const token = await signAdmissionToken(claims(), seedKey.privateKey, KID)
    expect(await reason(token, verifier({ keys: () => keys }))).toBe('unknown-key')
  })

  it('refuses a kid shared by two different keys as unknown-key', async () => {
    const keys = { keys: [seedJwk, { ...otherKey.publicKey.export({ format: 'jwk' }), kid: KID }] }
    const token = await signAdmissionToken(claims(), seedKey.privateKey, KID)
    expect(await reason(token, verifier({ keys: () => keys }))).toBe('unknown-key')
  })

  it('refuses an unsigned alg none token as algorithm', async () => {
    expect(await reason(craft({ alg: 'none', kid: KID, typ: 'JWT' }, claims(), undefined))).toBe('algorithm')
    expect(await reason(craft({ alg: 'none', typ: 'JWT' }, claims(), undefined))).toBe('algorithm')
  })

  it('refuses HS256 signed with the public key as HMAC secret (key confusion) as algorithm', async () => {
    const secrets = [
      seedKey.publicKey.export({ format: 'pem', type: 'spki' }),
      Buffer.from(seedJwk.x as string, 'base64url'),
      JSON.stringify(seedJwk),
    ]
    for (const secret of secrets) {
      const input = `${b64json({ alg: 'HS256', kid: KID, typ: 'JWT' })}.${b64json(claims())}`
      const token = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
      expect(await reason(token)).toBe('algorithm')
    }
  })

  it.each(['RS256', 'ES256', 'PS256', 'Ed25519', 'eddsa', 'EdDSA '])('refuses alg %j as algorithm', async (alg) => {
    expect(await reason(craft({ alg, kid: KID, typ: 'JWT' }, claims()))).toBe('algorithm')
  })

  it.each([
    ['jwk', async () => ({ ...(await exportJWK(otherKey.publicKey)) })],
    ['jku', async () => 'https://evil.test/jwks.json'],
    ['x5c', async () => ['MIIBfake']],
    ['x5u', async () => 'https://evil.test/cert.pem'],
    ['crit', async () => ['exp']],
  ])('refuses an embedded %s header, even when the signature is good, as forbidden-header', async (param, value) => {
    const token = craft({ alg: 'EdDSA', kid: KID, typ: 'JWT', [param]: await value() }, claims())
    expect(await reason(token)).toBe('forbidden-header')
  })

  it('refuses a token signed with the attacker key that its jwk header embeds', async () => {
    const token = craft({ alg: 'EdDSA', kid: KID, jwk: await exportJWK(otherKey.publicKey) }, claims(), otherKey.privateKey)
    expect(await reason(token)).toBe('forbidden-header')
  })

  it('refuses a typ other than JWT as malformed', async () => {
    expect(await reason(craft({ alg: 'EdDSA', kid: KID, typ: 'at+jwt' }, claims()))).toBe('malformed')
  })

  it('refuses a token bound to another PeerId as peer-mismatch', async () => {
    const token = await signAdmissionToken(claims({ sub: peerB }), seedKey.privateKey, KID)
    expect(await reason(token, verifier(), { peerId: peerA })).toBe('peer-mismatch')
  })

  it('refuses when the expected PeerId does not parse as peer-mismatch', async () => {
    const token = await signAdmissionToken(claims(), seedKey.privateKey, KID)
    expect(await reason(token, verifier(), { peerId: 'not-a-peer' })).toBe('peer-mismatch')
  })

  it('refuses a revoked PeerId as revoked', async () => {
    const seen: string[] = []
    const revoked = (peerId: string) => {
      seen.push(peerId)
      return peerId === peerA
    }
    const token = await signAdmissionToken(claims(), seedKey.privateKey, KID)
    const err = await refusal(verifier({ revoked }).verify(token, { peerId: peerA }))
    expect(err.reason).toBe('revoked')
    expect(err.ociCode).toBe('DENIED')
    expect(seen).toEqual([peerA])
  })

  it('refuses a repository the scope does not cover as scope', async () => {
    const token = await signAdmissionToken(claims({ scope: ['docker.io/library/*'] }), seedKey.privateKey, KID)
    const err = await refusal(verifier().verify(token, { peerId: peerA, repository: { ns: 'ghcr.io', name: 'library/alpine' } }))
    expect(err.reason).toBe('scope')
    expect(err.ociCode).toBe('DENIED')
    expect(await reason(token, verifier(), { repository: { ns: 'docker.io', name: 'library/a/b' } })).toBe('scope')
  })

  it.each([
    ['sub is not a PeerId', { sub: 'not-a-peer-id' }],
    ['jti is missing', { jti: undefined }],
    ['scope holds a malformed pattern', { scope: ['library/../secrets'] }],
    ['scope is a string', { scope: 'library/*' }],
    ['exp is a string', { exp: String(NOW + 60) }],
  ])('refuses a signed token whose %s as malformed', async (_label, change) => {
    const token = craft({ alg: 'EdDSA', kid: KID, typ: 'JWT' }, claims(change))
    expect(await reason(token)).toBe('malformed')
  })

  it('refuses a signature spelt in non-canonical base64url as malformed', async () => {
    const token = await signAdmissionToken(claims(), seedKey.privateKey, KID)
    const last = token.at(-1) as string
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    // 64 bytes use 4 of the last character's 6 bits; changing the unused 2 keeps the bytes.
    const sibling = alphabet[alphabet.indexOf(last) ^ 1] as string
    const token2 = `${token.slice(0, -1)}${sibling}`
    expect(Buffer.from(token2.split('.')[2] as string, 'base64url')).toEqual(Buffer.from(token.split('.')[2] as string, 'base64url'))
    expect(await reason(token2)).toBe('malformed')
  })

  it('never puts the token into the error message', async () => {
    const token = await signAdmissionToken(claims({ sub: peerB }), otherKey.privateKey, KID)
    const err = await refusal(verifier().verify(token, { peerId: peerA }))
    expect(err.message).not.toContain(token.split('.')[1])
    expect(err.message).not.toContain(token.split('.')[2])
    expect(String(err.stack)).not.toContain(token.split('.')[2])
  })

  it('reports a failing keys provider as unavailable, not as a bad token', async () => {
    const token = await signAdmissionToken(claims(), seedKey.privateKey, KID)
    const failing = verifier({
      keys: () => {
        throw new Error('seed down')
      },
    })
    await expect(failing.verify(token, {})).rejects.toBeInstanceOf(AdmissionKeysUnavailableError)
  })

  it('signs with the header the verifier expects', async () => {
    const token = await signAdmissionToken(claims(), seedKey.privateKey, KID)
    expect(JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString())).toEqual({ alg: 'EdDSA', kid: KID, typ: 'JWT' })
  })

  it('refuses to sign for a subject that is not an Ed25519 PeerId', async () => {
    expect((await refusal(signAdmissionToken(claims({ sub: 'agent-1' }), seedKey.privateKey, KID))).reason).toBe('malformed')
  })

  it('refuses a token signed by jose for another algorithm as algorithm', async () => {
    const { privateKey } = await generateJoseKeyPair('ES256')
    const token = await new SignJWT({ ...claims() }).setProtectedHeader({ alg: 'ES256', kid: KID }).sign(privateKey)
    expect(await reason(token)).toBe('algorithm')
  })
})

describe('AdmissionVerifier under random mutation', () => {
  /** mulberry32: a small seeded PRNG, so a failure replays exactly. */
  function prng(seed: number): () => number {
    let a = seed >>> 0
    return () => {
      a = (a + 0x6d2b79f5) >>> 0
      let t = a
      t = Math.imul(t ^ (t >>> 15), t | 1)
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    }
  }

  it('refuses 1,000 mutations of a valid token with an AdmissionDeniedError, accepting only the unchanged token', async () => {
    const random = prng(0x5eed_2025)
    const pick = (n: number) => Math.floor(random() * n)
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'
    const randomChar = () => (random() < 0.8 ? (alphabet[pick(alphabet.length)] as string) : String.fromCharCode(pick(256)))
    const original = await signAdmissionToken(claims(), seedKey.privateKey, KID)
    const v = verifier()
    const reasons = new Map<string, number>()
    let unchanged = 0

    for (let i = 0; i < 1000; i++) {
      let token = original
      const edits = 1 + pick(3)
      for (let e = 0; e < edits; e++) {
        const at = pick(token.length)
        const op = pick(5)
        if (op === 0) token = token.slice(0, at) + randomChar() + token.slice(at + 1)
        else if (op === 1) token = token.slice(0, at) + String.fromCharCode(token.charCodeAt(at) ^ (1 << pick(8))) + token.slice(at + 1)
        else if (op === 2) token = token.slice(0, at) + token.slice(at + 1)
        else if (op === 3) token = token.slice(0, at) + randomChar() + token.slice(at)
        else token = token.slice(0, at)
      }
      const outcome = await v.verify(token, { peerId: peerA, repository: alpine }).then(
        () => 'accepted',
        (err: unknown) => err,
      )
      if (token === original) {
        unchanged++
        expect(outcome, `iteration ${i}`).toBe('accepted')
        continue
      }
      expect(outcome, `iteration ${i}: mutated token was accepted`).not.toBe('accepted')
      expect(outcome, `iteration ${i}: ${String(outcome)}`).toBeInstanceOf(AdmissionDeniedError)
      const r = (outcome as AdmissionDeniedError).reason
      reasons.set(r, (reasons.get(r) ?? 0) + 1)
    }
    expect(unchanged).toBeLessThan(50)
    expect([...reasons.values()].reduce((a, b) => a + b, 0) + unchanged).toBe(1000)
    expect(reasons.get('signature') ?? 0).toBeGreaterThan(0)
    expect(reasons.get('malformed') ?? 0).toBeGreaterThan(0)
  })
})
