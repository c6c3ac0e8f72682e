import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bcryptHash, bcryptVerify } from './bcrypt.js'
import {
  buildImage,
  buildIndex,
  fetchBlob,
  fetchManifest,
  makeBlobFile,
  MEDIA_TYPES,
  pushImage,
  pushIndex,
  RegistryHttpError,
  type BuiltImage,
} from './oci-image.js'
import { parseWwwAuthenticate } from './registry-client.js'
import { startRegistry, type RunningRegistry } from './registry.js'
import { describeWithBinaries, requireBinaries } from './requirements.js'
import { startTokenServer, type TokenServer } from './token-server.js'

const run = promisify(execFile)
const KiB = 1024
const alice = { username: 'alice', password: 'wonderland' }

describe('pure helpers', () => {
  it('bcryptHash produces $2y$ hashes that libxcrypt/OpenBSD test vectors agree with', () => {
    expect(bcryptVerify('U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW')).toBe(true)
    expect(bcryptVerify('secret', '$2b$04$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW')).toBe(true)
    const hash = bcryptHash('pässwörd')
    expect(hash).toMatch(/^\$2y\$04\$[./A-Za-z0-9]{53}$/)
    expect(bcryptVerify('pässwörd', hash)).toBe(true)
    expect(bcryptVerify('passwörd', hash)).toBe(false)
  })

  it('makeBlobFile writes deterministic bytes whose digest matches the file content', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pollen-blob-'))
    try {
      const a = await makeBlobFile(dir, 300 * KiB + 7, 'seed-1')
      const again = await makeBlobFile(dir, 300 * KiB + 7, 'seed-1')
      const other = await makeBlobFile(dir, 300 * KiB + 7, 'seed-2')
      const empty = await makeBlobFile(dir, 0, 'seed-1')
      const bytes = await readFile(a.path)
      expect(bytes.length).toBe(a.size)
      expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(a.digest)
      expect(again.digest).toBe(a.digest)
      expect(other.digest).not.toBe(a.digest)
      expect(empty.digest).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('parseWwwAuthenticate reads quoted Bearer parameters containing commas', () => {
    expect(parseWwwAuthenticate('Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a/b:pull,push"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'http://127.0.0.1:1/token', service: 'svc', scope: 'repository:a/b:pull,push' },
    })
    expect(parseWwwAuthenticate('Basic realm="x"')?.scheme).toBe('basic')
    expect(parseWwwAuthenticate('Negotiate abc')).toBeUndefined()
  })

  it('requireBinaries skips with one install hint outside CI and throws in CI', () => {
    const saved = process.env.CI
    try {
      delete process.env.CI
      expect(requireBinaries(['sh'])).toEqual({ skip: false })
      expect(requireBinaries(['pollen-no-such-binary', '/nonexistent/docker-registry'])).toEqual({
        skip: true,
        reason:
          'skipping e2e: pollen-no-such-binary, /nonexistent/docker-registry not installed (apt-get install -y pollen-no-such-binary docker-registry)',
      })
      process.env.CI = 'true'
      expect(() => requireBinaries(['pollen-no-such-binary'])).toThrow(/pollen-no-such-binary/)
    } finally {
      if (saved === undefined) delete process.env.CI
      else process.env.CI = saved
    }
  })
})

describeWithBinaries(['docker-registry'], 'docker-registry with htpasswd auth', () => {
  let registry: RunningRegistry
  let dir: string
  let image: BuiltImage

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pollen-helpers-'))
    registry = await startRegistry({ auth: { kind: 'htpasswd', users: { alice: alice.password } } })
    image = await buildImage(dir, { layers: [4 * KiB, 1024 * KiB], seed: 'htpasswd' })
  })
  afterAll(async () => {
    await registry?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('answers GET /v2/ with 401 and a Basic challenge when no credentials are sent', async () => {
    const res = await request(`${registry.url}/v2/`, { signal: AbortSignal.timeout(5_000) })
    await res.body.dump()
    expect(res.statusCode).toBe(401)
    expect(String(res.headers['www-authenticate'])).toMatch(/^Basic realm=/)
  })

  it('accepts a push with good credentials and serves the manifest back byte-identical', async () => {
    const digest = await pushImage(registry.url, 'pollen/app', 'v1', image, alice)
    expect(digest).toBe(image.manifestDigest)
    const got = await fetchManifest(registry.url, 'pollen/app', 'v1', alice)
    expect(got.bytes.equals(image.manifest)).toBe(true)
    expect(got.mediaType).toBe(MEDIA_TYPES.ociManifest)
    expect(got.headerDigest).toBe(image.manifestDigest)
    const layer = image.layers[1]!
    const pulled = await fetchBlob(registry.url, 'pollen/app', layer.digest, join(dir, 'pulled-layer'), alice)
    expect(pulled.size).toBe(layer.size)
  })

  it('rejects bad credentials with 401', async () => {
    const wrong = { username: 'alice', password: 'nope' }
    await expect(fetchManifest(registry.url, 'pollen/app', 'v1', wrong)).rejects.toMatchObject({ status: 401 })
    await expect(pushImage(registry.url, 'pollen/other', 'v1', image, wrong)).rejects.toBeInstanceOf(RegistryHttpError)
  })

  it('round-trips a Docker schema 2 image and an OCI index of two platforms', async () => {
    const docker = await buildImage(dir, { layers: [8 * KiB], seed: 'docker', dockerSchema2: true })
    await pushImage(registry.url, 'pollen/docker', 'latest', docker, alice)
    const gotDocker = await fetchManifest(registry.url, 'pollen/docker', 'latest', alice)
    expect(gotDocker.mediaType).toBe(MEDIA_TYPES.dockerManifest)
    expect(gotDocker.bytes.equals(docker.manifest)).toBe(true)

    const arm = { os: 'linux', architecture: 'arm64' }
    const amd = { os: 'linux', architecture: 'amd64' }
    const armImage = await buildImage(dir, { layers: [2 * KiB], seed: 'multi-arm', platform: arm })
    const amdImage = await buildImage(dir, { layers: [2 * KiB], seed: 'multi-amd', platform: amd })
    const index = buildIndex([{ image: armImage, platform: arm }, { image: amdImage, platform: amd }])
    expect(await pushIndex(registry.url, 'pollen/multi', 'v1', index, alice)).toBe(index.manifestDigest)
    const gotIndex = await fetchManifest(registry.url, 'pollen/multi', 'v1', alice)
    expect(gotIndex.mediaType).toBe(MEDIA_TYPES.ociIndex)
    expect(gotIndex.bytes.equals(index.manifest)).toBe(true)
    const child = await fetchManifest(registry.url, 'pollen/multi', armImage.manifestDigest, alice)
    expect(child.bytes.equals(armImage.manifest)).toBe(true)
  })

  it('writes an access log that records the requests', async () => {
    expect(await registry.readLog()).toMatch(/"GET \/v2\/pollen\/app\/manifests\/v1 HTTP\/1\.1" 200/)
  })

  describeWithBinaries(['skopeo'], 'skopeo against it', () => {
    it('skopeo inspect --raw returns the same manifest bytes', async () => {
      await pushImage(registry.url, 'pollen/skopeo', 'v1', image, alice)
      const { stdout } = await run(
        'skopeo',
        ['inspect', '--raw', '--tls-verify=false', '--creds', `${alice.username}:${alice.password}`, `docker://${registry.host}/pollen/skopeo:v1`],
        { timeout: 30_000, encoding: 'buffer' },
      )
      expect(stdout.equals(image.manifest)).toBe(true)
    })
  })
})

describeWithBinaries(['docker-registry', 'openssl'], 'docker-registry with token auth', () => {
  let tokens: TokenServer
  let registry: RunningRegistry
  let dir: string
  let image: BuiltImage

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pollen-helpers-'))
    tokens = await startTokenServer({ service: 'pollen-registry', issuer: 'pollen-test-issuer', users: { alice: alice.password } })
    registry = await startRegistry({
      auth: {
        kind: 'token',
        realm: tokens.realm,
        service: tokens.service,
        issuer: tokens.issuer,
        rootCertBundlePath: tokens.rootCertBundlePath,
      },
    })
    image = await buildImage(dir, { layers: [16 * KiB, 256 * KiB], seed: 'token' })
  })
  afterAll(async () => {
    await registry?.stop()
    await tokens?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('challenges anonymous GET /v2/ with a Bearer realm pointing at the token server', async () => {
    const res = await request(`${registry.url}/v2/`, { signal: AbortSignal.timeout(5_000) })
    await res.body.dump()
    expect(res.statusCode).toBe(401)
    const challenge = parseWwwAuthenticate(res.headers['www-authenticate'])
    expect(challenge).toEqual({ scheme: 'bearer', params: { realm: tokens.realm, service: 'pollen-registry' } })
  })

  it('lets a valid user push and pull through the bearer token flow', async () => {
    await pushImage(registry.url, 'pollen/tok', 'v1', image, alice)
    const got = await fetchManifest(registry.url, 'pollen/tok', 'v1', alice)
    expect(got.bytes.equals(image.manifest)).toBe(true)
    expect(tokens.requests.length).toBeGreaterThan(0)
    expect(tokens.requests.every((r) => r.authorized)).toBe(true)
  })

  it('serves the image through a pull-through cache registry that logs in upstream via the token realm', async () => {
    const proxy = await startRegistry({ proxy: { remoteurl: registry.url, username: alice.username, password: alice.password } })
    try {
      const got = await fetchManifest(proxy.url, 'pollen/tok', 'v1')
      expect(got.bytes.equals(image.manifest)).toBe(true)
      const layer = image.layers[0]!
      const pulled = await fetchBlob(proxy.url, 'pollen/tok', layer.digest, join(dir, 'proxied-layer'))
      expect(pulled.digest).toBe(layer.digest)
    } finally {
      await proxy.stop()
    }
  })

  it('refuses a token to a wrong password, so the push fails with 401', async () => {
    const before = tokens.requests.length
    await expect(pushImage(registry.url, 'pollen/tok2', 'v1', image, { username: 'alice', password: 'x' })).rejects.toMatchObject({
      status: 401,
    })
    expect(tokens.requests.length).toBe(before + 1)
  })

  it('can listen on 127.0.0.2 as a foreign host', async () => {
    const foreign = await startTokenServer({ host: '127.0.0.2', service: 's', issuer: 'i', users: {} })
    try {
      expect(foreign.realm).toMatch(/^http:\/\/127\.0\.0\.2:\d+\/token$/)
      const res = await request(foreign.realm, { signal: AbortSignal.timeout(5_000) })
      await res.body.dump()
      expect(res.statusCode).toBe(401)
      expect(foreign.requests).toEqual([{ method: 'GET', url: '/token', authorized: false }])
    } finally {
      await foreign.stop()
    }
  })

  it('grants registry:catalog:* so the catalog can be listed', async () => {
    const tokenRes = await request(`${tokens.realm}?service=pollen-registry&scope=registry:catalog:*`, {
      headers: { authorization: `Basic ${Buffer.from('alice:wonderland').toString('base64')}` },
      signal: AbortSignal.timeout(5_000),
    })
    const { token } = (await tokenRes.body.json()) as { token: string }
    const res = await request(`${registry.url}/v2/_catalog`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5_000),
    })
    expect(res.statusCode).toBe(200)
    expect(((await res.body.json()) as { repositories: string[] }).repositories).toContain('pollen/tok')
  })

  describeWithBinaries(['skopeo'], 'skopeo against it', () => {
    it('skopeo inspect --raw follows the bearer flow and returns the same manifest bytes', async () => {
      const { stdout } = await run(
        'skopeo',
        ['inspect', '--raw', '--tls-verify=false', '--creds', 'alice:wonderland', `docker://${registry.host}/pollen/tok:v1`],
        { timeout: 30_000, encoding: 'buffer' },
      )
      expect(stdout.equals(image.manifest)).toBe(true)
    })
  })
})
