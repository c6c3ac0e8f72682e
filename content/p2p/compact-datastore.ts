import { BaseDatastore } from 'datastore-core/base'
import { Key, type Pair, type Query, type KeyQuery } from 'interface-datastore'
import { NotFoundError } from 'interface-store'
import { PollenError } from '../../protocol/errors.js'

interface AbortOptions {
  signal?: AbortSignal
}

/** Most entries held (kad-dht provider records, ~390 B of heap each once compact, measured: about 200 MB). */
export const DEFAULT_MAX_DATASTORE_ENTRIES = 500_000

/** A put of a new key into a full datastore (a peer flooding provider records, most likely). */
export class DatastoreFullError extends PollenError {
  constructor(max: number) {
    super('DatastoreFullError', 'UNAVAILABLE', `the in-memory DHT store holds its maximum of ${max} records`)
  }
}

/**
 * libp2p's in-memory datastore (kad-dht's provider records, the peer store), keeping a copy of
 * each value and at most `maxEntries` keys. kad-dht stores views into the buffer a message
 * arrived in, so with datastore-core's MemoryDatastore each provider record of a few dozen bytes
 * kept a whole 8 KiB read buffer alive: in a soak with content churn the seed grew by 7.5 MB in
 * 5 minutes, for records that live 48 h. A hostile peer's flood of records stops at the cap.
 */
export class CompactMemoryDatastore extends BaseDatastore {
  readonly #data = new Map<string, Uint8Array>()
  readonly #maxEntries: number

  constructor(maxEntries = DEFAULT_MAX_DATASTORE_ENTRIES) {
    super()
    this.#maxEntries = maxEntries
  }

  get size(): number {
    return this.#data.size
  }

  override put(key: Key, val: Uint8Array, options?: AbortOptions): Key {
    options?.signal?.throwIfAborted()
    const k = key.toString()
    if (this.#data.size >= this.#maxEntries && !this.#data.has(k)) throw new DatastoreFullError(this.#maxEntries)
    // A copy the size of the value, whatever buffer the view came from.
    this.#data.set(k, new Uint8Array(val))
    return key
  }

  override get(key: Key, options?: AbortOptions): Uint8Array {
    options?.signal?.throwIfAborted()
    const value = this.#data.get(key.toString())
    if (value === undefined) throw new NotFoundError()
    return value
  }

  override has(key: Key, options?: AbortOptions): boolean {
    options?.signal?.throwIfAborted()
    return this.#data.has(key.toString())
  }

  override delete(key: Key, options?: AbortOptions): void {
    options?.signal?.throwIfAborted()
    this.#data.delete(key.toString())
  }

  override *_all(_q: Query, options?: AbortOptions): Generator<Pair> {
    for (const [key, value] of this.#data) {
      options?.signal?.throwIfAborted()
      yield { key: new Key(key), value }
    }
  }

  override *_allKeys(_q: KeyQuery, options?: AbortOptions): Generator<Key> {
    for (const key of this.#data.keys()) {
      options?.signal?.throwIfAborted()
      yield new Key(key)
    }
  }
}
