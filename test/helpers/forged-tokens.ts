/**
 * Admission tokens an attacker could craft, for refusal tests: signed with jose by the seed's
 * real private key (read from its data dir) or by a key the attacker made, with any header
 * and claims. Nothing here checks anything; the product's verifiers must.
 */
import { randomBytes } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { calculateJwkThumbprint, CompactSign, exportJWK, exportSPKI, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose'

/** A signing key: the seed's or the attacker's. */
export interface TokenKey {
  kid: string
  privateKey: CryptoKey
  /** The public half: kty, crv, x (no kid). */
  publicJwk: JWK
  /** The public key as SPKI PEM text. */
  publicPem: string
}

/** Claims as the seed issues them; tests override single ones. */
export type TokenClaims = Record<string, unknown>

/** Reads the newest admission signing key from `<seedDataDir>/admission/keys/<kid>.json`. */
export async function readSeedSigningKey(seedDataDir: string): Promise<TokenKey> {
  const dir = join(seedDataDir, 'admission', 'keys')
  const files = await Promise.all(
    (await readdir(dir)).filter((n) => n.endsWith('.json')).map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8')) as { kid: string; createdAt: string; privateJwk: JWK }),
  )
  const newest = files.sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0]
  if (newest === undefined) throw new Error(`no signing key in ${dir}`)
  const { kty, crv, x, d } = newest.privateJwk
  const privateKey = (await importJWK({ kty, crv, x, d }, 'EdDSA')) as CryptoKey
  return { kid: newest.kid, privateKey, ...(await publicParts({ kty, crv, x })) }
}

/** A fresh Ed25519 key the attacker controls; its kid is its RFC 7638 thumbprint. */
export async function attackerKey(): Promise<TokenKey> {
  const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
  const { kty, crv, x } = await exportJWK(pair.publicKey)
  return { kid: await calculateJwkThumbprint({ kty, crv, x }), privateKey: pair.privateKey, ...(await publicParts({ kty, crv, x })) }
}

/** Claims the seed would issue to `sub` now (iss pollen-seed, aud pollen, 5 min, scope `**`), with `overrides` applied. */
export function seedClaims(sub: string, overrides: TokenClaims = {}): TokenClaims {
  const now = Math.floor(Date.now() / 1000)
  return { iss: 'pollen-seed', aud: 'pollen', sub, iat: now, nbf: now, exp: now + 300, jti: randomBytes(12).toString('base64url'), scope: ['**'], ...overrides }
}

/** Signs `claims` with an Ed25519 key; the protected header is `{alg: EdDSA, typ: JWT, kid}` plus `header`. */
export function signEdDSA(key: TokenKey, claims: TokenClaims, header: Record<string, unknown> = {}): Promise<string> {
  return new CompactSign(json(claims)).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: key.kid, ...header }).sign(key.privateKey)
}

/** HS256 with `secret` as the HMAC key (the classic "public key as HMAC secret" confusion). */
export function signHS256(secret: Uint8Array, claims: TokenClaims, header: Record<string, unknown> = {}): Promise<string> {
  return new CompactSign(json(claims)).setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...header }).sign(secret)
}

/** An unsecured JWS: `{alg: none}` plus `header`, and an empty signature. */
export function unsigned(claims: TokenClaims, header: Record<string, unknown> = {}): string {
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
  return `${b64({ alg: 'none', typ: 'JWT', ...header })}.${b64(claims)}.`
}

/** A certificate-chain header value: one base64 (not base64url) DER-like blob, as `x5c` carries. */
export function fakeCertificateChain(): string[] {
  return [randomBytes(300).toString('base64')]
}

async function publicParts(jwk: JWK): Promise<{ publicJwk: JWK; publicPem: string }> {
  const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x }
  return { publicJwk, publicPem: await exportSPKI((await importJWK(publicJwk, 'EdDSA', { extractable: true })) as CryptoKey) }
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}
