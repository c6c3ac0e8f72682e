import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseDigest, type Digest } from '../protocol/digest.js'
import { BlobUnknownError, DigestMismatchError } from '../protocol/errors.js'
import { CachingSource } from './caching-source.js'
import { DyingSource, LyingSource, MemorySource, StallingSource } from './fault-sources.js'
import { ContentStore } from './store.js'
import type { BlobSource } from './blob-source.js'

const logger = pino({ level: process.env.LOG_LEVEL ?? "silent" })
const digestOf = (b: Buffer): Digest => parseDigest(`sha256:${createHash('sha256').update(b).digest('hex')}`)

async function collect(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of s) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

let dir: string
let store: ContentStore
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-fill-'))
  store = await ContentStore.open({ dir }, { logger })
})
afterEach(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

/** Set per run of the suite below: every fill hashed inline, or every fill hashed on a worker thread. */
let hashing: { offThreadHashBytes?: number } = {}

function setup(source: BlobSource, init = {}) {
  return new CachingSource({ idleTimeoutMs: 2000, ...hashing, ...init }, { store, source, logger })
}

describe.each([
  ['inline', {}],
  ['on a worker thread', { offThreadHashBytes: 0 }],
])('CachingSource, hashing %s', (_name, init) => {
  beforeEach(() => {
    hashing = init
  })

  it('makes one fetch for N concurrent readers of a missing blob, and each gets every byte', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    mem.chunkDelayMs = 1
    const cache = setup(mem)
    const results = await Promise.all(Array.from({ length: 20 }, async () => collect((await cache.open(d)).stream)))
    for (const r of results) expect(r.equals(bytes)).toBe(true)
    expect(mem.opens).toEqual([0])
    expect((await readFile(store.blobPath(d))).equals(bytes)).toBe(true)
    expect(cache.inflight).toBe(0)
  })

  it('streams bytes to a reader before the fill has finished', async () => {
    const bytes = randomBytes(2 * 1024 * 1024)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    mem.chunkDelayMs = 20
    const cache = setup(mem)
    const { stream } = await cache.open(d)
    const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve))
    stream.destroy()
    expect(first.byteLength).toBeGreaterThan(0)
    const fill = cache.fillOf(d)
    expect(fill).toBeDefined()
    expect(fill!.written).toBeLessThan(bytes.byteLength)
    await fill!.done
  })

  it('finishes and commits the fill when its only reader disconnects', async () => {
    const bytes = randomBytes(1024 * 1024)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    mem.chunkDelayMs = 5
    const cache = setup(mem)
    const { stream } = await cache.open(d)
    const fill = cache.fillOf(d)!
    stream.destroy()
    await fill.done
    expect((await readFile(store.blobPath(d))).equals(bytes)).toBe(true)
  })

  it('serves a range of a fill in progress', async () => {
    const bytes = randomBytes(1024 * 1024)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    mem.chunkDelayMs = 2
    const cache = setup(mem)
    const handle = await cache.acquire(d)
    expect(handle.cached).toBe(false)
    expect(handle.size).toBe(bytes.byteLength)
    const part = await collect(await handle.read(500_000, 600_000))
    expect(part.equals(bytes.subarray(500_000, 600_001))).toBe(true)
    const cachedHandle = await (async () => {
      await cache.fillOf(d)?.done
      return cache.acquire(d)
    })()
    expect(cachedHandle.cached).toBe(true)
    expect((await collect(await cachedHandle.read(10, 19))).equals(bytes.subarray(10, 20))).toBe(true)
  })

  it('resumes from the byte it reached when the source dies at byte N', async () => {
    const bytes = randomBytes(1024 * 1024)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    const cache = setup(new DyingSource(mem, 300_000, 2))
    const got = await collect((await cache.open(d)).stream)
    expect(got.equals(bytes)).toBe(true)
    expect(mem.opens).toEqual([0, 300_000, 300_000])
  })

  it('fails every reader, commits nothing and leaves no temp file when the source keeps dying', async () => {
    const bytes = randomBytes(512 * 1024)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    const cache = setup(new DyingSource(mem, 100_000, 100), { maxResumes: 2 })
    const readers = await Promise.all([cache.open(d), cache.open(d)])
    for (const r of readers) await expect(collect(r.stream)).rejects.toThrow(/connection reset/)
    expect(await store.stat(d)).toBeUndefined()
    await new Promise((r) => setTimeout(r, 50))
    expect(await readdir(join(dir, 'tmp'))).toEqual([])
  })

  it('keeps resuming a source that stalls again and again, as long as each attempt brings new bytes', async () => {
    const bytes = randomBytes(512 * 1024)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    const stalling = new StallingSource(mem, () => 100_000)
    const cache = setup(stalling, { maxResumes: 2, idleTimeoutMs: 100 })
    const got = await collect((await cache.open(d)).stream)
    expect(got.equals(bytes)).toBe(true)
    // Five stalls in a row, more than maxResumes, yet none of them without progress.
    expect(stalling.opens).toEqual([0, 100_000, 200_000, 300_000, 400_000, 500_000])
  })

  it('discards a fill whose bytes do not match and fails every reader with DigestMismatchError', async () => {
    const bytes = randomBytes(1024 * 1024)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    const cache = setup(new LyingSource(mem, 700_000))
    const readers = await Promise.all(Array.from({ length: 5 }, () => cache.open(d)))
    const outcomes = await Promise.allSettled(readers.map((r) => collect(r.stream)))
    for (const o of outcomes) {
      expect(o.status).toBe('rejected')
      expect((o as PromiseRejectedResult).reason).toBeInstanceOf(DigestMismatchError)
    }
    expect(await store.stat(d)).toBeUndefined()
    await new Promise((r) => setTimeout(r, 50))
    expect(await readdir(join(dir, 'tmp'))).toEqual([])
  })

  it('never hands a reader the final byte of a blob whose last byte is wrong', async () => {
    const bytes = randomBytes(100_000)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    const cache = setup(new LyingSource(mem, bytes.byteLength - 1))
    const { stream } = await cache.open(d)
    let received = 0
    stream.on('data', (c: Buffer) => (received += c.byteLength))
    await expect(new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject))).rejects.toBeInstanceOf(DigestMismatchError)
    expect(received).toBeLessThan(bytes.byteLength)
  })

  it('passes BlobUnknownError through when the source does not have the blob', async () => {
    const cache = setup(new MemorySource())
    await expect(cache.open(digestOf(Buffer.from('nobody has this')))).rejects.toBeInstanceOf(BlobUnknownError)
    expect(cache.inflight).toBe(0)
  })

  it('abandons a wait when the caller aborts, without aborting the shared fill', async () => {
    const bytes = randomBytes(256 * 1024)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    mem.chunkDelayMs = 5
    const cache = setup(mem)
    const other = cache.open(d)
    await expect(cache.acquire(d, { signal: AbortSignal.abort() })).rejects.toBeDefined()
    expect((await collect((await other).stream)).equals(bytes)).toBe(true)
  })
})

describe('CachingSource single flight', () => {
  it('does not fetch again for a reader whose store lookup missed a fill that committed meanwhile', async () => {
    const bytes = randomBytes(512 * 1024)
    const d = digestOf(bytes)
    const mem = new MemorySource()
    mem.add(d.value, bytes)
    // The second lookup answers "missing" only once the first fill has committed and left the map.
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    let lookups = 0
    const slowStore = new Proxy(store, {
      get(target, key) {
        if (key === 'stat') {
          return async (digest: Digest) => {
            const n = ++lookups
            const record = await target.stat(digest)
            if (n === 2) await held
            return record
          }
        }
        const value: unknown = Reflect.get(target, key, target)
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    })
    const cache = new CachingSource({}, { store: slowStore, source: mem, logger })
    const first = await cache.acquire(d)
    const second = cache.acquire(d)
    expect((await collect(await first.read(0, bytes.length - 1))).equals(bytes)).toBe(true)
    while (cache.inflight > 0) await new Promise((r) => setTimeout(r, 5))
    release()
    const late = await second
    expect((await collect(await late.read(0, bytes.length - 1))).equals(bytes)).toBe(true)
    expect(late.cached).toBe(true)
    expect(mem.opens).toEqual([0])
    expect(cache.inflight).toBe(0)
  })
})
