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
 *
 * Keys are grouped by their parent (`/dht/provider/<cid>` for the providers of one CID), so a
 * prefix query, which kad-dht makes for every provider lookup it answers, visits the matching
 * groups only. A flat map made each lookup build a Key for every record held: with a few
 * thousand records that was a tenth of everything the seed allocated in a soak, and it grows
 * with the store.
 */
export class CompactMemoryDatastore extends BaseDatastore {
  /** Parent path → (key → value). */
  readonly #groups = new Map<string, Map<string, Uint8Array>>()
  readonly #maxEntries: number
  #size = 0

  constructor(maxEntries = DEFAULT_MAX_DATASTORE_ENTRIES) {
    super()
    this.#maxEntries = maxEntries
  }

  get size(): number {
    return this.#size
  }

  override put(key: Key, val: Uint8Array, options?: AbortOptions): Key {
    options?.signal?.throwIfAborted()
    const k = key.toString()
    const parent = parentOf(k)
    let group = this.#groups.get(parent)
    const isNew = group === undefined || !group.has(k)
    if (isNew && this.#size >= this.#maxEntries) throw new DatastoreFullError(this.#maxEntries)
    if (group === undefined) this.#groups.set(parent, (group = new Map()))
    // A copy the size of the value, whatever buffer the view came from.
    group.set(k, new Uint8Array(val))
    if (isNew) this.#size++
    return key
  }

  override get(key: Key, options?: AbortOptions): Uint8Array {
    options?.signal?.throwIfAborted()
    const k = key.toString()
    const value = this.#groups.get(parentOf(k))?.get(k)
    if (value === undefined) throw new NotFoundError()
    return value
  }

  override has(key: Key, options?: AbortOptions): boolean {
    options?.signal?.throwIfAborted()
    const k = key.toString()
    return this.#groups.get(parentOf(k))?.has(k) ?? false
  }

  override delete(key: Key, options?: AbortOptions): void {
    options?.signal?.throwIfAborted()
    const k = key.toString()
    const parent = parentOf(k)
    const group = this.#groups.get(parent)
    if (group === undefined || !group.delete(k)) return
    this.#size--
    if (group.size === 0) this.#groups.delete(parent)
  }

  override *_all(q: Query, options?: AbortOptions): Generator<Pair> {
    for (const [key, value] of this.#matching(q.prefix)) {
      options?.signal?.throwIfAborted()
      yield { key: new Key(key), value }
    }
  }

  override *_allKeys(q: KeyQuery, options?: AbortOptions): Generator<Key> {
    for (const [key] of this.#matching(q.prefix)) {
      options?.signal?.throwIfAborted()
      yield new Key(key)
    }
  }

  /** Entries whose key starts with `prefix` (all without one), looking only into groups that can hold such keys. */
  *#matching(prefix: string | undefined): Generator<[string, Uint8Array]> {
    for (const [parent, group] of this.#groups) {
      const dir = parent === '/' ? '/' : `${parent}/`
      if (prefix === undefined || dir.startsWith(prefix)) yield* group
      else if (prefix.startsWith(dir)) {
        for (const entry of group) if (entry[0].startsWith(prefix)) yield entry
      }
    }
  }
}

/** `/a/b` of `/a/b/c`; `/` of `/c`. */
function parentOf(key: string): string {
  const i = key.lastIndexOf('/')
  return i <= 0 ? '/' : key.slice(0, i)
}
