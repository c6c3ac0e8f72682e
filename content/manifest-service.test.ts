import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ContentStore } from './store.js'
import { digestOf } from '../protocol/digest-verifier.js'
import { parseDigest } from '../protocol/digest.js'
import { DigestMismatchError, ManifestInvalidError, ManifestUnknownError, RegistryUnknownError, UpstreamUnavailableError } from '../protocol/errors.js'
import { OCI_INDEX, OCI_MANIFEST } from '../protocol/media-types.js'
import type { Repository } from '../protocol/reference.js'
import { ManifestService, type ManifestUpstream } from './manifest-service.js'

const logger = pino({ level: 'silent' })
const repo: Repository = { ns: 'r.io', name: 'team/app' }
const manifest = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'c', digest: `sha256:${'a'.repeat(64)}`, size: 1 }, layers: [] }),
)

class FakeUpstream implements ManifestUpstream {
  calls: string[] = []
  failWith: Error | undefined
  answer: { bytes: Buffer; mediaType: string; digest?: string } = { bytes: manifest, mediaType: OCI_MANIFEST }
  async getManifest(_repo: string, reference: string) {
    this.calls.push(reference)
    if (this.failWith !== undefined) throw this.failWith
    return this.answer
  }
}

let dir: string
let store: ContentStore
let now = 0
let upstream: FakeUpstream
let stale: string[]
let service: ManifestService
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-manifests-'))
  store = await ContentStore.open({ dir }, { logger })
  upstream = new FakeUpstream()
  stale = []
  now = 1_000_000
  service = new ManifestService({ tagTtlMs: 30_000 }, { store, upstreams: new Map([['r.io', upstream]]), logger, now: () => now, onStaleTag: (ns) => stale.push(ns) })
})
afterEach(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

describe('ManifestService', () => {
  it('resolves a tag upstream once within the TTL and again after it', async () => {
    const first = await service.get(repo, { kind: 'tag', tag: 'v1' })
    expect(first.bytes.equals(manifest)).toBe(true)
    expect(first.digest).toBe(digestOf(manifest))
    await service.get(repo, { kind: 'tag', tag: 'v1' })
    expect(upstream.calls).toEqual(['v1'])
    now += 30_001
    await service.get(repo, { kind: 'tag', tag: 'v1' })
    expect(upstream.calls).toEqual(['v1', 'v1'])
  })

  it('serves a manifest by digest from the store without asking upstream', async () => {
    const { digest } = await service.get(repo, { kind: 'tag', tag: 'v1' })
    const byDigest = await service.get(repo, { kind: 'digest', digest: parseDigest(digest) })
    expect(byDigest.bytes.equals(manifest)).toBe(true)
    expect(upstream.calls).toEqual(['v1'])
  })

  it('serves the last known answer when the upstream is unavailable after the TTL', async () => {
    await service.get(repo, { kind: 'tag', tag: 'v1' })
    now += 60_000
    upstream.failWith = new UpstreamUnavailableError('down')
    const got = await service.get(repo, { kind: 'tag', tag: 'v1' })
    expect(got.stale).toBe(true)
    expect(got.bytes.equals(manifest)).toBe(true)
    expect(stale).toEqual(['r.io'])
  })

  it('keeps the last known answer across a restart, for stale-if-error', async () => {
    await service.get(repo, { kind: 'tag', tag: 'v1' })
    const restarted = new ManifestService({ tagTtlMs: 30_000 }, { store, upstreams: new Map([['r.io', upstream]]), logger, now: () => now })
    now += 60_000
    upstream.failWith = new UpstreamUnavailableError('down')
    const got = await restarted.get(repo, { kind: 'tag', tag: 'v1' })
    expect(got.stale).toBe(true)
    expect(got.bytes.equals(manifest)).toBe(true)
  })

  it('serves the last known answer when the upstream is slower than staleAfterMs, and refreshes in the background', async () => {
    const patient = new ManifestService({ tagTtlMs: 30_000, staleAfterMs: 50 }, { store, upstreams: new Map([['r.io', upstream]]), logger, now: () => now })
    await patient.get(repo, { kind: 'tag', tag: 'v1' })
    now += 60_000
    let release!: () => void
    const slowUpstream: ManifestUpstream = {
      getManifest: async () => {
        await new Promise<void>((resolve) => (release = resolve))
        return { bytes: manifest, mediaType: OCI_MANIFEST }
      },
    }
    const slowService = new ManifestService({ tagTtlMs: 30_000, staleAfterMs: 50 }, { store, upstreams: new Map([['r.io', slowUpstream]]), logger, now: () => now })
    const started = Date.now()
    const got = await slowService.get(repo, { kind: 'tag', tag: 'v1' })
    expect(got.stale).toBe(true)
    expect(Date.now() - started).toBeLessThan(2000)
    release()
  })

  it('does not serve a stale answer when the upstream says the tag is gone', async () => {
    await service.get(repo, { kind: 'tag', tag: 'v1' })
    now += 60_000
    upstream.failWith = new ManifestUnknownError('v1')
    await expect(service.get(repo, { kind: 'tag', tag: 'v1' })).rejects.toBeInstanceOf(ManifestUnknownError)
  })

  it('refuses a manifest whose bytes do not match the digest asked for', async () => {
    const other = parseDigest(`sha256:${'b'.repeat(64)}`)
    await expect(service.get(repo, { kind: 'digest', digest: other })).rejects.toBeInstanceOf(DigestMismatchError)
    expect(await store.stat(other)).toBeUndefined()
  })

  it('refuses a manifest whose Docker-Content-Digest header contradicts its bytes', async () => {
    upstream.answer = { bytes: manifest, mediaType: OCI_MANIFEST, digest: `sha256:${'c'.repeat(64)}` }
    await expect(service.get(repo, { kind: 'tag', tag: 'v1' })).rejects.toBeInstanceOf(DigestMismatchError)
  })

  it('refuses an index served with layers and caches nothing', async () => {
    const bad = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], layers: [] }))
    upstream.answer = { bytes: bad, mediaType: OCI_INDEX }
    await expect(service.get(repo, { kind: 'tag', tag: 'v1' })).rejects.toBeInstanceOf(ManifestInvalidError)
    expect(await store.stat(parseDigest(digestOf(bad)))).toBeUndefined()
  })

  it('throws RegistryUnknownError for a registry it has no upstream for', async () => {
    await expect(service.get({ ns: 'other.io', name: 'x' }, { kind: 'tag', tag: 'v1' })).rejects.toBeInstanceOf(RegistryUnknownError)
  })

  it('collapses concurrent resolutions of one tag into one upstream call', async () => {
    await Promise.all(Array.from({ length: 10 }, () => service.get(repo, { kind: 'tag', tag: 'v2' })))
    expect(upstream.calls).toEqual(['v2'])
  })
})
