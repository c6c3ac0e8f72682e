import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { ReadStream } from 'node:fs'
import { mkdir, open, type FileHandle, rename, rm, statfs, unlink, access, constants as fsConstants } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { parseDigest, type Digest } from '../protocol/digest.js'
import { DigestVerifier } from '../protocol/digest-verifier.js'
import { BlobUnknownError, StoreFullError } from '../protocol/errors.js'
import { ACCESS_WRITE_INTERVAL_MS, READ_CHUNK_BYTES } from './constants.js'
import { StoreIndex } from './store-index.js'
import { reconcileStore } from './store-reconcile.js'

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
  readonly #index: StoreIndex
  readonly #pins = new Map<string, number>()
  readonly #lastAccessWrite = new Map<string, number>()
  /** Per blob, the tail of its record's queued read-modify-write steps (see #serial). */
  readonly #queues = new Map<string, Promise<unknown>>()
  #bytes = 0

  private constructor(init: StoreInit, components: StoreComponents) {
    super()
    this.dir = init.dir
    this.#logger = components.logger
    this.#now = components.now ?? Date.now
    this.#index = new StoreIndex(join(init.dir, 'index'), { logger: components.logger, freeBytes: () => this.freeBytes() })
  }

  /**
   * Opens (creating if needed) the store in `init.dir`. Removes temp leftovers and
   * reconciles the index with the files before returning.
   */
  static async open(init: StoreInit, components: StoreComponents): Promise<ContentStore> {
    await mkdir(join(init.dir, 'blobs'), { recursive: true })
    await mkdir(join(init.dir, 'tmp'), { recursive: true })
    const store = new ContentStore(init, components)
    await store.#index.open()
    const { bytes, dropped, adopted, removed } = await reconcileStore({
      dir: init.dir,
      blobPath: (digest) => store.blobPath(digest),
      records: () => store.entries(),
      forget: (digest) => store.#index.del(KEY_PREFIX + digest.value),
      adopt: (digest, size) => store.#index.put(KEY_PREFIX + digest.value, { size, lastAccess: store.#now(), repositories: [] } satisfies BlobRecord),
    })
    store.#bytes = bytes
    if (dropped + adopted + removed > 0) store.#logger.warn({ dropped, adopted, removed }, 'reconciled content index with files')
    return store
  }

  async close(): Promise<void> {
    await this.#index.close()
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
    return this.#index.get<BlobRecord>(KEY_PREFIX + digest.value)
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
        await this.#index.put(KEY_PREFIX + digest.value, record)
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
    await this.#index.put(KEY_PREFIX + digest.value, record)
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
      if (existing !== undefined) await this.#index.put(KEY_PREFIX + digest.value, { ...existing, lastAccess: now })
    }).catch(() => {})
  }

  /** Removes a blob (index first, then file). Returns false when it is pinned or absent. */
  async delete(digest: Digest): Promise<boolean> {
    return this.#serial(digest, async () => {
      if (this.isPinned(digest)) return false
      const existing = await this.stat(digest)
      if (existing === undefined) return false
      await this.#index.del(KEY_PREFIX + digest.value)
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
    for await (const [key, record] of this.#index.entries<BlobRecord>(KEY_PREFIX)) yield [parseDigest(key.slice(KEY_PREFIX.length)), record]
  }

  /** A small JSON record kept beside the index (tag answers), or undefined. */
  async getRecord<T>(key: string): Promise<T | undefined> {
    return this.#index.get<T>(RECORD_PREFIX + key)
  }

  /** Stores a small JSON record beside the index; survives restarts. */
  async putRecord(key: string, value: unknown): Promise<void> {
    await this.#index.put(RECORD_PREFIX + key, value)
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
}

function mergeRepositories(existing: string[] | undefined, repository: string | undefined): string[] {
  const list = existing ?? []
  if (repository === undefined || list.includes(repository)) return list
  return [...list, repository]
}

/** Maps a disk-full error to StoreFullError; returns other errors unchanged. */
export function asStoreError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StoreFullError('the content store is out of disk space', { cause: err })
  return err
}
