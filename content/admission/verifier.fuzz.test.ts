import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { generateKeyPair as generateLibp2pKey } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { AdmissionDeniedError, type AdmissionClaims } from '../../protocol/admission.js'
import { FORBIDDEN_HEADER_PARAMS } from './compact-token.js'
import { AdmissionVerifier, signAdmissionToken } from './verifier.js'

// Hostile admission tokens against the real verifier. Property: verify() resolves only for a token
// that is byte-for-byte the seed's (or one the seed's key really signed with an acceptable header),
// and then with exactly the original claims; everything else is an AdmissionDeniedError, never
// another error type and never a hang.

const ISSUER = 'https://seed.pollen.test'
const AUDIENCE = 'pollen'
const KID = 'seed-fuzz'
const NOW_MS = 1_750_000_000_000
const NOW = NOW_MS / 1000
/** Generous per-call deadline: a verify() that has not settled by then counts as a hang. */
const HANG_MS = 2_000

const seedKey = generateKeyPairSync('ed25519')
const attackerKey = generateKeyPairSync('ed25519')
const jwks = { keys: [{ ...seedKey.publicKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'EdDSA' }] }
const peer = peerIdFromPrivateKey(await generateLibp2pKey('Ed25519')).toString()
const original: AdmissionClaims = {
  iss: ISSUER,
  aud: AUDIENCE,
  sub: peer,
  iat: NOW - 60,
  nbf: NOW - 60,
  exp: NOW + 540,
  jti: 'jti-fuzz',
  scope: ['docker.io/library/*'],
}
const validToken = await signAdmissionToken(original, seedKey.privateKey, KID)
const [validHeader = '', validPayload = '', validSignature = ''] = validToken.split('.')
const verifier = new AdmissionVerifier({ issuer: ISSUER, audience: AUDIENCE }, { keys: () => jwks, now: () => NOW_MS })

type Outcome = { kind: 'accepted'; claims: AdmissionClaims } | { kind: 'denied'; err: AdmissionDeniedError } | { kind: 'other'; err: unknown }

async function outcome(token: unknown): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`verify() did not settle within ${HANG_MS} ms`)), HANG_MS)
  })
  try {
    const claims = await Promise.race([verifier.verify(token as string, { peerId: peer, repository: { ns: 'docker.io', name: 'library/alpine' } }), hang])
    return { kind: 'accepted', claims }
  } catch (err) {
    return err instanceof AdmissionDeniedError ? { kind: 'denied', err } : { kind: 'other', err }
  } finally {
    clearTimeout(timer)
  }
}

/** Asserts the property for a token the seed did not issue as such: refused with AdmissionDeniedError. */
async function mustBeDenied(token: unknown): Promise<void> {
  const o = await outcome(token)
  if (o.kind === 'other') throw new Error(`verify() threw ${(o.err as Error)?.name}: ${(o.err as Error)?.message}`)
  if (o.kind === 'accepted') throw new Error(`verify() accepted a hostile token: ${String(token).slice(0, 200)}`)
}

const b64 = (bytes: Uint8Array | string) => Buffer.from(bytes).toString('base64url')
const b64json = (value: unknown) => b64(JSON.stringify(value))
function signed(header: string, payload: string, key: KeyObject): string {
  return `${header}.${payload}.${sign(null, Buffer.from(`${header}.${payload}`), key).toString('base64url')}`
}

/** A JSON value of any shape, including huge strings and deep nesting. */
const anyJson = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.string({ minLength: 5_000, maxLength: 20_000 }),
  fc.constantFrom(null, true, 0, -1, 1e308, Number.MAX_SAFE_INTEGER + 2, '', [], {}),
)

const headerParam = fc.constantFrom('alg', 'kid', 'typ', 'crit', 'jwk', 'jku', 'x5c', 'x5u', 'x5t', 'x5t#S256', 'b64', 'zip', 'cty', '__proto__', 'constructor')
const algValue = fc.constantFrom('EdDSA', 'eddsa', 'none', 'None', 'HS256', 'RS256', 'ES256', 'Ed25519', 'EdDSA ', '', 'EdDSA\u0000')

/** Claims the verifier must refuse: every one differs from the original in a way that matters. */
const alteredClaims = fc.oneof(
  fc.record({ key: fc.constantFrom<keyof AdmissionClaims>('iss', 'aud', 'sub', 'iat', 'nbf', 'exp', 'jti', 'scope'), value: anyJson }).map(({ key, value }) => ({ ...original, [key]: value })),
  fc.constantFrom<keyof AdmissionClaims>('iss', 'aud', 'sub', 'iat', 'nbf', 'exp', 'jti', 'scope').map((key) => {
    const copy: Record<string, unknown> = { ...original }
    delete copy[key]
    return copy
  }),
  fc.dictionary(fc.string(), anyJson, { maxKeys: 12 }),
)

describe('AdmissionVerifier under generated hostile tokens', () => {
  it('accepts the unmodified token with its claims', async () => {
    const o = await outcome(validToken)
    expect(o).toMatchObject({ kind: 'accepted', claims: original })
  })

  it('refuses random strings and random three-part tokens', async () => {
    const part = fc.oneof(fc.base64String(), fc.string({ unit: 'grapheme-ascii' }), fc.uint8Array({ maxLength: 200 }).map(b64), fc.string({ unit: 'binary' }))
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 500 }),
          fc.array(part, { minLength: 0, maxLength: 6 }).map((p) => p.join('.')),
          fc.tuple(part, part, part).map((p) => p.join('.')),
          fc.constantFrom(undefined, null, 42, {}, [], '', '..', '...', 'a.b.c', `${validToken}.`, `.${validToken}`, validToken.repeat(40)),
        ),
        mustBeDenied,
      ),
      { numRuns: 3_000 },
    )
  })

  it('refuses the valid token with bytes flipped, removed, or inserted in any segment', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: validToken.length - 1 }),
        fc.oneof(
          fc.record({ kind: fc.constant('flip' as const), bit: fc.integer({ min: 0, max: 7 }) }),
          fc.record({ kind: fc.constant('replace' as const), char: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) }),
          fc.record({ kind: fc.constant('delete' as const), count: fc.integer({ min: 1, max: 20 }) }),
          fc.record({ kind: fc.constant('insert' as const), text: fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }) }),
          fc.record({ kind: fc.constant('truncate' as const) }),
        ),
        async (at, m) => {
          let token: string
          if (m.kind === 'flip') {
            const code = validToken.charCodeAt(at) ^ (1 << m.bit)
            token = validToken.slice(0, at) + String.fromCharCode(code) + validToken.slice(at + 1)
          } else if (m.kind === 'replace') token = validToken.slice(0, at) + m.char + validToken.slice(at + 1)
          else if (m.kind === 'delete') token = validToken.slice(0, at) + validToken.slice(at + m.count)
          else if (m.kind === 'insert') token = validToken.slice(0, at) + m.text + validToken.slice(at)
          else token = validToken.slice(0, at)
          if (token === validToken) return
          await mustBeDenied(token)
        },
      ),
      { numRuns: 3_000 },
    )
  })

  it('refuses decoded segments with bits flipped and re-encoded (canonical base64url, wrong bytes)', async () => {
    const segments = [validHeader, validPayload, validSignature].map((s) => Buffer.from(s, 'base64url'))
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 2 }), fc.nat(), fc.integer({ min: 0, max: 7 }), async (which, at, bit) => {
        const parts = segments.map((s) => Buffer.from(s))
        const target = parts[which]!
        target[at % target.length]! ^= 1 << bit
        await mustBeDenied(parts.map(b64).join('.'))
      }),
      { numRuns: 1_500 },
    )
  })

  it('refuses altered claims and headers re-encoded under the original signature, or signed by another key', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(alteredClaims.map(b64json), fc.constant(validPayload), fc.uint8Array({ maxLength: 300 }).map(b64), fc.string().map(b64)),
        fc.oneof(
          fc.constant(validHeader),
          fc.dictionary(headerParam, fc.oneof(algValue, anyJson), { maxKeys: 6 }).map((h) => b64json({ alg: 'EdDSA', kid: KID, ...h })),
          // Duplicate keys: the last one wins in JSON.parse; an attacker hopes another parser disagrees.
          fc.tuple(algValue, algValue).map(([a, b]) => b64(`{"alg":"${a}","kid":"${KID}","alg":"${b}"}`)),
          fc.record({ alg: algValue, jwk: fc.constant(attackerKey.publicKey.export({ format: 'jwk' })) }).map(b64json),
        ),
        fc.constantFrom('original', 'attacker'),
        async (payload, header, signer) => {
          if (payload === validPayload && header === validHeader) return
          const token = signer === 'original' ? `${header}.${payload}.${validSignature}` : signed(header, payload, attackerKey.privateKey)
          await mustBeDenied(token)
        },
      ),
      { numRuns: 2_000 },
    )
  })

  it('accepts a header the seed really signed only when it is harmless, and then with the original claims', async () => {
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(headerParam, fc.oneof(algValue, anyJson, fc.constant(KID)), { maxKeys: 5 }),
        fc.boolean(),
        async (extra, duplicate) => {
          const header = duplicate
            ? b64(`{"alg":"EdDSA","kid":"${KID}",${Object.entries(extra).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).concat('"x":1').join(',')}}`)
            : b64json({ alg: 'EdDSA', kid: KID, ...extra })
          const o = await outcome(signed(header, validPayload, seedKey.privateKey))
          if (o.kind === 'other') throw new Error(`verify() threw ${(o.err as Error)?.name}: ${(o.err as Error)?.message}`)
          if (o.kind === 'denied') return
          accepted++
          const parsed = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as Record<string, unknown>
          expect(parsed.alg).toBe('EdDSA')
          for (const p of FORBIDDEN_HEADER_PARAMS) expect(Object.hasOwn(parsed, p), `accepted header with "${p}"`).toBe(false)
          expect(o.claims).toEqual(original)
        },
      ),
      { numRuns: 1_000 },
    )
    expect(accepted).toBeGreaterThan(0)
  })
})
