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
})
