import { EventEmitter, once } from 'node:events'
import { open, unlink, type FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { Digest } from '../protocol/digest.js'
import { DigestVerifier } from '../protocol/digest-verifier.js'
import { DigestMismatchError, PollenError, SizeMismatchError } from '../protocol/errors.js'
import type { BlobInfo, BlobSource } from './blob-source.js'
import { DEFAULT_FILL_IDLE_TIMEOUT_MS, DEFAULT_FILL_RESUMES, DEFAULT_OFF_THREAD_HASH_BYTES, FILL_READ_CHUNK_BYTES } from './constants.js'
import { FileAppender } from './file-appender.js'
import { FileDigester } from './file-digester.js'
import { asStoreError, type BlobFile, type BlobRecord, type ContentStore } from './store.js'
import type { Repository } from '../protocol/reference.js'
import { repositoryKey } from '../protocol/reference.js'

export interface FillInit {
  digest: Digest
  repository?: Repository
  mediaType?: string
  /**
   * How many times in a row a broken source is resumed at the byte reached without
   * receiving a byte in between; an attempt that made progress resets the count.
   */
  maxResumes?: number
  /** A source silent for this long is treated as broken. */
  idleTimeoutMs?: number
  /** Blobs of at least this size are hashed on a worker thread (default DEFAULT_OFF_THREAD_HASH_BYTES). */
  offThreadHashBytes?: number
}

export interface FillComponents {
  store: ContentStore
  source: BlobSource
  logger: Logger
  /** Called with the source's name each time bytes from it failed verification. */
  onMismatch?: (source: string) => void
}

/** How many times a fill starts over after a mismatch, when its source offers other copies. */
const MAX_MISMATCH_RESTARTS = 2

/** Errors after which resuming the same blob cannot help. */
function isFatal(err: unknown): boolean {
  if (!(err instanceof PollenError)) return false
  if (err.name === 'StoreFullError') return true
  return err.ociCode !== 'UNAVAILABLE' && err.ociCode !== 'TOOMANYREQUESTS' && err.name !== 'SizeMismatchError'
}

/**
 * One download of a blob into a temp file, verified while it streams and committed to the
 * store by rename only when the digest matches. Any number of readers follow it, each at
 * its own pace, reading from the temp file; a reader that goes away does not affect it.
 * `ready` resolves with the blob's size once the source answered; `done` resolves with the
 * committed record, or rejects (DigestMismatchError, BlobUnknownError, …) and then every
 * reader fails with that error. Readers never see the final byte before verification.
 * When the bytes do not match and the source can offer another copy (retryAfterMismatch),
 * the fill starts over; readers that had the bad bytes fail, later readers get the new ones.
 */
export class Fill extends EventEmitter {
  readonly digest: Digest
  readonly ready: Promise<BlobInfo>
  readonly done: Promise<BlobRecord>
  size: number | undefined
  written = 0
  verified = false
  error: Error | undefined
  readonly #init: FillInit
  readonly #c: FillComponents
  readonly #temp: string
  #handle: FileHandle | undefined
  #readers = 0
  #settled = false
  #unpin: () => void
  /** Bumped when a mismatched fill starts over; readers of an older generation fail. */
  #generation = 0
  #resetError: Error | undefined
  /** Names of the sources whose bytes went into the current attempt. */
  readonly #contributors = new Set<string>()
  /** The name of the source the first bytes came from (for metrics). */
  source: string | undefined
  #mediaType: string | undefined

  /** The repository the fill was started for (recorded with the blob when it commits). */
  get repository(): Repository | undefined {
    return this.#init.repository
  }

  constructor(init: FillInit, components: FillComponents) {
    super()
    this.setMaxListeners(0)
    this.digest = init.digest
    this.#init = init
    this.#c = components
    this.#temp = components.store.tempPath(init.digest)
    this.#mediaType = init.mediaType
    this.#unpin = components.store.pin(init.digest)
    let resolveReady!: (info: BlobInfo) => void
    let rejectReady!: (err: Error) => void
    this.ready = new Promise<BlobInfo>((resolve, reject) => {
      resolveReady = resolve
      rejectReady = reject
    })
    this.ready.catch(() => {})
    this.done = this.#run(resolveReady).then(
      (record) => {
        this.verified = true
        this.#settle()
        return record
      },
      (err: Error) => {
        this.error = err
        rejectReady(err)
        this.#settle()
        throw err
      },
    )
    this.done.catch(() => {})
  }

  get readerCount(): number {
    return this.#readers
  }

  async #run(resolveReady: (info: BlobInfo) => void): Promise<BlobRecord> {
    const { store } = this.#c
    try {
      this.#handle = await open(this.#temp, 'wx+')
    } catch (err) {
      throw asStoreError(err)
    }
    for (let restarts = 0; ; restarts++) {
      const verifier = await this.#download(this.#handle, resolveReady)
      try {
        await verifier.verify()
        break
      } catch (err) {
        if (!(err instanceof DigestMismatchError)) throw err
        for (const name of this.#contributors) this.#c.onMismatch?.(name)
        const retry = restarts < MAX_MISMATCH_RESTARTS && (await this.#c.source.retryAfterMismatch?.(this.digest)) === true
        if (!retry) throw err
        this.#c.logger.warn({ digest: this.digest.value, sources: [...this.#contributors] }, 'fill bytes did not match the digest; starting over from another source')
        this.#resetError = err
        this.#generation++
        this.written = 0
        this.#contributors.clear()
        await this.#handle.truncate(0)
        this.emit('progress')
      }
    }
    await this.#handle.sync().catch((err: unknown) => {
      throw asStoreError(err)
    })
    const repository = this.#init.repository === undefined ? undefined : repositoryKey(this.#init.repository)
    return store.commit(this.#temp, this.digest, this.written, { mediaType: this.#mediaType, repository })
  }

  /**
   * Downloads every byte into the temp file from offset 0, resuming at the byte received
   * when a source breaks. Returns the check of every byte against the digest, for the caller
   * to run: a blob of at least `offThreadHashBytes` is hashed from the file by a worker thread
   * (FileDigester), a smaller one inline as it arrives.
   */
  async #download(handle: FileHandle, resolveReady: (info: BlobInfo) => void): Promise<{ verify(): Promise<void> }> {
    const { source, logger } = this.#c
    const maxResumes = this.#init.maxResumes ?? DEFAULT_FILL_RESUMES
    const idleMs = this.#init.idleTimeoutMs ?? DEFAULT_FILL_IDLE_TIMEOUT_MS
    const offThread = this.#init.offThreadHashBytes ?? DEFAULT_OFF_THREAD_HASH_BYTES
    let inline: DigestVerifier | undefined
    let digester: FileDigester | undefined
    const appender = new FileAppender(handle, 0, (total) => {
      this.written = total
      digester?.advance(total)
      this.emit('progress')
    })
    try {
      const received = await this.#receive(appender, (size) => {
        if (inline === undefined && digester === undefined) {
          if (size >= offThread) digester = new FileDigester(this.#temp, this.digest)
          else inline = new DigestVerifier(this.digest)
        }
        return inline
      }, source, logger, maxResumes, idleMs, resolveReady)
      await appender.drain()
      const checker = digester
      const verifier = inline
      if (checker !== undefined) return { verify: () => checker.verify(received) }
      return { verify: async () => verifier!.verify() }
    } catch (err) {
      digester?.close()
      throw err
    }
  }

  /** The receive loop of #download; `start(size)` is called on each open and returns the inline verifier, if any. Returns the bytes received. */
  async #receive(
    appender: FileAppender,
    start: (size: number) => DigestVerifier | undefined,
    source: BlobSource,
    logger: Logger,
    maxResumes: number,
    idleMs: number,
    resolveReady: (info: BlobInfo) => void,
  ): Promise<number> {
    /** Bytes received and hashed; ahead of `written` by what is queued for the disk. */
    let received = 0
    /** Failed attempts in a row that received nothing, and failed attempts in all. */
    let failures = 0
    let broken = 0
    for (;;) {
      const abort = new AbortController()
      const idle = setTimeout(() => abort.abort(new PollenError('SourceStalledError', 'UNAVAILABLE', `source ${source.name} stalled for ${idleMs} ms`)), idleMs)
      const before = received
      try {
        // The first resume may try the cheaper sources again (another peer); after that, a
        // chain goes straight to its last source, so that repeated breaks cannot fail the pull.
        const opened = await source.open(this.digest, { offset: received, repository: this.#init.repository, signal: abort.signal, lastResort: broken >= 2 })
        this.#contributors.add(opened.source ?? source.name)
        this.source ??= opened.source ?? source.name
        if (this.size === undefined) {
          this.size = opened.size
          this.#mediaType ??= opened.mediaType
          resolveReady({ digest: this.digest.value, size: opened.size, mediaType: this.#mediaType })
        }
        const verifier = start(this.size)
        if (opened.size !== this.size) {
          opened.stream.destroy()
          throw new SizeMismatchError(this.size, opened.size)
        }
        for await (const chunk of opened.stream as AsyncIterable<Buffer>) {
          idle.refresh()
          if (received + chunk.byteLength > this.size) {
            opened.stream.destroy()
            throw new SizeMismatchError(this.size, received + chunk.byteLength)
          }
          verifier?.update(chunk)
          received += chunk.byteLength
          await appender.append(chunk)
        }
        if (received === this.size) break
        throw new PollenError('SourceTruncatedError', 'UNAVAILABLE', `source ${source.name} ended at byte ${received} of ${this.size}`)
      } catch (err) {
        const reason = abort.signal.aborted ? abort.signal.reason : err
        if (received > before) failures = 0
        if (isFatal(reason) || failures >= maxResumes || (reason instanceof SizeMismatchError && received > (this.size ?? 0))) throw reason
        failures++
        broken++
        logger.warn({ digest: this.digest.value, at: received, attempt: broken, err: (reason as Error).message }, 'fill source failed; resuming')
      } finally {
        clearTimeout(idle)
      }
    }
    return received
  }

  #settle(): void {
    this.#settled = true
    this.emit('progress')
    if (this.error !== undefined) void unlink(this.#temp).catch(() => {})
    this.#maybeClose()
  }

  #maybeClose(): void {
    if (!this.#settled || this.#readers > 0 || this.#handle === undefined) return
    const handle = this.#handle
    this.#handle = undefined
    this.#unpin()
    void handle.close().catch(() => {})
  }

  /** How far a reader may read now: everything written, less the final byte until verified. */
  #limit(): number {
    if (this.verified) return this.written
    if (this.size !== undefined && this.written >= this.size) return this.size - 1
    return this.written
  }

  /**
   * The fill's temp file for positional reads (file-response.ts), following the fill as it
   * grows through `available` and `check`; undefined once the fill closed its file (then read
   * the committed blob, or fail with `error`). The file stays open until `close()`.
   */
  openFile(): Required<BlobFile> | undefined {
    if (this.#handle === undefined) return undefined
    this.#readers++
    const handle = this.#handle
    const generation = this.#generation
    let released = false
    const check = (): void => {
      if (this.error !== undefined) throw this.error
      if (this.#generation !== generation) throw this.#resetError ?? new Error('fill restarted')
    }
    return {
      handle,
      close: async () => {
        if (released) return
        released = true
        this.#readers--
        this.#maybeClose()
      },
      check,
      available: async (pos) => {
        for (;;) {
          check()
          const limit = this.#limit()
          if (limit > pos) return limit
          await once(this, 'progress')
        }
      },
    }
  }

  /**
   * A stream of bytes [start, end] (inclusive) that follows the fill as it grows.
   * After the fill committed and closed its temp file, it reads the committed blob.
   * The stream fails with the fill's error if the fill fails.
   */
  createReader(start: number, end: number): Readable {
    const file = this.openFile()
    if (file === undefined) {
      if (this.error !== undefined) return Readable.from((async function* (e: Error) { throw e })(this.error))
      const store = this.#c.store
      const digest = this.digest
      return Readable.from((async function* () {
        yield* await store.createReadStream(digest, { start, end })
      })(), { objectMode: false })
    }
    let pos = start
    const stream = new Readable({
      highWaterMark: FILL_READ_CHUNK_BYTES,
      read(): void {
        void pump()
      },
      destroy(err, callback): void {
        void file.close()
        callback(err)
      },
    })
    let pumping = false
    const pump = async (): Promise<void> => {
      if (pumping) return
      pumping = true
      try {
        for (;;) {
          if (stream.destroyed) return
          if (pos > end) {
            stream.push(null)
            void file.close()
            return
          }
          const limit = Math.min(await file.available(pos), end + 1)
          const want = Math.min(FILL_READ_CHUNK_BYTES, limit - pos)
          const buf = Buffer.allocUnsafe(want)
          const { bytesRead } = await file.handle.read(buf, 0, want, pos)
          // The fill may have started over (a mismatch truncated the file) during the read.
          file.check()
          if (bytesRead === 0) throw new Error('temp file shorter than recorded progress')
          pos += bytesRead
          if (!stream.push(bytesRead === want ? buf : buf.subarray(0, bytesRead))) return
        }
      } catch (err) {
        stream.destroy(err as Error)
      } finally {
        pumping = false
      }
    }
    return stream
  }
}
