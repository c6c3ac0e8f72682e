import fc from 'fast-check'
import { Key } from 'interface-datastore'
import { describe, expect, it } from 'vitest'
import { CompactMemoryDatastore, DatastoreFullError } from './compact-datastore.js'

describe('CompactMemoryDatastore', () => {
  it('keeps a copy of each value sized to it, not the network buffer the value was a view into', async () => {
    const store = new CompactMemoryDatastore()
    const frame = new Uint8Array(8192).fill(7)
    const record = frame.subarray(100, 140)
    await store.put(new Key('/dht/provider/a/b'), record)
    frame.fill(9)
    const kept = await store.get(new Key('/dht/provider/a/b'))
    expect(kept.byteLength).toBe(40)
    expect(kept.buffer.byteLength).toBe(40)
    expect([...kept].every((b) => b === 7)).toBe(true)
  })

  it('copies a Buffer value without the deprecated Buffer constructor', async () => {
    const store = new CompactMemoryDatastore()
    const value = Buffer.alloc(4096, 1).subarray(0, 16)
    await store.put(new Key('/k'), value)
    expect((await store.get(new Key('/k'))).buffer.byteLength).toBe(16)
  })

  it('refuses new keys past its maximum but still updates the keys it holds', async () => {
    const store = new CompactMemoryDatastore(2)
    await store.put(new Key('/a'), new Uint8Array([1]))
    await store.put(new Key('/b'), new Uint8Array([2]))
    await expect(async () => store.put(new Key('/c'), new Uint8Array([3]))).rejects.toBeInstanceOf(DatastoreFullError)
    await store.put(new Key('/a'), new Uint8Array([4]))
    expect([...(await store.get(new Key('/a')))]).toEqual([4])
    await store.delete(new Key('/b'))
    await store.put(new Key('/c'), new Uint8Array([3]))
    expect(await store.has(new Key('/c'))).toBe(true)
  })

  it('answers prefix queries exactly as a scan of every key would, for generated keys and prefixes', async () => {
    const segment = fc.constantFrom('dht', 'provider', 'peers', 'a', 'ab', 'b', 'CIQ', 'CIQA', 'x1')
    const key = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join('/')}`)
    // Prefixes that end at a segment, inside one, or with a slash.
    const prefix = fc.tuple(key, fc.nat(6), fc.boolean()).map(([k, cut, slash]) => (slash ? `${k}/` : k.slice(0, Math.max(1, k.length - cut))))
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(key, { maxLength: 30 }), fc.array(key, { maxLength: 5 }), prefix, async (keys, deleted, p) => {
        const store = new CompactMemoryDatastore()
        for (const [i, k] of keys.entries()) await store.put(new Key(k), new Uint8Array([i]))
        for (const k of deleted) await store.delete(new Key(k))
        const held = keys.filter((k) => !deleted.includes(new Key(k).toString())).map((k) => new Key(k).toString())
        expect(store.size).toBe(held.length)
        const want = held.filter((k) => k.startsWith(p)).sort()
        const got: string[] = []
        for await (const e of store.query({ prefix: p })) got.push(e.key.toString())
        expect(got.sort()).toEqual(want)
        const gotKeys: string[] = []
        for await (const k of store.queryKeys({ prefix: p })) gotKeys.push(k.toString())
        expect(gotKeys.sort()).toEqual(want)
        const all: string[] = []
        for await (const e of store.query({})) all.push(e.key.toString())
        expect(all.sort()).toEqual([...held].sort())
      }),
      { numRuns: 300 },
    )
  })

  it('counts and caps keys across groups, and forgets a group once its last key is deleted', async () => {
    const store = new CompactMemoryDatastore(3)
    await store.put(new Key('/dht/provider/c1/p1'), new Uint8Array([1]))
    await store.put(new Key('/dht/provider/c1/p2'), new Uint8Array([2]))
    await store.put(new Key('/dht/provider/c2/p1'), new Uint8Array([3]))
    await expect(async () => store.put(new Key('/dht/provider/c3/p1'), new Uint8Array([4]))).rejects.toBeInstanceOf(DatastoreFullError)
    await store.delete(new Key('/dht/provider/c2/p1'))
    await store.delete(new Key('/dht/provider/c2/p1'))
    expect(store.size).toBe(2)
    expect(await store.has(new Key('/dht/provider/c2/p1'))).toBe(false)
    await store.put(new Key('/dht/provider/c3/p1'), new Uint8Array([4]))
    const c1: string[] = []
    for await (const e of store.query({ prefix: '/dht/provider/c1' })) c1.push(e.key.toString())
    expect(c1.sort()).toEqual(['/dht/provider/c1/p1', '/dht/provider/c1/p2'])
  })
})
