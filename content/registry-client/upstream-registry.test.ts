import { createHash } from 'node:crypto'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST } from '../../protocol/media-types.js'
import { startRegistry, startServer, sendOciError, tokenHandler, type FakeRegistryOptions, type FakeServer } from './fake-upstream.js'
import { failure } from './fake-upstream.js'
import { UpstreamRegistry, type UpstreamInit } from './upstream-registry.js'

const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' })
const CREDS = { username: 'alice', password: 'pa55-xyzzy-secret' }
const BASIC_B64 = Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64')
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`
const MANIFEST = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(Buffer.from('{}')), size: 2 }, layers: [] }),
)
const MANIFEST_DIGEST = sha256(MANIFEST)
const manifests = new Map([
  ['library/app/latest', { bytes: MANIFEST, mediaType: OCI_MANIFEST }],
  [`library/app/${MANIFEST_DIGEST}`, { bytes: MANIFEST, mediaType: OCI_MANIFEST }],
])

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.()
})

async function registry(o: FakeRegistryOptions = {}, address?: string): Promise<Awaited<ReturnType<typeof startRegistry>>> {
  const r = await startRegistry({ manifests, ...o }, address)
  cleanup.push(() => r.close())
  return r
}

async function server(address?: string): Promise<FakeServer> {
  const s = await startServer((_req, res) => res.end(), address)
  cleanup.push(() => s.close())
  return s
}

function client(upstream: FakeServer, init: Partial<UpstreamInit> = {}): { up: UpstreamRegistry; codes: string[] } {
  const codes: string[] = []
  const up = new UpstreamRegistry(
    { ns: upstream.host, url: upstream.url, ...init },
    { logger, metrics: { request: (_r, code) => codes.push(code), bytes: () => {} }, sleep: async () => {} },
  )
  cleanup.push(() => up.close())
  return { up, codes }
}


describe('UpstreamRegistry as the agent\'s client of its seed (with a bearer)', () => {
  it('sends the admission token and, when the seed refuses it, reports the seed\'s reason without answering its challenge', async () => {
    const seen: string[] = []
    const seed = await startServer((req, res) => {
      seen.push(`${req.url} ${req.headers.authorization ?? '-'}`)
      sendOciError(res, 401, 'UNAUTHORIZED', 'admission token has expired', { 'www-authenticate': 'Bearer realm="http://seed/v1/admission",service="pollen"' })
    })
    cleanup.push(() => seed.close())
    const up = new UpstreamRegistry({ ns: seed.host, url: seed.url, role: 'seed' }, { logger, bearer: () => 'tok', sleep: async () => {} })
    cleanup.push(() => up.close())
    const err = await failure(up.getManifest('library/app', 'latest'))
    expect(err.ociCode).toBe('UNAUTHORIZED')
    expect(err.message).toBe(`seed ${seed.host} refused library/app with its admission token: admission token has expired`)
    expect(seen).toEqual(['/v2/library/app/manifests/latest Bearer tok'])
    const anonymous = new UpstreamRegistry({ ns: seed.host, url: seed.url }, { logger, bearer: () => undefined, sleep: async () => {} })
    cleanup.push(() => anonymous.close())
    expect((await failure(anonymous.getManifest('library/app', 'latest'))).message).toMatch(/no admission token \(is this agent enrolled\?\)/)
  })

  it('names the seed, not an upstream, in its errors', async () => {
    const seed = await startServer((_req, res) => sendOciError(res, 503, 'UNAVAILABLE', 'overloaded'))
    cleanup.push(() => seed.close())
    const { up } = client(seed, { role: 'seed', maxRetries: 0 })
    const err = await failure(up.openBlob('library/app', MANIFEST_DIGEST))
    expect(err.message).toMatch(new RegExp(`^seed ${seed.host.replace(/\./g, '\\.')} `))
    const plain = client(seed, { maxRetries: 0 }).up
    expect((await failure(plain.openBlob('library/app', MANIFEST_DIGEST))).message).toMatch(/^upstream /)
  })

  it('keeps its admission token out of errors even when the seed echoes it', async () => {
    const token = 'eyJhbGciOiJFZERTQSJ9.admission-token-secret.sig'
    let status = 401
    const seed = await startServer((_req, res) => sendOciError(res, status, status === 401 ? 'UNAUTHORIZED' : 'DENIED', `token ${token} refused`))
    cleanup.push(() => seed.close())
    const up = new UpstreamRegistry({ ns: seed.host, url: seed.url }, { logger, bearer: () => token, sleep: async () => {} })
    cleanup.push(() => up.close())
    const refused = await failure(up.getManifest('library/app', 'latest'))
    status = 403
    const denied = await failure(up.getManifest('library/app', 'latest'))
    for (const err of [refused, denied]) {
      expect(err.message).toContain('refused')
      expectNoSecret(err, token)
    }
  })
})

function expectNoSecret(err: Error, ...secrets: string[]): void {
  const text = `${err.message} ${JSON.stringify(err)} ${String(err.stack)}`
  for (const s of [CREDS.password, BASIC_B64, ...secrets]) expect(text).not.toContain(s)
}

describe('UpstreamRegistry manifests and authentication', () => {
  it('fetches a manifest anonymously with its exact bytes, media type and digest, accepting all four manifest types', async () => {
    const r = await registry()
    const { up, codes } = client(r)
    const got = await up.getManifest('library/app', 'latest')
    expect(got.bytes.equals(MANIFEST)).toBe(true)
    expect(got).toMatchObject({ mediaType: OCI_MANIFEST, size: MANIFEST.byteLength })
    const accept = r.requests[0]?.headers.accept ?? ''
    for (const t of [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]) expect(accept).toContain(t)
    expect(r.requests[0]?.headers.authorization).toBeUndefined()
    expect(codes).toEqual(['200'])
  })

  it('answers HEAD with the size and no bytes', async () => {
    const { up } = client(await registry())
    const got = await up.getManifest('library/app', MANIFEST_DIGEST, { method: 'HEAD' })
    expect(got).toMatchObject({ size: MANIFEST.byteLength, digest: MANIFEST_DIGEST })
    expect(got.bytes.byteLength).toBe(0)
  })

  it('answers a Basic challenge with the configured credentials, then sends them from the start', async () => {
    const r = await registry({ auth: 'basic', credentials: CREDS })
    const { up, codes } = client(r, { credentials: CREDS })
    await up.getManifest('library/app', 'latest')
    await up.getManifest('library/app', 'latest')
    expect(r.requests.map((q) => q.headers.authorization)).toEqual([undefined, `Basic ${BASIC_B64}`, `Basic ${BASIC_B64}`])
    expect(codes).toEqual(['401', '200', '200'])
  })

  it('fails a Basic challenge with UpstreamUnauthorizedError when no credentials are configured', async () => {
    const r = await registry({ auth: 'basic', credentials: CREDS })
    const err = await failure(client(r).up.getManifest('library/app', 'latest'))
    expect(err.code).toBe('UpstreamUnauthorizedError')
    expect(r.requests).toHaveLength(1)
  })

  it('fails with UpstreamUnauthorizedError, naming no secret, when Basic credentials are wrong', async () => {
    const r = await registry({ auth: 'basic', credentials: CREDS })
    const wrong = { username: 'alice', password: 'wrong-pass-qwerty' }
    const err = await failure(client(r, { credentials: wrong }).up.getManifest('library/app', 'latest'))
    expect(err.code).toBe('UpstreamUnauthorizedError')
    expectNoSecret(err, 'wrong-pass-qwerty', Buffer.from('alice:wrong-pass-qwerty').toString('base64'))
    expect(r.requests).toHaveLength(2)
  })

  it('gets a bearer token from the realm with the credentials, and reuses it for the next request without the token endpoint', async () => {
    const r = await registry({ auth: 'bearer', credentials: CREDS, expiresIn: 300 })
    const { up } = client(r, { credentials: CREDS })
    await up.getManifest('library/app', 'latest')
    await up.getManifest('library/app', MANIFEST_DIGEST)
    const tokenRequests = r.requests.filter((q) => q.url.startsWith('/token'))
    expect(tokenRequests).toHaveLength(1)
    const tokenUrl = new URL(tokenRequests[0]?.url ?? '', r.url)
    expect(tokenUrl.searchParams.get('service')).toBe('fake')
    expect(tokenUrl.searchParams.get('scope')).toBe('repository:library/app:pull')
    expect(tokenRequests[0]?.headers.authorization).toBe(`Basic ${BASIC_B64}`)
    const v2 = r.requests.filter((q) => q.url.startsWith('/v2/'))
    expect(v2.map((q) => q.headers.authorization)).toEqual([undefined, `Bearer ${r.token}`, `Bearer ${r.token}`])
  })

  it('asks the token endpoint anonymously when no credentials are configured', async () => {
    const r = await registry({ auth: 'bearer' })
    await client(r).up.getManifest('library/app', 'latest')
    expect(r.requests.find((q) => q.url.startsWith('/token'))?.headers.authorization).toBeUndefined()
  })

  it('makes one token request for concurrent requests of one repository', async () => {
    const r = await registry({ auth: 'bearer', credentials: CREDS })
    const { up } = client(r, { credentials: CREDS })
    await Promise.all(Array.from({ length: 5 }, () => up.getManifest('library/app', 'latest')))
    expect(r.requests.filter((q) => q.url.startsWith('/token'))).toHaveLength(1)
  })

  it('gets a fresh token when the upstream refuses a cached one', async () => {
    const r = await registry({ auth: 'bearer', credentials: CREDS, expiresIn: 300 })
    const { up } = client(r, { credentials: CREDS })
    await up.getManifest('library/app', 'latest')
    let revoked = true
    r.handler = (req, res) => {
      if (revoked && req.url?.startsWith('/v2/') === true) {
        revoked = false
        return sendOciError(res, 401, 'UNAUTHORIZED', 'token revoked', { 'www-authenticate': `Bearer realm="${r.url}/token",service="fake"` })
      }
      r.serve(req, res)
    }
    await up.getManifest('library/app', 'latest')
    expect(r.requests.filter((q) => q.url.startsWith('/token'))).toHaveLength(2)
  })

  it('refuses a token realm on a foreign host with ForeignRealmError, and the realm receives no request', async () => {
    const realm = await server('127.0.0.2')
    realm.handler = tokenHandler({ token: 'stolen' })
    const r = await registry({ auth: 'bearer', credentials: CREDS, realm: () => `${realm.url}/token` })
    const err = await failure(client(r, { credentials: CREDS }).up.getManifest('library/app', 'latest'))
    expect(err.code).toBe('ForeignRealmError')
    expect(err.message).toContain(realm.host)
    expect(realm.requests).toHaveLength(0)
    expectNoSecret(err)
  })

  it('uses a realm on another host when it is listed in realmHosts', async () => {
    const realm = await server('127.0.0.2')
    const r = await registry({ auth: 'bearer', credentials: CREDS, realm: () => `${realm.url}/token` })
    realm.handler = tokenHandler({ token: r.token, credentials: CREDS })
    await client(r, { credentials: CREDS, realmHosts: [realm.host] }).up.getManifest('library/app', 'latest')
    expect(realm.requests).toHaveLength(1)
  })

  it('fails with UpstreamUnauthorizedError, naming no secret, when the token endpoint rejects the credentials', async () => {
    const r = await registry({ auth: 'bearer', credentials: CREDS })
    const wrong = { username: 'alice', password: 'wrong-pass-qwerty' }
    const err = await failure(client(r, { credentials: wrong }).up.getManifest('library/app', 'latest'))
    expect(err.code).toBe('UpstreamUnauthorizedError')
    expect(err.message).toBe(`upstream ${r.host} rejected the configured credentials`)
    expectNoSecret(err, 'wrong-pass-qwerty')
  })

  it('fails with UpstreamUnauthorizedError when the upstream refuses the fresh token too', async () => {
    const r = await registry({ auth: 'bearer', token: 'issued-but-useless' })
    r.handler = (req, res) => {
      if (req.url?.startsWith('/token') === true) return tokenHandler({ token: 'other-token-abc' })(req, res)
      r.serve(req, res)
    }
    const err = await failure(client(r).up.getManifest('library/app', 'latest'))
    expect(err.code).toBe('UpstreamUnauthorizedError')
    expect(r.requests.filter((q) => q.url.startsWith('/v2/'))).toHaveLength(2)
    expectNoSecret(err, 'other-token-abc')
  })

  it('does not follow a 401 challenge without a realm or with junk', async () => {
    const r = await registry()
    r.handler = (_req, res) => sendOciError(res, 401, 'UNAUTHORIZED', 'x', { 'www-authenticate': 'Bearer ,,,=junk' })
    expect((await failure(client(r).up.getManifest('library/app', 'latest'))).code).toBe('UpstreamUnauthorizedError')
  })

  it('maps 404 to ManifestUnknownError and 403 to UpstreamDeniedError', async () => {
    const r = await registry()
    const { up } = client(r)
    expect((await failure(up.getManifest('library/app', 'missing'))).code).toBe('ManifestUnknownError')
    r.handler = (_req, res) => sendOciError(res, 403, 'DENIED')
    expect((await failure(up.getManifest('library/app', 'latest'))).code).toBe('UpstreamDeniedError')
    expect(r.requests).toHaveLength(2)
  })

  it('passes on an upstream 400 error code, redacting any echoed secret', async () => {
    const r = await registry({ auth: 'basic', credentials: CREDS })
    r.handler = (req, res) => {
      if (req.headers.authorization === undefined) return r.serve(req, res)
      sendOciError(res, 400, 'NAME_INVALID', `bad name; you sent ${req.headers.authorization} and ${CREDS.password}`)
    }
    const err = await failure(client(r, { credentials: CREDS }).up.getManifest('library/app', 'latest'))
    expect(err).toMatchObject({ code: 'UpstreamRejectedError', ociCode: 'NAME_INVALID' })
    expect(err.message).toContain('NAME_INVALID bad name')
    expectNoSecret(err)
  })

  it('does not pass on an auth-like code from a 4xx body', async () => {
    const r = await registry()
    r.handler = (_req, res) => sendOciError(res, 400, 'UNAUTHORIZED')
    expect(await failure(client(r).up.getManifest('library/app', 'latest'))).toMatchObject({ code: 'UpstreamRejectedError', ociCode: 'UNAVAILABLE' })
  })

  it('refuses a manifest over 4 MiB, by Content-Length or by counting a chunked body', async () => {
    const r = await registry()
    const { up } = client(r)
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': 5 * 1024 * 1024 })
      res.write(Buffer.alloc(1024))
    }
    expect((await failure(up.getManifest('library/app', 'latest'))).code).toBe('ManifestInvalidError')
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST })
      res.end(Buffer.alloc(4 * 1024 * 1024 + 1))
    }
    expect((await failure(up.getManifest('library/app', 'latest'))).code).toBe('ManifestInvalidError')
  })

  it('refuses manifest bytes that do not match the digest asked for or the upstream Docker-Content-Digest', async () => {
    const r = await registry()
    const { up } = client(r)
    const other = sha256(Buffer.from('other'))
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': other })
      res.end(MANIFEST)
    }
    expect((await failure(up.getManifest('library/app', 'latest'))).code).toBe('DigestMismatchError')
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST })
      res.end(Buffer.from('{"tampered":true}'))
    }
    expect((await failure(up.getManifest('library/app', MANIFEST_DIGEST))).code).toBe('DigestMismatchError')
  })

  it('reports the upstream Docker-Content-Digest when it matches and strips Content-Type parameters', async () => {
    const r = await registry()
    r.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': `${OCI_MANIFEST}; charset=utf-8`, 'docker-content-digest': MANIFEST_DIGEST })
      res.end(MANIFEST)
    }
    expect(await client(r).up.getManifest('library/app', 'latest')).toMatchObject({ digest: MANIFEST_DIGEST, mediaType: OCI_MANIFEST })
  })

  it('rejects invalid repository names and references before sending anything', async () => {
    const r = await registry()
    const { up } = client(r)
    expect((await failure(up.getManifest('../../etc', 'latest'))).code).toBe('NameInvalidError')
    expect((await failure(up.getManifest('library/app', 'latest?x=1'))).code).toBe('ReferenceInvalidError')
    expect((await failure(up.openBlob('library/app', 'sha256:nothex'))).code).toBe('DigestInvalidError')
    expect(r.requests).toHaveLength(0)
  })
})
