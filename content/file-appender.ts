import type { FileHandle } from 'node:fs/promises'
import { asStoreError } from './store.js'

/** Bytes queued before `append` makes its caller wait for the disk. */
const HIGH_WATER_BYTES = 8 * 1024 * 1024

/**
 * Appends chunks to a file behind the caller: chunks queue while one `writev` is in flight,
 * so network reads and disk writes overlap and small chunks coalesce into large writes.
 * `onFlushed(total)` reports the bytes durably handed to the file so far.
 */
export class FileAppender {
  readonly #handle: FileHandle
  readonly #onFlushed: (total: number) => void
  #position: number
  #queue: Buffer[] = []
  #queued = 0
  #flushing: Promise<void> | undefined
  #error: unknown

  constructor(handle: FileHandle, position: number, onFlushed: (total: number) => void) {
    this.#handle = handle
    this.#position = position
    this.#onFlushed = onFlushed
  }

  /** Queues a chunk. Resolves at once unless too much is queued; rejects with StoreFullError or the write error. */
  async append(chunk: Buffer): Promise<void> {
    if (this.#error !== undefined) throw this.#error
    this.#queue.push(chunk)
    this.#queued += chunk.byteLength
    this.#flushing ??= this.#flush()
    if (this.#queued > HIGH_WATER_BYTES) await this.drain()
  }

  /** Resolves when everything queued is written; rejects with the first write error. */
  async drain(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing
    if (this.#error !== undefined) throw this.#error
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0 && this.#error === undefined) {
        const buffers = this.#queue
        const bytes = this.#queued
        this.#queue = []
        this.#queued = 0
        await this.#writeAll(buffers, bytes)
        this.#position += bytes
        this.#onFlushed(this.#position)
      }
    } catch (err) {
      this.#error = asStoreError(err)
    } finally {
      this.#flushing = undefined
    }
  }

  async #writeAll(buffers: Buffer[], bytes: number): Promise<void> {
    const { bytesWritten } = await this.#handle.writev(buffers, this.#position)
    if (bytesWritten === bytes) return
    const rest = Buffer.concat(buffers).subarray(bytesWritten)
    let off = 0
    while (off < rest.byteLength) {
      const r = await this.#handle.write(rest, off, rest.byteLength - off, this.#position + bytesWritten + off)
      off += r.bytesWritten
    }
  }
}
