import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CtrError, startContainerd, writeHostsToml, type RunningContainerd } from './containerd.js'
import { freePort } from './free-port.js'
import { buildImage, buildIndex, makeBlobFile, makeTarGzLayerFile, pushImage, pushIndex, type BuiltImage } from './oci-image.js'
import { startRegistry, type RunningRegistry } from './registry.js'
import { describeWithBinaries } from './requirements.js'

const KiB = 1024
const MANIFEST_ACCEPT =
  'application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, ' +
  'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*'

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`

describe('tar+gzip layers', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pollen-targz-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('writes a gzip ustar whose diffId is the digest of the uncompressed tar', async () => {
    const layer = await makeTarGzLayerFile(dir, 5 * KiB + 3, 'seed-a', 'data/layer-0.bin')
    const gz = await readFile(layer.path)
    const tar = gunzipSync(gz)
    expect(sha256(gz)).toBe(layer.digest)
    expect(gz.length).toBe(layer.size)
    expect(sha256(tar)).toBe(layer.diffId)
    expect(tar.length).toBe(layer.tarSize)
    // directory entry, file entry, content padded to 512, two zero blocks
    expect(tar.length).toBe(512 + 512 + 5.5 * KiB + 1024)
    const header = (offset: number) => ({
      name: tar.toString('utf8', offset, offset + 100).replace(/\0.*$/s, ''),
      size: parseInt(tar.toString('ascii', offset + 124, offset + 135), 8),
      type: tar.toString('ascii', offset + 156, offset + 157),
      magic: tar.toString('ascii', offset + 257, offset + 263),
      checksumOk: parseInt(tar.toString('ascii', offset + 148, offset + 154), 8) === checksum(tar.subarray(offset, offset + 512)),
    })
    expect(header(0)).toEqual({ name: 'data/', size: 0, type: '5', magic: 'ustar\0', checksumOk: true })
    expect(header(512)).toEqual({ name: 'data/layer-0.bin', size: 5 * KiB + 3, type: '0', magic: 'ustar\0', checksumOk: true })
    const plain = await readFile((await makeBlobFile(dir, 5 * KiB + 3, 'seed-a')).path)
    expect(tar.subarray(1024, 1024 + plain.length).equals(plain)).toBe(true)
    expect(tar.subarray(1024 + plain.length).every((byte) => byte === 0)).toBe(true)
  })

  it('buildImage with tar+gzip lists the uncompressed digests as diff_ids and is deterministic', async () => {
    const a = await buildImage(join(dir, 'a'), { layers: [10 * KiB, 20 * KiB], seed: 'img', layerFormat: 'tar+gzip' })
    const b = await buildImage(join(dir, 'b'), { layers: [10 * KiB, 20 * KiB], seed: 'img', layerFormat: 'tar+gzip' })
    const config = JSON.parse(await readFile(a.config.path, 'utf8')) as { rootfs: { diff_ids: string[] } }
    const tars = await Promise.all(a.layers.map(async (layer) => sha256(gunzipSync(await readFile(layer.path)))))
    expect(config.rootfs.diff_ids).toEqual(tars)
    expect(a.diffIds).toEqual(tars)
    expect(a.layers.every((layer, i) => layer.digest !== tars[i])).toBe(true)
    expect(b.manifestDigest).toBe(a.manifestDigest)
    const random = await buildImage(join(dir, 'c'), { layers: [10 * KiB], seed: 'img' })
    expect(random.diffIds).toEqual([random.layers[0]!.digest])
  })
})

function checksum(header: Buffer): number {
  let sum = 0
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!
  return sum
}

describeWithBinaries(['containerd', 'ctr', 'docker-registry'], 'containerd harness', () => {
  let work: string
  let registry: RunningRegistry
  let ctd: RunningContainerd
  let image: BuiltImage

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-ctd-test-'))
    ;[registry, ctd] = await Promise.all([startRegistry(), startContainerd()])
    image = await buildImage(join(work, 'app'), { layers: [64 * KiB, 96 * KiB], seed: 'ctd-app', layerFormat: 'tar+gzip' })
    await pushImage(registry.url, 'team/app', 'v1', image)
  })

  afterAll(async () => {
    await Promise.all([ctd?.stop(), registry?.stop()])
    await rm(work, { recursive: true, force: true })
  })

  /** A hosts dir whose hosts.toml for the registry names it as a plain-http server, after `mirrors`. */
  async function hostsDir(name: string, mirrors: Array<{ url: string; capabilities: string[] }> = []): Promise<string> {
    const dir = join(work, 'hosts', name)
    await writeHostsToml(dir, registry.host, { server: registry.url, mirrors })
    return dir
  }

  /** Requests the registry logged for `path` (no query string: not via a mirror) with `method`. */
  async function directRequests(method: string, path: string): Promise<number> {
    return (await registry.readLog()).split('\n').filter((line) => line.includes(`"${method} ${path} HTTP/`)).length
  }

  it('pulls a two-layer tar+gzip image over plain http as named by hosts.toml, and unpacks it', async () => {
    const ref = `${registry.host}/team/app:v1`
    await ctd.pull(ref, { hostsDir: await hostsDir('plain') })
    expect((await ctd.ctr(['images', 'ls', '-q'])).stdout.split('\n')).toContain(ref)
    const content = await ctd.contentDigests()
    for (const digest of [image.manifestDigest, image.config.digest, ...image.layers.map((layer) => layer.digest)]) expect(content).toContain(digest)
    const snapshots = (await ctd.ctr(['snapshots', '--snapshotter', ctd.snapshotter, 'ls'])).stdout.trim().split('\n').slice(1)
    expect(snapshots).toHaveLength(2)
  })

  it('pulls both platforms of an index with allPlatforms', async () => {
    const amd = await buildImage(join(work, 'amd'), { layers: [16 * KiB], seed: 'ctd-amd', layerFormat: 'tar+gzip' })
    const arm = await buildImage(join(work, 'arm'), {
      layers: [16 * KiB],
      seed: 'ctd-arm',
      layerFormat: 'tar+gzip',
      platform: { os: 'linux', architecture: 'arm64' },
    })
    const index = buildIndex([
      { image: amd, platform: amd.platform },
      { image: arm, platform: arm.platform },
    ])
    await pushIndex(registry.url, 'team/multi', 'v1', index)
    await ctd.pull(`${registry.host}/team/multi:v1`, { hostsDir: await hostsDir('plain'), allPlatforms: true })
    const content = await ctd.contentDigests()
    for (const child of [amd, arm]) {
      expect(content).toContain(child.manifestDigest)
      expect(content).toContain(child.layers[0]!.digest)
    }
    expect(content).toContain(index.manifestDigest)
  })

  it('removeAllContent empties the store so that the next pull fetches every blob again', async () => {
    const again = await buildImage(join(work, 'again'), { layers: [32 * KiB, 32 * KiB], seed: 'ctd-again', layerFormat: 'tar+gzip' })
    await pushImage(registry.url, 'team/again', 'v1', again)
    const ref = `${registry.host}/team/again:v1`
    const layerPath = `/v2/team/again/blobs/${again.layers[1]!.digest}`
    await ctd.pull(ref, { hostsDir: await hostsDir('plain') })
    expect(await directRequests('GET', layerPath)).toBe(1)
    await ctd.removeAllContent()
    expect(await ctd.contentDigests()).toEqual([])
    expect((await ctd.ctr(['images', 'ls', '-q'])).stdout.trim()).toBe('')
    await ctd.pull(ref, { hostsDir: await hostsDir('plain') })
    expect(await directRequests('GET', layerPath)).toBe(2)
  })

  it('falls back to the server at once when the mirror port is closed', async () => {
    await ctd.removeAllContent()
    const deadPort = await freePort()
    const dir = await hostsDir('dead-mirror', [{ url: `http://127.0.0.1:${deadPort}`, capabilities: ['pull', 'resolve'] }])
    const before = await directRequests('GET', `/v2/team/app/blobs/${image.layers[0]!.digest}`)
    const started = Date.now()
    await ctd.pull(`${registry.host}/team/app:v1`, { hostsDir: dir })
    // connection refused costs nothing: ~0.3 s for the whole pull here
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(await directRequests('GET', `/v2/team/app/blobs/${image.layers[0]!.digest}`)).toBe(before + 1)
  })

  describe('what containerd 1.6 sends to a mirror host', () => {
    let mirror: RecordingMirror

    beforeAll(async () => {
      mirror = await startRecordingMirror(registry.url)
    })
    afterAll(() => mirror?.close())

    it('adds ?ns=<registry host> to every request and asks for manifests with the four manifest types and */*', async () => {
      await ctd.removeAllContent()
      mirror.answer = 'proxy'
      mirror.requests.length = 0
      await ctd.pull(`${registry.host}/team/app:v1`, { hostsDir: await hostsDir('proxy', [mirror.entry]) })
      const ns = `ns=${encodeURIComponent(registry.host)}`
      expect(mirror.requests.map((r) => `${r.method} ${r.url}`).sort()).toEqual(
        [
          `HEAD /v2/team/app/manifests/v1?${ns}`,
          `GET /v2/team/app/manifests/${image.manifestDigest}?${ns}`,
          `GET /v2/team/app/blobs/${image.config.digest}?${ns}`,
          ...image.layers.map((layer) => `GET /v2/team/app/blobs/${layer.digest}?${ns}`),
        ].sort(),
      )
      const byPath = (part: string) => mirror.requests.find((r) => r.url.includes(part))!
      expect(byPath('/manifests/v1').accept).toBe(MANIFEST_ACCEPT)
      expect(byPath(`/manifests/${image.manifestDigest}`).accept).toBe(`${image.mediaType}, */*`)
      expect(byPath(`/blobs/${image.layers[0]!.digest}`).accept).toBe('application/vnd.oci.image.layer.v1.tar+gzip, */*')
      expect(mirror.requests.every((r) => r.userAgent.startsWith('containerd/1.6'))).toBe(true)
    })

    it.each([404, 500, 401] as const)('falls back to the server, request by request, when the mirror answers %i', async (status) => {
      await ctd.removeAllContent()
      mirror.answer = status
      mirror.requests.length = 0
      const tagPath = '/v2/team/app/manifests/v1'
      const before = await directRequests('HEAD', tagPath)
      await ctd.pull(`${registry.host}/team/app:v1`, { hostsDir: await hostsDir(`status-${status}`, [mirror.entry]) })
      // each of the 5 requests went to the mirror first (no host is blacklisted), then to the server
      expect(mirror.requests).toHaveLength(5)
      expect(await directRequests('HEAD', tagPath)).toBe(before + 1)
      expect(await ctd.contentDigests()).toContain(image.layers[1]!.digest)
    })

    it('waits on a mirror that accepts but never answers: no response timeout, no fallback', async () => {
      await ctd.removeAllContent()
      mirror.answer = 'hang'
      const tagPath = '/v2/team/app/manifests/v1'
      const before = await directRequests('HEAD', tagPath)
      const pull = ctd.pull(`${registry.host}/team/app:v1`, { hostsDir: await hostsDir('hang', [mirror.entry]), timeoutMs: 3_000 })
      await expect(pull).rejects.toThrow(CtrError)
      await expect(pull).rejects.toThrow(/timed out after 3000 ms/)
      expect(await directRequests('HEAD', tagPath)).toBe(before)
    })
  })
})

interface RecordedRequest {
  method: string
  url: string
  accept: string
  userAgent: string
}

interface RecordingMirror {
  /** hosts.toml entry pointing at this mirror with pull and resolve. */
  entry: { url: string; capabilities: string[] }
  requests: RecordedRequest[]
  /** `proxy` forwards to the registry; a status answers it with an empty body (401 without WWW-Authenticate); `hang` never answers. */
  answer: 'proxy' | 'hang' | 404 | 500 | 401
  close(): Promise<void>
}

/** A loopback HTTP server that records every request and answers as `answer` says. */
async function startRecordingMirror(registryUrl: string): Promise<RecordingMirror> {
  const hanging = new Set<ServerResponse>()
  const mirror: RecordingMirror = {
    entry: { url: '', capabilities: ['pull', 'resolve'] },
    requests: [],
    answer: 'proxy',
    close: () =>
      new Promise((resolve) => {
        for (const res of hanging) res.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  const server: Server = createServer((req, res) => {
    mirror.requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      accept: req.headers.accept ?? '',
      userAgent: req.headers['user-agent'] ?? '',
    })
    const answer = mirror.answer
    if (answer === 'hang') {
      hanging.add(res)
      return
    }
    if (answer !== 'proxy') {
      res.writeHead(answer, { 'content-length': '0' }).end()
      return
    }
    proxy(registryUrl, req, res).catch((err: unknown) => res.destroy(err instanceof Error ? err : new Error(String(err))))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('mirror has no TCP address')
  mirror.entry.url = `http://127.0.0.1:${address.port}`
  return mirror
}

async function proxy(registryUrl: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = req.method === 'HEAD' ? 'HEAD' : 'GET'
  const upstream = await request(`${registryUrl}${req.url ?? '/'}`, {
    method,
    headers: { accept: req.headers.accept ?? '*/*' },
    signal: AbortSignal.timeout(10_000),
  })
  const headers: Record<string, string> = {}
  for (const [key, value] of Object.entries(upstream.headers)) if (typeof value === 'string') headers[key] = value
  res.writeHead(upstream.statusCode, headers)
  for await (const chunk of upstream.body) res.write(chunk)
  res.end()
}
