import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { Digest } from '../protocol/digest.js'
import { repositoryKey } from '../protocol/reference.js'
import { raceAbort } from './abort.js'
import type { BlobInfo, BlobSource, OpenOptions, OpenedBlob } from './blob-source.js'
import { Fill } from './fill.js'
import type { BlobFile, BlobRecord, ContentStore } from './store.js'

export interface CachingSourceInit {
  maxResumes?: number
  idleTimeoutMs?: number
  /** Fills of blobs at least this large hash on a worker thread (see FillInit). */
  offThreadHashBytes?: number
}

export interface CachingSourceComponents {
  store: ContentStore
  /** Where missing blobs come from (the upstream, the seed, or a chain of peers and seed). */
  source: BlobSource
  logger: Logger
  /** Called once per fill when it settles; for metrics. */
  onFillSettled?: (outcome: 'committed' | 'failed', error: Error | undefined, digest: Digest) => void
  /** Called with the source's name each time its bytes failed verification. */
  onMismatch?: (source: string) => void
}

/** An acquired blob: its size is known, and any byte range of it can be read. */
export interface BlobHandle extends BlobInfo {
  /** True when the blob was already committed locally (a cache hit). */
  cached: boolean
  /** For a fill: the name of the source its first bytes came from. */
  source?: string
  /** Bytes [start, end] inclusive. Fails with the fill's error if the fill fails. */
  read(start: number, end: number): Promise<Readable>
  /** For a committed blob: its file, for positional reads without a stream (see ContentStore.openFile). */
  openFile?(): Promise<BlobFile>
}

/**
 * The read-through cache: serves committed blobs from the store, and otherwise joins or
 * starts the one fill of that digest (single-flight per instance), so N concurrent readers
 * of a missing blob cause one fetch from the source.
 */
export class CachingSource implements BlobSource {
  readonly name = 'cache'
  readonly #init: CachingSourceInit
  readonly #c: CachingSourceComponents
  readonly #fills = new Map<string, Fill>()
  /** Fills committed so far: a lookup that missed the store while this moved may have missed a fresh commit. */
  #commits = 0

  constructor(init: CachingSourceInit, components: CachingSourceComponents) {
    this.#init = init
    this.#c = components
  }

  /** Fills in progress. */
  get inflight(): number {
    return this.#fills.size
  }

  /** The fill in progress for `digest`, if any (peers may read it as it grows). */
  fillOf(digest: Digest): Fill | undefined {
    return this.#fills.get(digest.value)
  }

  async stat(digest: Digest, options?: OpenOptions): Promise<BlobInfo> {
    const record = await this.#c.store.stat(digest)
    if (record !== undefined) return { digest: digest.value, size: record.size, mediaType: record.mediaType }
    const fill = this.#fills.get(digest.value)
    if (fill !== undefined) return fill.ready
    return this.#c.source.stat(digest, options)
  }

  /**
   * Returns a handle on the blob once its size is known: from the store, or from the (new
   * or joined) fill. Throws the source's error (BlobUnknownError, …) when the fill cannot
   * start. Aborting `options.signal` abandons the wait, never the shared fill.
   */
  async acquire(digest: Digest, options: OpenOptions = {}): Promise<BlobHandle> {
    const { store } = this.#c
    const found = await this.#lookup(digest, options)
    if ('record' in found) {
      const { record } = found
      if (options.repository !== undefined) void store.remember(digest, { repository: repositoryKey(options.repository) }).catch(() => {})
      return {
        digest: digest.value,
        size: record.size,
        mediaType: record.mediaType,
        cached: true,
        read: (start, end) => store.createReadStream(digest, { start, end }),
        openFile: () => store.openFile(digest),
      }
    }
    const { fill } = found
    const info = await raceAbort(fill.ready, options.signal)
    await this.#checkRoom(fill, info.size)
    return {
      ...info,
      cached: false,
      source: fill.source,
      read: async (start, end) => fill.createReader(start, end),
      openFile: async () => {
        const file = fill.openFile()
        if (file !== undefined) return file
        if (fill.error !== undefined) throw fill.error
        await fill.done
        return store.openFile(digest)
      },
    }
  }

  /** The blob's record when the store holds it, else the fill that brings it (joined, or started here). */
  async #lookup(digest: Digest, options: OpenOptions): Promise<{ record: BlobRecord } | { fill: Fill }> {
    for (;;) {
      const commits = this.#commits
      const record = await this.#c.store.stat(digest)
      if (record !== undefined) return { record }
      const fill = this.#fills.get(digest.value)
      if (fill !== undefined) return { fill }
      // No fill now and none committed while the store was asked: the blob is missing. Otherwise a
      // fill of it may have committed and left the map during the lookup: ask again rather than fetch twice.
      if (this.#commits === commits) return { fill: this.#startFill(digest, options) }
    }
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<OpenedBlob> {
    const handle = await this.acquire(digest, options)
    const offset = options.offset ?? 0
    const stream = await handle.read(offset, handle.size - 1)
    return { digest: handle.digest, size: handle.size, mediaType: handle.mediaType, stream }
  }

  /**
   * Throws StoreFullError when the disk has no room left for the rest of the blob beside what
   * the other fills still have to write, so that the client gets an error (503, and containerd
   * tries its next host) before any header goes out instead of a body cut short. The fill
   * itself goes on: space may be freed meanwhile.
   */
  async #checkRoom(fill: Fill, size: number): Promise<void> {
    if (fill.verified) return
    let reserved = 0
    for (const other of this.#fills.values()) if (other !== fill && other.size !== undefined) reserved += Math.max(0, other.size - other.written)
    await this.#c.store.ensureRoom(size - fill.written, reserved)
  }

  #startFill(digest: Digest, options: OpenOptions): Fill {
    const fill = new Fill(
      { digest, repository: options.repository, maxResumes: this.#init.maxResumes, idleTimeoutMs: this.#init.idleTimeoutMs, offThreadHashBytes: this.#init.offThreadHashBytes },
      { store: this.#c.store, source: this.#c.source, logger: this.#c.logger, onMismatch: this.#c.onMismatch },
    )
    this.#fills.set(digest.value, fill)
    fill.done.then(
      () => {
        this.#commits++
        this.#fills.delete(digest.value)
        this.#c.onFillSettled?.('committed', undefined, digest)
      },
      (err: Error) => {
        this.#fills.delete(digest.value)
        this.#c.logger.warn({ digest: digest.value, err: err.message }, 'fill failed')
        this.#c.onFillSettled?.('failed', err, digest)
      },
    )
    return fill
  }
}
