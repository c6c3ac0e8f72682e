import { Level } from 'level'
import type { Logger } from 'pino'
import { StoreFullError } from '../protocol/errors.js'

/** Free space needed before a damaged index is reopened (LevelDB writes a table and a new log). */
const INDEX_REPAIR_ROOM_BYTES = 4 * 1024 * 1024

export interface StoreIndexComponents {
  logger: Logger
  /** Bytes free on the index's file system: a repair waits for INDEX_REPAIR_ROOM_BYTES. */
  freeBytes: () => Promise<number>
}

/**
 * The content store's LevelDB index (JSON values), and its repair after a failed write:
 * LevelDB keeps appending to a log that ends in a torn record and, on the next open, drops
 * everything written after it, so later records would be lost at the next restart. After a
 * write failed (the disk was full) the index is therefore closed and reopened before the next
 * write, once reads and writes in flight have finished; that recovers the log up to the tear
 * and starts a new one.
 */
export class StoreIndex {
  readonly #db: Level<string, unknown>
  readonly #c: StoreIndexComponents
  /** Set when a write failed: the log may end in a torn record. */
  #damaged = false
  /** Reads and writes in flight, and the repair that waits for them to finish. */
  #inflight = 0
  #idle: (() => void) | undefined
  #repairing: Promise<void> | undefined

  /** `location`: the index directory; call open() before use. */
  constructor(location: string, components: StoreIndexComponents) {
    this.#db = new Level<string, unknown>(location, { valueEncoding: 'json' })
    this.#c = components
  }

  async open(): Promise<void> {
    await this.#db.open()
  }

  async close(): Promise<void> {
    await this.#db.close()
  }

  /** The value under `key`, or undefined; waits for a repair in progress. */
  async get<T>(key: string): Promise<T | undefined> {
    return (await this.#read(() => this.#db.get(key))) as T | undefined
  }

  /** Throws StoreFullError when the disk has no room for the write (or for the repair before it). */
  async put(key: string, value: unknown): Promise<void> {
    await this.#write(() => this.#db.put(key, value))
  }

  /** Throws StoreFullError when the disk has no room for the write (or for the repair before it). */
  async del(key: string): Promise<void> {
    await this.#write(() => this.#db.del(key))
  }

  /** Every key starting with `prefix`, with its value, in key order. */
  async *entries<T>(prefix: string): AsyncGenerator<[string, T]> {
    for await (const [key, value] of this.#db.iterator({ gte: prefix, lt: `${prefix}\xff` })) yield [key, value as T]
  }

  async #read<T>(op: () => Promise<T>): Promise<T> {
    // A repair whose reopen failed (no room yet) left the index closed: try again first.
    if (this.#damaged && this.#db.status === 'closed') await this.#repair().catch(() => {})
    while (this.#repairing !== undefined) await this.#repairing.catch(() => {})
    this.#inflight++
    try {
      return await op()
    } finally {
      if (--this.#inflight === 0) this.#idle?.()
    }
  }

  async #write<T>(op: () => Promise<T>): Promise<T> {
    if (this.#damaged) await this.#repair()
    try {
      return await this.#read(op)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'LEVEL_IO_ERROR' || code === 'LEVEL_DATABASE_NOT_OPEN') {
        this.#damaged = true
        this.#c.logger.warn({ err: (err as Error).message }, 'content index write failed; the index is reopened before the next write')
        if (/no space|ENOSPC|EDQUOT|quota/i.test(String((err as Error).message))) throw new StoreFullError('the content store is out of disk space (index)', { cause: err })
      }
      throw err
    }
  }

  /** Waits for operations in flight, then closes and reopens the index (one repair at a time). */
  #repair(): Promise<void> {
    this.#repairing ??= (async () => {
      if ((await this.#c.freeBytes()) < INDEX_REPAIR_ROOM_BYTES) throw new StoreFullError('the content store is out of disk space (index repair)')
      if (this.#inflight > 0) await new Promise<void>((resolve) => (this.#idle = resolve))
      this.#idle = undefined
      await this.#db.close()
      await this.#db.open()
      this.#damaged = false
      this.#c.logger.info('content index reopened after a failed write')
    })().finally(() => {
      this.#repairing = undefined
    })
    return this.#repairing
  }
}
