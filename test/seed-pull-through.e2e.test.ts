import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildImage, buildIndex, makeBlobFile, pushBlob, pushImage, pushIndex, type BuiltImage, type BuiltIndex } from './helpers/oci-image.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'
import { startSeedProcess, type SeedProcess } from './helpers/pollen-process.js'
import { blobDigestsInDir, skopeoCopyToDir } from './helpers/skopeo.js'
import { startTokenServer, type TokenServer } from './helpers/token-server.js'

const USER = { username: 'alice', password: 'correct horse battery staple' }
const MiB = 1024 * 1024

interface Fixture {
  registry: RunningRegistry
  seed: SeedProcess
  image: BuiltImage
  docker: BuiltImage
  index: BuiltIndex
  work: string
}

async function writeCredentials(dir: string, host: string, user: string, password: string): Promise<string> {
  const path = join(dir, `config-${user}-${createHash('sha1').update(password).digest('hex').slice(0, 6)}.json`)
  const auth = Buffer.from(`${user}:${password}`).toString('base64')
  await writeFile(path, JSON.stringify({ auths: { [`http://${host}`]: { auth } } }), { mode: 0o600 })
  return path
}

function seedArgs(registry: RunningRegistry, dataDir: string, credentials?: string, extra: string[] = []): string[] {
  const args = ['--data', dataDir, '--upstream', `${registry.host}=${registry.url}`, '--default-ns', registry.host, '--log-level', 'info', ...extra]
  if (credentials !== undefined) args.push('--credentials', credentials)
  return args
}

/** Pushes a 3-layer OCI image, a Docker schema2 image and a two-platform index. */
async function pushFixtures(registry: RunningRegistry, work: string): Promise<Pick<Fixture, 'image' | 'docker' | 'index'>> {
  const auth = USER
  const image = await buildImage(join(work, 'img'), { layers: [100_000, MiB, 3 * MiB + 7], seed: 'oci' })
  await pushImage(registry.url, 'team/app', 'v1', image, auth)
  const docker = await buildImage(join(work, 'docker'), { layers: [200_000, 50_000], seed: 'docker', dockerSchema2: true })
  await pushImage(registry.url, 'team/legacy', 'v1', docker, auth)
  const arm = await buildImage(join(work, 'arm'), { layers: [300_000, 20_000], seed: 'arm', platform: { os: 'linux', architecture: 'arm64' } })
  const amd = await buildImage(join(work, 'amd'), { layers: [310_000], seed: 'amd' })
  const index = buildIndex([
    { image: amd, platform: amd.platform },
    { image: arm, platform: arm.platform },
  ])
  await pushIndex(registry.url, 'team/multi', 'latest', index, auth)
  return { image, docker, index }
}

function expectDirHoldsImage(blobs: Set<string>, image: BuiltImage): void {
  for (const f of [image.config, ...image.layers]) expect(blobs.has(f.digest), `${f.digest} copied`).toBe(true)
}

/** The admission token a test client holds for each running seed, by origin. */
const seedTokens = new Map<string, string>()

/** Starts a seed and enrolls a test client with it, as every client of the seed must be. */
async function startSeed(args: string[]): Promise<SeedProcess> {
  const seed = await startSeedProcess(args)
  seedTokens.set(new URL(seed.url).origin, await seed.clientToken())
  return seed
}

function tokenOf(seed: SeedProcess): string | undefined {
  return seedTokens.get(new URL(seed.url).origin)
}

/** `Authorization: Bearer` with the test client's admission token for the seed at `url`. */
function admitted(url: string): Record<string, string> {
  const token = seedTokens.get(new URL(url).origin)
  return token === undefined ? {} : { authorization: `Bearer ${token}` }
}

/** A request whose path is sent exactly as given: node:http does not normalise `..` (undici does). */
async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const { origin, hostname, port } = new URL(url)
  const req = httpRequest({ host: hostname, port, method, path: url.slice(origin.length), headers: { ...admitted(url), ...headers }, signal: AbortSignal.timeout(60_000) })
  req.end()
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  const parts: Buffer[] = []
  for await (const chunk of res) parts.push(chunk as Buffer)
  const body = Buffer.concat(parts)
  return { status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString()) as { errors: Array<{ code: string; message: string }> } }
}

describeWithBinaries(['docker-registry', 'skopeo'], 'seed against a real docker-registry upstream', () => {
  describe('with htpasswd Basic auth', () => {
    const f = {} as Fixture
    beforeAll(async () => {
      f.work = await mkdtemp(join(tmpdir(), 'pollen-e2e-basic-'))
      f.registry = await startRegistry({ auth: { kind: 'htpasswd', users: { [USER.username]: USER.password } } })
      Object.assign(f, await pushFixtures(f.registry, f.work))
      const creds = await writeCredentials(f.work, f.registry.host, USER.username, USER.password)
      f.seed = await startSeed(seedArgs(f.registry, join(f.work, 'seed'), creds))
    })
    afterAll(async () => {
      await f.seed?.stop()
      await f.registry?.stop()
      if (f.work !== undefined) await rm(f.work, { recursive: true, force: true })
    })

    it('lets skopeo copy a multi-layer OCI image through the seed, byte for byte', async () => {
      const out = join(f.work, 'copy-oci')
      await skopeoCopyToDir(`${f.seed.host}/team/app:v1`, out, { registryToken: tokenOf(f.seed) })
      expect((await readFile(join(out, 'manifest.json'))).equals(f.image.manifest)).toBe(true)
      expectDirHoldsImage(await blobDigestsInDir(out), f.image)
    })

    it('lets skopeo copy a Docker schema2 image through the seed, byte for byte', async () => {
      const out = join(f.work, 'copy-docker')
      await skopeoCopyToDir(`${f.seed.host}/team/legacy:v1`, out, { registryToken: tokenOf(f.seed) })
      expect((await readFile(join(out, 'manifest.json'))).equals(f.docker.manifest)).toBe(true)
      expectDirHoldsImage(await blobDigestsInDir(out), f.docker)
    })

    it('lets skopeo copy a multi-arch index and every platform through the seed, byte for byte', async () => {
      const out = join(f.work, 'copy-index')
      await skopeoCopyToDir(`${f.seed.host}/team/multi:latest`, out, { all: true, registryToken: tokenOf(f.seed) })
      expect((await readFile(join(out, 'manifest.json'))).equals(f.index.manifest)).toBe(true)
      const blobs = await blobDigestsInDir(out)
      for (const child of f.index.children) {
        expectDirHoldsImage(blobs, child.image)
        const hex = child.image.manifestDigest.slice('sha256:'.length)
        expect((await readFile(join(out, `${hex}.manifest.json`))).equals(child.image.manifest)).toBe(true)
      }
    })

    it('serves manifests for ?ns= with exact bytes and the headers the spec requires', async () => {
      const res = await get(`${f.seed.url}/v2/team/app/manifests/v1?ns=${f.registry.host}`)
      expect(res.status).toBe(200)
      expect(res.body.equals(f.image.manifest)).toBe(true)
      expect(res.headers['docker-content-digest']).toBe(f.image.manifestDigest)
      expect(res.headers['content-type']).toBe(f.image.mediaType)
      expect(Number(res.headers['content-length'])).toBe(f.image.manifest.byteLength)
      const head = await get(`${f.seed.url}/v2/team/app/manifests/${f.image.manifestDigest}?ns=${f.registry.host}`, {}, 'HEAD')
      expect(head.status).toBe(200)
      expect(head.body.byteLength).toBe(0)
      expect(Number(head.headers['content-length'])).toBe(f.image.manifest.byteLength)
    })

    it('answers blob Range requests with 206 and Content-Range, and 416 past the end', async () => {
      const layer = f.image.layers[1]!
      const base = `${f.seed.url}/v2/team/app/blobs/${layer.digest}?ns=${f.registry.host}`
      const whole = await readFile(layer.path)
      const part = await get(base, { Range: 'bytes=1000-1999' })
      expect(part.status).toBe(206)
      expect(part.headers['content-range']).toBe(`bytes 1000-1999/${layer.size}`)
      expect(part.body.equals(whole.subarray(1000, 2000))).toBe(true)
      const tail = await get(base, { Range: `bytes=${layer.size - 10}-` })
      expect(tail.status).toBe(206)
      expect(tail.body.equals(whole.subarray(layer.size - 10))).toBe(true)
      const past = await get(base, { Range: `bytes=${layer.size}-` })
      expect(past.status).toBe(416)
      expect(past.json().errors[0]!.code).toBe('RANGE_INVALID')
      const head = await get(base, {}, 'HEAD')
      expect(head.headers['docker-content-digest']).toBe(layer.digest)
      expect(head.headers['content-type']).toBe('application/octet-stream')
      expect(Number(head.headers['content-length'])).toBe(layer.size)
    })

    it('answers bad input with the right OCI error and creates nothing outside its data dir', async () => {
      const D = f.image.layers[0]!.digest
      const ns = `ns=${f.registry.host}`
      const cases: Array<[string, number, string]> = [
        [`/v2/../../../etc/blobs/${D}?${ns}`, 400, 'NAME_INVALID'],
        [`/v2/team/%2e%2e/%2e%2e/blobs/${D}?${ns}`, 400, 'NAME_INVALID'],
        [`/v2/team/app/blobs/sha256:${'A'.repeat(64)}?${ns}`, 400, 'DIGEST_INVALID'],
        [`/v2/team/app/blobs/sha256:abc?${ns}`, 400, 'DIGEST_INVALID'],
        [`/v2/team/app/blobs/md5:${'a'.repeat(32)}?${ns}`, 400, 'DIGEST_INVALID'],
        [`/v2/team/app/blobs/${D}?ns=unknown.example`, 404, 'NAME_UNKNOWN'],
        [`/v2/team/app/blobs/${D}?ns=../../x`, 400, 'NAME_INVALID'],
        [`/v2/team/app/manifests/nope?${ns}`, 404, 'MANIFEST_UNKNOWN'],
        [`/v2/team/app/blobs/sha256:${'0'.repeat(64)}?${ns}`, 404, 'BLOB_UNKNOWN'],
        [`/v2/team/missing/manifests/v1?${ns}`, 404, 'MANIFEST_UNKNOWN'],
      ]
      for (const [path, status, code] of cases) {
        const res = await get(`${f.seed.url}${path}`)
        expect({ path, status: res.status, code: res.json().errors[0]?.code }).toEqual({ path, status, code })
      }
      const put = await request(`${f.seed.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: admitted(f.seed.url), signal: AbortSignal.timeout(5000) })
      expect(put.statusCode).toBe(405)
      expect(put.headers.allow).toBe('GET, HEAD')
      expect(((await put.body.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNSUPPORTED')
      const seedDir = join(f.work, 'seed')
      const files = await listFiles(seedDir)
      for (const file of files) expect(file).toMatch(/^(p2p\/peer-key|admission\/(keys\/[A-Za-z0-9_-]{43}\.json|audit\.log|join-tokens\.json|revoked\.json)|content\/(index\/.+|blobs\/sha256\/[0-9a-f]{2}\/[0-9a-f]{64}))$/)
      expect(await readdir(join(seedDir, 'content', 'tmp'))).toEqual([])
    })

    it('makes the upstream serve a 64 MiB blob exactly once for 20 concurrent cold GETs', async () => {
      const big = await makeBlobFile(f.work, 64 * MiB, 'big')
      await pushBlob(f.registry.url, 'team/big', big, USER)
      const before = await f.seed.metric('pollen_seed_upstream_bytes_total')
      const url = `${f.seed.url}/v2/team/big/blobs/${big.digest}?ns=${f.registry.host}`
      const digests = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const res = await request(url, { headers: admitted(url), signal: AbortSignal.timeout(120_000) })
          expect(res.statusCode).toBe(200)
          const hash = createHash('sha256')
          for await (const chunk of res.body) hash.update(chunk as Buffer)
          return `sha256:${hash.digest('hex')}`
        }),
      )
      expect(new Set(digests)).toEqual(new Set([big.digest]))
      expect((await f.seed.metric('pollen_seed_upstream_bytes_total')) - before).toBe(64 * MiB)
      const log = await f.registry.readLog()
      const blobGets = log.split('\n').filter((l) => l.includes(`"GET /v2/team/big/blobs/${big.digest}`))
      expect(blobGets).toHaveLength(1)
      expect(await f.seed.metric('pollen_seed_served_bytes_total', { kind: 'blob' })).toBeGreaterThanOrEqual(20 * 64 * MiB)
    })

    it('reports wrong upstream credentials as a clear UNAUTHORIZED error', async () => {
      const creds = await writeCredentials(f.work, f.registry.host, USER.username, 'wrong password')
      const seed = await startSeed(seedArgs(f.registry, join(f.work, 'seed-wrong'), creds))
      try {
        const res = await get(`${seed.url}/v2/team/app/manifests/v1`)
        expect(res.status).toBe(401)
        expect(res.json().errors[0]!.code).toBe('UNAUTHORIZED')
        expect(res.json().errors[0]!.message).toMatch(/credential|rejected|unauthori[sz]ed/i)
        expect(res.headers['www-authenticate']).toBeUndefined()
        expect(seed.output()).not.toContain('wrong password')
        expect(seed.output()).not.toContain(Buffer.from(`${USER.username}:wrong password`).toString('base64'))
      } finally {
        await seed.stop()
      }
    })

    it('exports the upstream request and served-bytes metrics, and health endpoints', async () => {
      expect(await f.seed.metric('pollen_seed_upstream_requests_total', { registry: f.registry.host, code: '200' })).toBeGreaterThan(0)
      expect(await f.seed.metric('pollen_seed_served_bytes_total', { kind: 'manifest' })).toBeGreaterThan(0)
      expect((await get(`${f.seed.opsUrl}/healthz`)).status).toBe(200)
      expect((await get(`${f.seed.opsUrl}/readyz`)).status).toBe(200)
    })
  })

  describe('with token auth', () => {
    let work: string
    let tokens: TokenServer
    let registry: RunningRegistry
    let fixtures: Pick<Fixture, 'image' | 'docker' | 'index'>
    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'pollen-e2e-token-'))
      tokens = await startTokenServer({ service: 'pollen-test-registry', issuer: 'pollen-test-issuer', users: { [USER.username]: USER.password } })
      registry = await startRegistry({
        auth: { kind: 'token', realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundlePath: tokens.rootCertBundlePath },
      })
      fixtures = await pushFixtures(registry, work)
    })
    afterAll(async () => {
      await registry?.stop()
      await tokens?.stop()
      if (work !== undefined) await rm(work, { recursive: true, force: true })
    })

    it('lets skopeo copy an image and a multi-arch index through the seed, byte for byte', async () => {
      const creds = await writeCredentials(work, registry.host, USER.username, USER.password)
      const seed = await startSeed(seedArgs(registry, join(work, 'seed'), creds))
      try {
        const out = join(work, 'copy-oci')
        await skopeoCopyToDir(`${seed.host}/team/app:v1`, out, { registryToken: tokenOf(seed) })
        expect((await readFile(join(out, 'manifest.json'))).equals(fixtures.image.manifest)).toBe(true)
        expectDirHoldsImage(await blobDigestsInDir(out), fixtures.image)
        const outIndex = join(work, 'copy-index')
        await skopeoCopyToDir(`${seed.host}/team/multi:latest`, outIndex, { all: true, registryToken: tokenOf(seed) })
        expect((await readFile(join(outIndex, 'manifest.json'))).equals(fixtures.index.manifest)).toBe(true)
        const blobs = await blobDigestsInDir(outIndex)
        for (const child of fixtures.index.children) expectDirHoldsImage(blobs, child.image)
        const tokenRequests = tokens.requests.length
        await get(`${seed.url}/v2/team/app/manifests/${fixtures.image.manifestDigest}`)
        await get(`${seed.url}/v2/team/app/blobs/${fixtures.image.layers[0]!.digest}`)
        expect(tokens.requests.length - tokenRequests).toBeLessThanOrEqual(1)
      } finally {
        await seed.stop()
      }
    })

    it('reports wrong upstream credentials as a clear UNAUTHORIZED error', async () => {
      const creds = await writeCredentials(work, registry.host, USER.username, 'not the password')
      const seed = await startSeed(seedArgs(registry, join(work, 'seed-wrong'), creds))
      try {
        const res = await get(`${seed.url}/v2/team/app/manifests/v1`)
        expect(res.status).toBe(401)
        expect(res.json().errors[0]!.code).toBe('UNAUTHORIZED')
        expect(seed.output()).not.toContain('not the password')
      } finally {
        await seed.stop()
      }
    })

    it('refuses a token realm on a foreign host and never sends it credentials', async () => {
      const foreign = await startTokenServer({ host: '127.0.0.2', service: 'evil', issuer: 'evil', users: { [USER.username]: USER.password } })
      const evilRegistry = await startRegistry({
        auth: { kind: 'token', realm: foreign.realm, service: foreign.service, issuer: foreign.issuer, rootCertBundlePath: foreign.rootCertBundlePath },
      })
      const creds = await writeCredentials(work, evilRegistry.host, USER.username, USER.password)
      const seed = await startSeed(seedArgs(evilRegistry, join(work, 'seed-foreign'), creds))
      try {
        const res = await get(`${seed.url}/v2/team/app/manifests/v1`)
        expect(res.status).toBe(401)
        expect(res.json().errors[0]!.code).toBe('UNAUTHORIZED')
        expect(res.json().errors[0]!.message).toMatch(/realm/)
        expect(foreign.requests).toHaveLength(0)
      } finally {
        await seed.stop()
        await evilRegistry.stop()
        await foreign.stop()
      }
    })
  })

  describe('when the upstream goes away', () => {
    it('serves the last known tag answer (stale-if-error) and cached blobs', async () => {
      const work = await mkdtemp(join(tmpdir(), 'pollen-e2e-stale-'))
      const registry = await startRegistry({ auth: { kind: 'htpasswd', users: { [USER.username]: USER.password } } })
      const image = await buildImage(join(work, 'img'), { layers: [10_000], seed: 'stale' })
      await pushImage(registry.url, 'team/app', 'v1', image, USER)
      const creds = await writeCredentials(work, registry.host, USER.username, USER.password)
      const seed = await startSeed(seedArgs(registry, join(work, 'seed'), creds, ['--tag-ttl', '0s']))
      try {
        expect((await get(`${seed.url}/v2/team/app/manifests/v1`)).status).toBe(200)
        expect((await get(`${seed.url}/v2/team/app/blobs/${image.layers[0]!.digest}`)).status).toBe(200)
        await registry.stop()
        const res = await get(`${seed.url}/v2/team/app/manifests/v1`)
        expect(res.status).toBe(200)
        expect(res.body.equals(image.manifest)).toBe(true)
        expect(await seed.metric('pollen_seed_stale_tags_served_total')).toBe(1)
        expect((await get(`${seed.url}/v2/team/app/blobs/${image.layers[0]!.digest}`)).status).toBe(200)
      } finally {
        await seed.stop()
        await registry.stop()
        await rm(work, { recursive: true, force: true })
      }
    })
  })
  describe('with --cache-size', () => {
    it('evicts the least recently used blobs past its capacity and fetches an evicted blob again', async () => {
      const work = await mkdtemp(join(tmpdir(), 'pollen-e2e-evict-'))
      const registry = await startRegistry({ auth: { kind: 'htpasswd', users: { [USER.username]: USER.password } } })
      const image = await buildImage(join(work, 'img'), { layers: [3 * MiB, 3 * MiB, 3 * MiB, 3 * MiB], seed: 'evict' })
      await pushImage(registry.url, 'team/app', 'v1', image, USER)
      const creds = await writeCredentials(work, registry.host, USER.username, USER.password)
      const seed = await startSeed(seedArgs(registry, join(work, 'seed'), creds, ['--cache-size', '8MiB']))
      try {
        for (const layer of image.layers) {
          const res = await get(`${seed.url}/v2/team/app/blobs/${layer.digest}`)
          expect(res.status).toBe(200)
          expect(res.body.equals(await readFile(layer.path))).toBe(true)
        }
        expect(await seed.metric('pollen_seed_cache_capacity_bytes')).toBe(8 * MiB)
        // 12 MiB went through an 8 MiB cache: the oldest layers went, down to the low watermark (70 %).
        const deadline = Date.now() + 10_000
        while ((await seed.metric('pollen_seed_cache_bytes')) > 0.85 * 8 * MiB && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
        expect(await seed.metric('pollen_seed_cache_bytes')).toBeLessThanOrEqual(0.85 * 8 * MiB)
        expect(await seed.metric('pollen_seed_evictions_total')).toBeGreaterThanOrEqual(2)
        expect(await seed.metric('pollen_seed_evicted_bytes_total')).toBeGreaterThanOrEqual(6 * MiB)
        const upstreamBefore = await seed.metric('pollen_seed_upstream_bytes_total', { registry: registry.host })
        const first = image.layers[0]!
        const again = await get(`${seed.url}/v2/team/app/blobs/${first.digest}`)
        expect(again.status).toBe(200)
        expect(again.body.equals(await readFile(first.path))).toBe(true)
        // The evicted layer came from the registry again.
        expect(await seed.metric('pollen_seed_upstream_bytes_total', { registry: registry.host })).toBeGreaterThanOrEqual(upstreamBefore + first.size)
      } finally {
        await seed.stop()
        await registry.stop()
        await rm(work, { recursive: true, force: true })
      }
    })
  })
})

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath, entry.name)))
  }
  return out
}


