import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { createReadStream, type ReadStream } from 'node:fs'
import { mkdir, open, readdir, type FileHandle, rename, rm, stat, statfs, unlink, access, constants as fsConstants } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import type { Logger } from 'pino'
import { parseDigest, type Digest } from '../protocol/digest.js'
import { DigestVerifier } from '../protocol/digest-verifier.js'
import { BlobUnknownError, StoreFullError } from '../protocol/errors.js'
import { ACCESS_WRITE_INTERVAL_MS, READ_CHUNK_BYTES } from './constants.js'

/** One blob's index record. */
export interface BlobRecord {
  size: number
  mediaType?: string
  /** Milliseconds since the epoch. */
  lastAccess: number
  /** `ns/name` of every repository the blob was seen in. */
  repositories: string[]
}

/** A committed blob's open file, pinned until closed; `close` may be called more than once. */
export interface BlobFile {
  handle: FileHandle
  close(): Promise<void>
  /**
   * For a blob still being filled: resolves with how many bytes from the start may be read
   * now, once that is more than `pos` (waiting for the fill as needed); rejects with the
   * fill's error. Absent: the whole file may be read.
   */
  available?(pos: number): Promise<number>
  /** For a blob still being filled: throws when bytes read so far are void (the fill failed or started over). */
  check?(): void
}

export interface StoreInit {
  /** The data directory; the store owns `blobs/`, `tmp/` and `index/` inside it. */
  dir: string
}

export interface StoreComponents {
  logger: Logger
  now?: () => number
}

export interface CommitMeta {
  mediaType?: string
  repository?: string
}

const KEY_PREFIX = 'blob:'
/** Free space needed before a damaged index is reopened (LevelDB writes a table and a new log). */
const INDEX_REPAIR_ROOM_BYTES = 4 * 1024 * 1024
const RECORD_PREFIX = 'record:'

/**
 * The content-addressed store: blob files named by digest under `blobs/<alg>/<xx>/<hex>`,
 * written to `tmp/` first and renamed into place only after their digest matches,
 * with a LevelDB index of size, media type, last access and repositories.
 * Emits `commit` after a blob is committed and `delete` after one is removed.
 */
export class ContentStore extends EventEmitter<{ commit: [Digest, BlobRecord]; delete: [Digest, BlobRecord] }> {
  readonly dir: string
  readonly #logger: Logger
  readonly #now: () => number
  readonly #db: Level<string, BlobRecord>
  readonly #pins = new Map<string, number>()
  readonly #lastAccessWrite = new Map<string, number>()
  /** Per blob, the tail of its record's queued read-modify-write steps (see #serial). */
  readonly #queues = new Map<string, Promise<unknown>>()
  #bytes = 0
  /** Set when an index write failed: LevelDB's log may end in a torn record, after which it loses later writes on reopen. */
  #indexDamaged = false
  /** Index reads and writes in flight, and the repair that waits for them to finish. */
  #inflight = 0
  #idle: (() => void) | undefined
  #repairing: Promise<void> | undefined

  private constructor(init: StoreInit, components: StoreComponents) {
    super()
    this.dir = init.dir
    this.#logger = components.logger
    this.#now = components.now ?? Date.now
    this.#db = new Level<string, BlobRecord>(join(init.dir, 'index'), { valueEncoding: 'json' })
  }

  /**
   * Opens (creating if needed) the store in `init.dir`. Removes temp leftovers and
   * reconciles the index with the files before returning.
   */
  static async open(init: StoreInit, components: StoreComponents): Promise<ContentStore> {
    await mkdir(join(init.dir, 'blobs'), { recursive: true })
    await mkdir(join(init.dir, 'tmp'), { recursive: true })
    const store = new ContentStore(init, components)
    await store.#db.open()
    await store.#reconcile()
    return store
  }

  async close(): Promise<void> {
    await this.#db.close()
  }

  /** Total bytes of committed blobs. */
  get bytes(): number {
    return this.#bytes
  }

  blobPath(digest: Digest): string {
    return join(this.dir, 'blobs', digest.algorithm, digest.hex.slice(0, 2), digest.hex)
  }

  /** A fresh temp file path for a fill of `digest`. */
  tempPath(digest: Digest): string {
    return join(this.dir, 'tmp', `${digest.hex.slice(0, 16)}.${randomBytes(6).toString('hex')}.part`)
  }

  /** Returns the blob's record, or undefined when the store does not hold it. */
  async stat(digest: Digest): Promise<BlobRecord | undefined> {
    return this.#read(() => this.#db.get(KEY_PREFIX + digest.value))
  }

  /**
   * Opens a committed blob for reading bytes [start, end] (inclusive; default the whole blob).
   * The blob is pinned against eviction until the stream closes.
   * Throws BlobUnknownError when the store does not hold it.
   */
  async createReadStream(digest: Digest, range?: { start: number; end: number }): Promise<ReadStream> {
    const path = this.blobPath(digest)
    const handle = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new BlobUnknownError(digest.value)
      throw err
    })
    const unpin = this.pin(digest)
    const stream = handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: READ_CHUNK_BYTES })
    stream.once('close', unpin)
    void this.touch(digest)
    return stream
  }

  /**
   * Opens a committed blob's file for positional reads (the zero-allocation serving path).
   * The blob is pinned against eviction until `close()`. Throws BlobUnknownError when the
   * store does not hold it.
   */
  async openFile(digest: Digest): Promise<BlobFile> {
    const handle = await open(this.blobPath(digest), 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new BlobUnknownError(digest.value)
      throw err
    })
    const unpin = this.pin(digest)
    void this.touch(digest)
    let closing: Promise<void> | undefined
    return {
      handle,
      close: () => (closing ??= handle.close().finally(unpin)),
    }
  }

  /** Marks a blob as in use, so that eviction skips it. Returns the release function. */
  pin(digest: Digest): () => void {
    const key = digest.value
    this.#pins.set(key, (this.#pins.get(key) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.#pins.get(key) ?? 1) - 1
      if (n <= 0) this.#pins.delete(key)
      else this.#pins.set(key, n)
    }
  }

  isPinned(digest: Digest): boolean {
    return this.#pins.has(digest.value)
  }

  /**
   * Moves a verified temp file into place and records it. The caller has verified the
   * content. Returns the stored record.
   */
  async commit(tempPath: string, digest: Digest, size: number, meta: CommitMeta = {}): Promise<BlobRecord> {
    return this.#serial(digest, async () => {
      const final = this.blobPath(digest)
      await mkdir(join(final, '..'), { recursive: true })
      await rename(tempPath, final)
      const existing = await this.stat(digest)
      const record: BlobRecord = {
        size,
        mediaType: meta.mediaType ?? existing?.mediaType,
        lastAccess: this.#now(),
        repositories: mergeRepositories(existing?.repositories, meta.repository),
      }
      try {
        await this.#write(() => this.#db.put(KEY_PREFIX + digest.value, record))
      } catch (err) {
        // Unrecorded, the file must not stay: the index and the files agree, and the fill fails.
        if (existing === undefined) await rm(final, { force: true })
        throw err
      }
      if (existing === undefined) this.#bytes += size
      this.emit('commit', digest, record)
      return record
    })
  }

  /**
   * Writes small content held in memory (a manifest) through a temp file, verifying it first.
   * Throws DigestMismatchError when `bytes` does not hash to `digest`.
   */
  async putBuffer(digest: Digest, bytes: Uint8Array, meta: CommitMeta = {}): Promise<BlobRecord> {
    const verifier = new DigestVerifier(digest, bytes.byteLength)
    verifier.update(bytes)
    verifier.verify()
    if ((await this.stat(digest)) !== undefined) {
      const kept = await this.#serial(digest, async () => {
        const existing = await this.stat(digest)
        return existing === undefined ? undefined : this.#remember(digest, existing, meta)
      })
      // Deleted meanwhile: store it afresh.
      if (kept !== undefined) return kept
    }
    const temp = this.tempPath(digest)
    const handle = await open(temp, 'wx')
    try {
      await handle.writeFile(bytes)
      await handle.sync()
    } catch (err) {
      await handle.close().catch(() => {})
      await unlink(temp).catch(() => {})
      throw asStoreError(err)
    }
    await handle.close()
    return this.commit(temp, digest, bytes.byteLength, meta)
  }

  /** Records that a blob was seen in `repository` (and updates its media type if given). */
  async remember(digest: Digest, meta: CommitMeta): Promise<void> {
    await this.#serial(digest, async () => {
      const existing = await this.stat(digest)
      if (existing !== undefined) await this.#remember(digest, existing, meta)
    })
  }

  /** Call inside #serial for `digest`. */
  async #remember(digest: Digest, existing: BlobRecord, meta: CommitMeta): Promise<BlobRecord> {
    const repositories = mergeRepositories(existing.repositories, meta.repository)
    const mediaType = meta.mediaType ?? existing.mediaType
    if (repositories.length === existing.repositories.length && mediaType === existing.mediaType) return existing
    const record = { ...existing, repositories, mediaType }
    await this.#write(() => this.#db.put(KEY_PREFIX + digest.value, record))
    return record
  }

  /** Updates a blob's last access, at most once a minute per blob. */
  async touch(digest: Digest): Promise<void> {
    const now = this.#now()
    const last = this.#lastAccessWrite.get(digest.value) ?? 0
    if (now - last < ACCESS_WRITE_INTERVAL_MS) return
    this.#lastAccessWrite.set(digest.value, now)
    await this.#serial(digest, async () => {
      const existing = await this.stat(digest)
      if (existing !== undefined) await this.#write(() => this.#db.put(KEY_PREFIX + digest.value, { ...existing, lastAccess: now }))
    }).catch(() => {})
  }

  /** Removes a blob (index first, then file). Returns false when it is pinned or absent. */
  async delete(digest: Digest): Promise<boolean> {
    return this.#serial(digest, async () => {
      if (this.isPinned(digest)) return false
      const existing = await this.stat(digest)
      if (existing === undefined) return false
      await this.#write(() => this.#db.del(KEY_PREFIX + digest.value))
      this.#bytes -= existing.size
      this.#lastAccessWrite.delete(digest.value)
      await rm(this.blobPath(digest), { force: true })
      this.emit('delete', digest, existing)
      return true
    })
  }

  /**
   * Runs `fn` once every earlier step queued for the same blob has settled, and returns its
   * result. Commit, delete and the record updates (last access, repositories) each read the
   * record and then write it or the file: one at a time per blob, so that an update that read
   * the record before a delete cannot write it back after (a record without its file), nor a
   * delete remove the file of a commit that came in between.
   */
  #serial<T>(digest: Digest, fn: () => Promise<T>): Promise<T> {
    const key = digest.value
    const run = (this.#queues.get(key) ?? Promise.resolve()).then(fn)
    const tail = run.then(
      () => {},
      () => {},
    )
    this.#queues.set(key, tail)
    void tail.then(() => {
      if (this.#queues.get(key) === tail) this.#queues.delete(key)
    })
    return run
  }

  /** Every committed blob with its record, in digest order. */
  async *entries(): AsyncGenerator<[Digest, BlobRecord]> {
    for await (const [key, record] of this.#db.iterator({ gte: KEY_PREFIX, lt: `${KEY_PREFIX}\xff` })) {
      yield [parseDigest(key.slice(KEY_PREFIX.length)), record]
    }
  }

  /** A small JSON record kept beside the index (tag answers), or undefined. */
  async getRecord<T>(key: string): Promise<T | undefined> {
    return (await this.#read(() => this.#db.get(RECORD_PREFIX + key))) as T | undefined
  }

  /** Stores a small JSON record beside the index; survives restarts. */
  async putRecord(key: string, value: unknown): Promise<void> {
    await this.#write(() => this.#db.put(RECORD_PREFIX + key, value as BlobRecord))
  }

  /** Runs an index read, after a repair in progress. */
  async #read<T>(op: () => Promise<T>): Promise<T> {
    // A repair whose reopen failed (no room yet) left the index closed: try again first.
    if (this.#indexDamaged && this.#db.status === 'closed') await this.#repairIndex().catch(() => {})
    while (this.#repairing !== undefined) await this.#repairing.catch(() => {})
    this.#inflight++
    try {
      return await op()
    } finally {
      if (--this.#inflight === 0) this.#idle?.()
    }
  }

  /**
   * Runs an index write. After a write failed (the disk was full), the index is first reopened:
   * LevelDB keeps appending to a log that ends in a torn record and, on the next open, drops
   * everything written after it, so later records would be lost at the next restart. Reopening
   * right away recovers the log up to the tear and starts a new one. Throws StoreFullError
   * while the disk has no room for that, and for a write that fails for lack of space.
   */
  async #write<T>(op: () => Promise<T>): Promise<T> {
    if (this.#indexDamaged) await this.#repairIndex()
    try {
      return await this.#read(op)
    } catch (err) {
      if ((err as { code?: string }).code === 'LEVEL_IO_ERROR' || (err as { code?: string }).code === 'LEVEL_DATABASE_NOT_OPEN') {
        this.#indexDamaged = true
        this.#logger.warn({ err: (err as Error).message }, 'content index write failed; the index is reopened before the next write')
        if (/no space|ENOSPC|EDQUOT|quota/i.test(String((err as Error).message))) throw new StoreFullError('the content store is out of disk space (index)', { cause: err })
      }
      throw err
    }
  }

  /** Waits for index operations in flight, then closes and reopens the index (one repair at a time). */
  #repairIndex(): Promise<void> {
    this.#repairing ??= (async () => {
      if ((await this.freeBytes()) < INDEX_REPAIR_ROOM_BYTES) throw new StoreFullError('the content store is out of disk space (index repair)')
      if (this.#inflight > 0) await new Promise<void>((resolve) => (this.#idle = resolve))
      this.#idle = undefined
      await this.#db.close()
      await this.#db.open()
      this.#indexDamaged = false
      this.#logger.info('content index reopened after a failed write')
    })().finally(() => {
      this.#repairing = undefined
    })
    return this.#repairing
  }

  /** Bytes the store's file system has free for it (an unprivileged process's view). */
  async freeBytes(): Promise<number> {
    const fs = await statfs(join(this.dir, 'tmp'))
    return fs.bavail * fs.bsize
  }

  /**
   * Resolves when the file system has room for `bytes` more beyond `reserved` (bytes other
   * fills still have to write); throws StoreFullError otherwise.
   */
  async ensureRoom(bytes: number, reserved = 0): Promise<void> {
    const free = await this.freeBytes()
    if (free - reserved < bytes) {
      throw new StoreFullError(`the content store is out of disk space: ${bytes} bytes needed, ${free} free, ${reserved} of them promised to fills in progress`)
    }
  }

  /** Resolves when the data directory is writable; rejects otherwise. */
  async checkWritable(): Promise<void> {
    await access(join(this.dir, 'tmp'), fsConstants.W_OK)
  }

  /**
   * Start-up repair: deletes temp leftovers, drops index records whose file is missing or
   * has the wrong size, and adopts (after re-hashing) or deletes files the index lacks.
   */
  async #reconcile(): Promise<void> {
    const tmp = join(this.dir, 'tmp')
    for (const name of await readdir(tmp)) await rm(join(tmp, name), { force: true, recursive: true })
    const indexed = new Set<string>()
    let dropped = 0
    for await (const [digest, record] of this.entries()) {
      const st = await stat(this.blobPath(digest)).catch(() => undefined)
      if (st === undefined || st.size !== record.size) {
        await this.#db.del(KEY_PREFIX + digest.value)
        await rm(this.blobPath(digest), { force: true })
        dropped++
        continue
      }
      indexed.add(digest.value)
      this.#bytes += record.size
    }
    let adopted = 0
    let removed = 0
    for (const algorithm of await readdir(join(this.dir, 'blobs'))) {
      for (const shard of await readdir(join(this.dir, 'blobs', algorithm)).catch(() => [] as string[])) {
        for (const hex of await readdir(join(this.dir, 'blobs', algorithm, shard)).catch(() => [] as string[])) {
          const path = join(this.dir, 'blobs', algorithm, shard, hex)
          if (indexed.has(`${algorithm}:${hex}`)) continue
          const digest = tryDigest(`${algorithm}:${hex}`)
          if (digest !== undefined && shard === hex.slice(0, 2) && (await hashMatches(path, digest))) {
            const size = (await stat(path)).size
            await this.#db.put(KEY_PREFIX + digest.value, { size, lastAccess: this.#now(), repositories: [] })
            this.#bytes += size
            adopted++
          } else {
            await rm(path, { force: true, recursive: true })
            removed++
          }
        }
      }
    }
    if (dropped + adopted + removed > 0) this.#logger.warn({ dropped, adopted, removed }, 'reconciled content index with files')
  }
}

function mergeRepositories(existing: string[] | undefined, repository: string | undefined): string[] {
  const list = existing ?? []
  if (repository === undefined || list.includes(repository)) return list
  return [...list, repository]
}

function tryDigest(value: string): Digest | undefined {
  try {
    return parseDigest(value)
  } catch {
    return undefined
  }
}

async function hashMatches(path: string, digest: Digest): Promise<boolean> {
  const verifier = new DigestVerifier(digest)
  try {
    for await (const chunk of createReadStream(path)) verifier.update(chunk as Buffer)
    verifier.verify()
    return true
  } catch {
    return false
  }
}

/** Maps a disk-full error to StoreFullError; returns other errors unchanged. */
export function asStoreError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StoreFullError('the content store is out of disk space', { cause: err })
  return err
}
