import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseImageReference } from '../protocol/image-reference.js'
import { OCI_INDEX, OCI_MANIFEST } from '../protocol/media-types.js'
import { preheatImages, type PreheatInit } from './preheat.js'
import type { PreheatListener } from './preheat-progress.js'

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

function blob(text: string): { bytes: Buffer; digest: string } {
  const bytes = Buffer.from(text.repeat(1000))
  return { bytes, digest: sha(bytes) }
}

/** A fake seed: manifests by repo/reference, blobs by digest, with faults to order. */
class FakeSeed {
  readonly manifests = new Map<string, { body: Buffer; type: string }>()
  readonly blobs = new Map<string, Buffer>()
  readonly served: string[] = []
  /** Digest → how many 503s to answer first. */
  readonly unavailable = new Map<string, number>()
  /** Digest → bytes to send instead. */
  readonly lies = new Map<string, Buffer>()
  server!: Server

  image(repo: string, tag: string, layers: Array<{ bytes: Buffer; digest: string }>, platform?: { os: string; architecture: string }): { digest: string; size: number; platform?: object } {
    const config = blob(`config ${repo} ${tag} ${platform?.architecture ?? ''}`)
    for (const b of [config, ...layers]) this.blobs.set(b.digest, b.bytes)
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length }, layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.bytes.length })) }))
    this.manifests.set(`${repo}/${tag}`, { body, type: OCI_MANIFEST })
    this.manifests.set(`${repo}/${sha(body)}`, { body, type: OCI_MANIFEST })
    return { digest: sha(body), size: body.length, ...(platform === undefined ? {} : { platform }) }
  }

  index(repo: string, tag: string, children: Array<{ digest: string; size: number; platform?: object }>): void {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((c) => ({ mediaType: OCI_MANIFEST, ...c })) }))
    this.manifests.set(`${repo}/${tag}`, { body, type: OCI_INDEX })
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x')
      if (req.headers.authorization !== 'Bearer t0ken' || url.searchParams.get('ns') !== 'reg.example:5000') return void res.writeHead(401).end()
      const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname)
      if (m?.[2] === 'manifests') {
        const found = this.manifests.get(`${m[1]}/${m[3]}`)
        if (found === undefined) return void res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }))
        return void res.writeHead(200, { 'content-type': found.type }).end(found.body)
      }
      const digest = m?.[3] ?? ''
      const left = this.unavailable.get(digest) ?? 0
      if (left > 0) {
        this.unavailable.set(digest, left - 1)
        return void res.writeHead(503).end()
      }
      const bytes = this.lies.get(digest) ?? this.blobs.get(digest)
      if (bytes === undefined) return void res.writeHead(404).end()
      this.served.push(digest)
      res.writeHead(200, { 'content-length': bytes.length }).end(bytes)
    })
    this.server.listen(0, '127.0.0.1')
    await new Promise((r) => this.server.once('listening', r))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }
}

function recorder(): PreheatListener & { bytesSeen: number; done: string[] } {
  return {
    bytesSeen: 0,
    done: [],
    resolved() {},
    bytes(_i, n) {
      this.bytesSeen += n
    },
    blobDone(_i, b) {
      this.done.push(b.digest)
    },
    imageDone() {},
  }
}

describe('preheatImages', () => {
  const seed = new FakeSeed()
  const shared = blob('shared layer')
  const arm = blob('arm only')
  const amd = blob('amd only')
  let init: PreheatInit
  beforeAll(async () => {
    seed.image('team/app', 'v1', [shared, blob('app layer')])
    const a = seed.image('team/multi', 'arm64', [shared, arm], { os: 'linux', architecture: 'arm64' })
    const b = seed.image('team/multi', 'amd64', [shared, amd], { os: 'linux', architecture: 'amd64' })
    seed.index('team/multi', 'latest', [a, b])
    init = { seedUrl: await seed.start(), platforms: 'all', attempts: 3 }
  })
  afterAll(() => seed.server.close())
  const ref = (s: string) => parseImageReference(`reg.example:5000/${s}`)
  const token = async () => 't0ken'

  it('reads every distinct blob of every platform in an index once, checking each digest', async () => {
    seed.served.length = 0
    const listener = recorder()
    const [outcome] = await preheatImages([ref('team/multi:latest')], init, { token, listener })
    expect(outcome).toMatchObject({ ok: true, blobs: 5 })
    expect(new Set(seed.served).size).toBe(seed.served.length)
    expect(seed.served).toEqual(expect.arrayContaining([shared.digest, arm.digest, amd.digest]))
    expect(listener.bytesSeen).toBe(outcome!.bytes)
  })

  it('follows only the requested platforms', async () => {
    seed.served.length = 0
    const [outcome] = await preheatImages([ref('team/multi:latest')], { ...init, platforms: [{ os: 'linux', architecture: 'arm64' }] }, { token, listener: recorder() })
    expect(outcome).toMatchObject({ ok: true, blobs: 3 })
    expect(seed.served).toContain(arm.digest)
    expect(seed.served).not.toContain(amd.digest)
    const [none] = await preheatImages([ref('team/multi:latest')], { ...init, platforms: [{ os: 'windows', architecture: 'amd64' }] }, { token, listener: recorder() })
    expect(none).toMatchObject({ ok: false, error: 'the index has no manifest for windows/amd64' })
  })

  it('retries a blob the seed could not serve yet, and fails an image whose bytes do not match without retrying', async () => {
    seed.unavailable.set(shared.digest, 2)
    const [ok] = await preheatImages([ref('team/app:v1')], init, { token, listener: recorder() })
    expect(ok?.ok).toBe(true)
    seed.lies.set(amd.digest, Buffer.from('x'.repeat(amd.bytes.length)))
    seed.served.length = 0
    const listener = recorder()
    const [bad] = await preheatImages([ref('team/multi:amd64')], init, { token, listener })
    seed.lies.clear()
    expect(bad?.ok).toBe(false)
    expect(bad?.error).toMatch(/does not match digest/)
    expect(seed.served.filter((d) => d === amd.digest)).toHaveLength(1)
    expect(listener.bytesSeen).toBe(bad!.bytes)
  })

  it('names a missing image and still preheats the others', async () => {
    const outcomes = await preheatImages([ref('team/gone:v1'), ref('team/app:v1')], init, { token, listener: recorder() })
    expect(outcomes.map((o) => o.ok)).toEqual([false, true])
    expect(outcomes[0]?.error).toBe('manifest reg.example:5000/team/gone:v1: HTTP 404 MANIFEST_UNKNOWN: manifest unknown')
  })

  it('says the seed cannot be reached when nothing listens', async () => {
    const [outcome] = await preheatImages([ref('team/app:v1')], { ...init, seedUrl: 'http://127.0.0.1:9', attempts: 1 }, { token, listener: recorder() })
    expect(outcome?.error).toBe('cannot reach the seed at http://127.0.0.1:9 (connection refused; is it running?)')
  })
})
