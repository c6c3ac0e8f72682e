import { writeFile } from 'node:fs/promises'
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JSONWebKeySet, type JWTPayload } from 'jose'

export const TEST_OIDC_ISSUER = 'https://kubernetes.default.svc'
export const TEST_OIDC_AUDIENCE = 'pollen-seed-test'
export const TEST_OIDC_SUBJECT = 'system:serviceaccount:pollen:agent'

/** A test OIDC issuer with a key pair made in the test, minting Kubernetes-like service-account tokens. */
export interface TestOidcIssuer {
  issuer: string
  kid: string
  alg: string
  privateKey: CryptoKey
  publicKey: CryptoKey
  /** The public JWKS, as the seed's --oidc-jwks reads it. */
  jwks: JSONWebKeySet
  writeJwks(path: string): Promise<void>
  /**
   * Signs a token: iss, aud TEST_OIDC_AUDIENCE, sub TEST_OIDC_SUBJECT, iat now, exp in 10 minutes,
   * and Kubernetes' `kubernetes.io` claim, overridden by `claims` (a claim set to undefined is left out).
   */
  mint(claims?: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>
}

export async function createOidcIssuer(options: { alg?: 'ES256' | 'RS256' | 'EdDSA'; issuer?: string; kid?: string } = {}): Promise<TestOidcIssuer> {
  const alg = options.alg ?? 'ES256'
  const issuer = options.issuer ?? TEST_OIDC_ISSUER
  const kid = options.kid ?? `test-${Math.random().toString(36).slice(2, 10)}`
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] }
  return {
    issuer,
    kid,
    alg,
    privateKey,
    publicKey,
    jwks,
    writeJwks: (path) => writeFile(path, JSON.stringify(jwks)),
    async mint(claims = {}, header = {}) {
      const now = Math.floor(Date.now() / 1000)
      const payload: JWTPayload = {
        iss: issuer,
        aud: [TEST_OIDC_AUDIENCE],
        sub: TEST_OIDC_SUBJECT,
        iat: now,
        nbf: now,
        exp: now + 600,
        'kubernetes.io': { namespace: 'pollen', serviceaccount: { name: 'agent', uid: '0c1d0e5a-0000-4000-8000-000000000001' } },
      }
      for (const [k, v] of Object.entries(claims)) {
        if (v === undefined) delete payload[k]
        else payload[k] = v
      }
      return new SignJWT(payload).setProtectedHeader({ alg, kid, ...header }).sign(privateKey)
    },
  }
}
