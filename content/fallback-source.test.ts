import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseDigest, type Digest } from '../protocol/digest.js'
import { BlobUnknownError, DigestMismatchError } from '../protocol/errors.js'
import type { BlobInfo, BlobSource, OpenOptions, OpenedBlob } from './blob-source.js'
import { CachingSource } from './caching-source.js'
import { FallbackSource } from './fallback-source.js'
import { DyingSource, LyingSource, MemorySource, StallingSource } from './fault-sources.js'
import { ContentStore } from './store.js'

const logger = pino({ level: 'silent' })
const digestOf = (b: Buffer): Digest => parseDigest(`sha256:${createHash('sha256').update(b).digest('hex')}`)

async function collect(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of s) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

/** A source that stops serving a digest once told its bytes were wrong (as peers get banned). */
class BannableSource implements BlobSource {
  readonly name: string
  banned = false
  constructor(
    readonly inner: BlobSource,
    name: string,
  ) {
    this.name = name
  }
  stat(digest: Digest, options?: OpenOptions): Promise<BlobInfo> {
    return this.inner.stat(digest, options)
  }
  async open(digest: Digest, options?: OpenOptions): Promise<OpenedBlob> {
    if (this.banned) throw new BlobUnknownError(digest.value)
    return this.inner.open(digest, options)
  }
  async retryAfterMismatch(): Promise<boolean> {
    this.banned = true
    return true
  }
}

let dir: string
let store: ContentStore
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-fallback-'))
  store = await ContentStore.open({ dir }, { logger })
})
afterEach(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

describe('FallbackSource', () => {
  it('serves from the first source that has the blob, and names it', async () => {
    const bytes = randomBytes(1000)
    const d = digestOf(bytes)
    const empty = new MemorySource('peer')
    const seed = new MemorySource('seed')
    seed.add(d.value, bytes)
    const chain = new FallbackSource([empty, seed], { logger })
    const opened = await chain.open(d)
    expect(opened.source).toBe('seed')
    expect((await collect(opened.stream)).equals(bytes)).toBe(true)
    expect(empty.opens).toEqual([0])
  })

  it('throws the last source\'s error when none has the blob', async () => {
    const chain = new FallbackSource([new MemorySource('peer'), new MemorySource('seed')], { logger })
    await expect(chain.open(digestOf(Buffer.from('nobody')))).rejects.toBeInstanceOf(BlobUnknownError)
  })

  it('asks only its last source when the caller wants the last resort', async () => {
    const bytes = randomBytes(1000)
    const d = digestOf(bytes)
    const peer = new MemorySource('peer')
    const seed = new MemorySource('seed')
    peer.add(d.value, bytes)
    seed.add(d.value, bytes)
    const chain = new FallbackSource([peer, seed], { logger })
    const opened = await chain.open(d, { lastResort: true })
    expect(opened.source).toBe('seed')
    expect(peer.opens).toEqual([])
    opened.stream.destroy()
  })

  it('finishes a fill from the seed when a peer keeps offering a copy that stalls (the seed is never passed over)', async () => {
    const bytes = randomBytes(256 * 1024)
    const d = digestOf(bytes)
    const peerMem = new MemorySource('peer')
    const seed = new MemorySource('seed')
    peerMem.add(d.value, bytes)
    seed.add(d.value, bytes)
    // The peer source sends 50,000 bytes once, then answers every resume with a stream that stays silent.
    const peer = new StallingSource(peerMem, (i) => (i === 0 ? 50_000 : 0), 'peer')
    peer.handlesFailover = true
    const cache = new CachingSource({ idleTimeoutMs: 100, maxResumes: 2 }, { store, source: new FallbackSource([peer, seed], { logger }), logger })
    const got = await collect((await cache.open(d)).stream)
    expect(got.equals(bytes)).toBe(true)
    // One retry of the peer (another copy may exist), then straight to the seed.
    expect(peer.opens).toEqual([0, 50_000])
    expect(seed.opens).toEqual([50_000])
  })

  it('resumes a broken peer transfer from the next source at the byte reached', async () => {
    const bytes = randomBytes(512 * 1024)
    const d = digestOf(bytes)
    const peer = new MemorySource('peer')
    peer.add(d.value, bytes)
    const seed = new MemorySource('seed')
    seed.add(d.value, bytes)
    const dying = new DyingSource(peer, 200_000, 100)
    const chain = new FallbackSource([new BannableSource(dying, 'peer'), seed], { logger })
    const cache = new CachingSource({ idleTimeoutMs: 2000 }, { store, source: chain, logger })
    expect((await collect((await cache.open(d)).stream)).equals(bytes)).toBe(true)
    expect(seed.opens[0]).toBe(200_000)
  })

  it('starts a fill over from another source when a peer lies, reports the liar, and commits the right bytes', async () => {
    const bytes = randomBytes(300_000)
    const d = digestOf(bytes)
    const honest = new MemorySource('seed')
    honest.add(d.value, bytes)
    const liar = new BannableSource(new LyingSource(honest, 123_456), 'peer')
    const mismatches: string[] = []
    const cache = new CachingSource(
      { idleTimeoutMs: 2000 },
      { store, source: new FallbackSource([liar, honest], { logger }), logger, onMismatch: (s) => mismatches.push(s) },
    )
    const early = await cache.open(d)
    const earlyResult = collect(early.stream)
    await expect(earlyResult).rejects.toBeInstanceOf(DigestMismatchError)
    await cache.fillOf(d)?.done
    expect(mismatches).toEqual(['peer'])
    expect(liar.banned).toBe(true)
    expect((await readFile(store.blobPath(d))).equals(bytes)).toBe(true)
    expect((await collect((await cache.open(d)).stream)).equals(bytes)).toBe(true)
    expect(await readdir(join(dir, 'tmp'))).toEqual([])
  })
})
