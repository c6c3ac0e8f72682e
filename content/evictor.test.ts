import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseDigest, type Digest } from '../protocol/digest.js'
import { Evictor } from './evictor.js'
import { ContentStore } from './store.js'

const logger = pino({ level: 'silent' })
let dir: string
let store: ContentStore
let now = 0

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-evict-'))
  now = 1000
  store = await ContentStore.open({ dir }, { logger, now: () => now })
})
afterEach(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

async function put(size: number): Promise<Digest> {
  const bytes = randomBytes(size)
  const d = parseDigest(`sha256:${createHash('sha256').update(bytes).digest('hex')}`)
  now += 1000
  await store.putBuffer(d, bytes)
  return d
}

describe('Evictor', () => {
  it('evicts least recently used blobs from the high watermark down to the low one', async () => {
    const evicted: string[] = []
    const evictor = new Evictor({ maxBytes: 1000 }, { store, logger, onEvict: (d) => evicted.push(d.value) })
    const a = await put(300)
    const b = await put(300)
    await evictor.check()
    expect(evicted).toEqual([])
    const c = await put(300)
    await evictor.check()
    expect(evicted).toEqual([a.value])
    expect(store.bytes).toBe(600)
    expect(await store.stat(b)).toBeDefined()
    expect(await store.stat(c)).toBeDefined()
    expect(await stat(store.blobPath(a)).catch(() => undefined)).toBeUndefined()
  })

  it('never evicts a blob that is being read, and evicts it once the reader is done', async () => {
    const evictor = new Evictor({ maxBytes: 1000 }, { store, logger })
    const detach = evictor.attach()
    const a = await put(300)
    const b = await put(300)
    const reading = await store.createReadStream(a)
    const c = await put(300)
    await evictor.check()
    expect(await store.stat(a)).toBeDefined()
    expect(await store.stat(b)).toBeUndefined()
    const chunks: Buffer[] = []
    for await (const chunk of reading) chunks.push(chunk as Buffer)
    expect(Buffer.concat(chunks).byteLength).toBe(300)
    await new Promise((r) => setImmediate(r))
    await put(300)
    await evictor.check()
    expect(await store.stat(a)).toBeUndefined()
    expect(await store.stat(c)).toBeDefined()
    detach()
  })

  it('stops between deletes when stopped mid-pass, and the stop resolves only once that pass has ended (so the store can close)', async () => {
    const blobs: Digest[] = []
    for (let i = 0; i < 10; i++) blobs.push(await put(100))
    let stopping: Promise<void> | undefined
    const evicted: string[] = []
    const evictor = new Evictor(
      { maxBytes: 1000, lowWatermark: 0.1 },
      { store, logger, onEvict: (d) => void (evicted.push(d.value), (stopping ??= stop())) },
    )
    const stop = evictor.attach()
    await evictor.check()
    await stopping
    // The pass would have gone down to 100 bytes; it stopped after the delete it was in.
    expect(evicted).toEqual([blobs[0]!.value])
    expect(store.bytes).toBe(900)
    await put(500)
    await evictor.check()
    expect(evicted).toHaveLength(1)
  })

  it('honours custom watermarks', async () => {
    const evictor = new Evictor({ maxBytes: 1000, highWatermark: 0.5, lowWatermark: 0.2 }, { store, logger })
    await put(300)
    await put(300)
    await evictor.check()
    expect(store.bytes).toBe(0)
  })
})
