import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseDigest } from '../protocol/digest.js'
import { BlobUnknownError, DigestMismatchError, StoreFullError } from '../protocol/errors.js'
import { ContentStore } from './store.js'

const logger = pino({ level: 'silent' })
const digestOf = (b: Buffer) => parseDigest(`sha256:${createHash('sha256').update(b).digest('hex')}`)

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-store-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function streamToBuffer(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of s) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

describe('ContentStore', () => {
  it('stores verified content under its digest and reads ranges back', async () => {
    const store = await ContentStore.open({ dir }, { logger })
    const bytes = randomBytes(1000)
    const d = digestOf(bytes)
    await store.putBuffer(d, bytes, { mediaType: 'application/x-test', repository: 'ghcr.io/a/b' })
    expect((await readFile(store.blobPath(d))).equals(bytes)).toBe(true)
    expect(await store.stat(d)).toMatchObject({ size: 1000, mediaType: 'application/x-test', repositories: ['ghcr.io/a/b'] })
    expect(await streamToBuffer(await store.createReadStream(d, { start: 10, end: 19 }))).toEqual(bytes.subarray(10, 20))
    expect(store.bytes).toBe(1000)
    await store.close()
  })

  it('refuses content that does not match its digest and leaves nothing behind', async () => {
    const store = await ContentStore.open({ dir }, { logger })
    const d = digestOf(Buffer.from('right'))
    await expect(store.putBuffer(d, Buffer.from('wrong'))).rejects.toBeInstanceOf(DigestMismatchError)
    expect(await store.stat(d)).toBeUndefined()
    expect(await readdir(join(dir, 'tmp'))).toEqual([])
    await store.close()
  })

  it('throws BlobUnknownError when reading a blob it does not hold', async () => {
    const store = await ContentStore.open({ dir }, { logger })
    await expect(store.createReadStream(digestOf(Buffer.from('x')))).rejects.toBeInstanceOf(BlobUnknownError)
    await store.close()
  })

  it('records every repository a blob was seen in, once each', async () => {
    const store = await ContentStore.open({ dir }, { logger })
    const bytes = Buffer.from('shared layer')
    const d = digestOf(bytes)
    await store.putBuffer(d, bytes, { repository: 'docker.io/library/a' })
    await store.putBuffer(d, bytes, { repository: 'docker.io/library/b' })
    await store.remember(d, { repository: 'docker.io/library/a' })
    expect((await store.stat(d))?.repositories).toEqual(['docker.io/library/a', 'docker.io/library/b'])
    await store.close()
  })

  it('does not delete a pinned blob', async () => {
    const store = await ContentStore.open({ dir }, { logger })
    const bytes = Buffer.from('pinned')
    const d = digestOf(bytes)
    await store.putBuffer(d, bytes)
    const unpin = store.pin(d)
    expect(await store.delete(d)).toBe(false)
    unpin()
    expect(await store.delete(d)).toBe(true)
    expect(store.bytes).toBe(0)
    await store.close()
  })

  it('on start-up removes temp leftovers and reconciles the index with the files', async () => {
    const store = await ContentStore.open({ dir }, { logger })
    const kept = Buffer.from('kept')
    const lost = Buffer.from('file deleted behind the index')
    const truncated = Buffer.from('file truncated behind the index')
    for (const b of [kept, lost, truncated]) await store.putBuffer(digestOf(b), b)
    await store.close()

    await rm(store.blobPath(digestOf(lost)))
    await writeFile(store.blobPath(digestOf(truncated)), 'short')
    await writeFile(join(dir, 'tmp', 'abc.part'), 'half a fill')
    const orphan = Buffer.from('committed but not indexed before a crash')
    const orphanPath = store.blobPath(digestOf(orphan))
    await mkdir(dirname(orphanPath), { recursive: true })
    await writeFile(orphanPath, orphan)
    const corrupt = Buffer.from('a file that lies about its name')
    const corruptPath = store.blobPath(digestOf(Buffer.from('something else')))
    await mkdir(dirname(corruptPath), { recursive: true })
    await writeFile(corruptPath, corrupt)

    const reopened = await ContentStore.open({ dir }, { logger })
    expect(await readdir(join(dir, 'tmp'))).toEqual([])
    expect(await reopened.stat(digestOf(kept))).toBeDefined()
    expect(await reopened.stat(digestOf(lost))).toBeUndefined()
    expect(await reopened.stat(digestOf(truncated))).toBeUndefined()
    expect(await stat(store.blobPath(digestOf(truncated))).catch(() => undefined)).toBeUndefined()
    expect(await reopened.stat(digestOf(orphan))).toMatchObject({ size: orphan.byteLength })
    expect(await stat(corruptPath).catch(() => undefined)).toBeUndefined()
    expect(reopened.bytes).toBe(kept.byteLength + orphan.byteLength)
    await reopened.close()
  })

  it('says whether the disk has room for a blob beside what other fills still have to write', async () => {
    const store = await ContentStore.open({ dir }, { logger })
    const free = await store.freeBytes()
    expect(free).toBeGreaterThan(0)
    await store.ensureRoom(1)
    await expect(store.ensureRoom(free + 1024 * 1024 * 1024)).rejects.toThrow(StoreFullError)
    await expect(store.ensureRoom(1, free + 1024 * 1024 * 1024)).rejects.toMatchObject({ name: 'StoreFullError', ociCode: 'UNAVAILABLE' })
    await store.close()
  })
  it('keeps no record of a blob it deleted while a last-access or repository update of it was under way', async () => {
    let clock = 0
    const store = await ContentStore.open({ dir }, { logger, now: () => (clock += 120_000) })
    const leftovers: string[] = []
    for (let i = 0; i < 20; i++) {
      const bytes = randomBytes(100 + i)
      const d = digestOf(bytes)
      await store.putBuffer(d, bytes)
      // Each update reads the record, then writes it back: a delete in between must not be undone.
      const deleted = store.delete(d)
      const updates = [store.touch(d), store.remember(d, { repository: 'docker.io/a/b' })]
      expect(await deleted).toBe(true)
      await Promise.all(updates)
      const file = await stat(store.blobPath(d)).catch(() => undefined)
      if ((await store.stat(d)) !== undefined || file !== undefined) leftovers.push(d.value)
    }
    expect(leftovers).toEqual([])
    expect(store.bytes).toBe(0)
    await store.close()
  })
})
