import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Digest } from '../protocol/digest.js'
import { BlobUnknownError, UpstreamUnavailableError } from '../protocol/errors.js'
import type { BlobInfo, BlobSource, OpenOptions, OpenedBlob } from './blob-source.js'

/**
 * Blob sources for tests: an in-memory source and fault-injecting wrappers
 * (dies at byte N, lies about the bytes, trickles slowly). Each records the
 * offsets it was opened at, so tests can see resumes and single-flight.
 */
export class MemorySource implements BlobSource {
  readonly name: string
  readonly opens: number[] = []
  readonly #blobs = new Map<string, Buffer>()
  /** Bytes per chunk the streams emit. */
  chunkSize = 64 * 1024
  /** Delay before each chunk, in ms (0 = none). */
  chunkDelayMs = 0

  constructor(name = 'memory') {
    this.name = name
  }

  add(digest: string, bytes: Buffer): void {
    this.#blobs.set(digest, bytes)
  }

  async stat(digest: Digest): Promise<BlobInfo> {
    const bytes = this.#blobs.get(digest.value)
    if (bytes === undefined) throw new BlobUnknownError(digest.value)
    return { digest: digest.value, size: bytes.byteLength }
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<OpenedBlob> {
    const bytes = this.#blobs.get(digest.value)
    this.opens.push(options.offset ?? 0)
    if (bytes === undefined) throw new BlobUnknownError(digest.value)
    const { chunkSize, chunkDelayMs } = this
    const signal = options.signal
    const body = bytes.subarray(options.offset ?? 0)
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < body.byteLength; i += chunkSize) {
        if (chunkDelayMs > 0) await sleep(chunkDelayMs, undefined, { signal })
        signal?.throwIfAborted()
        yield body.subarray(i, i + chunkSize)
      }
    }
    return { digest: digest.value, size: bytes.byteLength, stream: Readable.from(chunks()) }
  }
}

/** Wraps a source so that its streams die with a network-like error after `failAt` bytes (counted from offset 0), `times` times. */
export class DyingSource implements BlobSource {
  readonly name = 'dying'
  #remaining: number
  constructor(
    readonly inner: BlobSource,
    readonly failAt: number,
    times = 1,
  ) {
    this.#remaining = times
  }

  stat(digest: Digest, options?: OpenOptions): Promise<BlobInfo> {
    return this.inner.stat(digest, options)
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<OpenedBlob> {
    const opened = await this.inner.open(digest, options)
    if (this.#remaining <= 0) return opened
    this.#remaining--
    let pos = options.offset ?? 0
    const failAt = this.failAt
    async function* dying(): AsyncGenerator<Buffer> {
      for await (const chunk of opened.stream as AsyncIterable<Buffer>) {
        if (pos + chunk.byteLength >= failAt) {
          if (failAt > pos) yield chunk.subarray(0, failAt - pos)
          opened.stream.destroy()
          throw new UpstreamUnavailableError(`connection reset at byte ${failAt}`)
        }
        pos += chunk.byteLength
        yield chunk
      }
    }
    return { ...opened, stream: Readable.from(dying()) }
  }
}

/** Wraps a source so that it flips one byte at `at` (a lying peer or a corrupted upstream). */
export class LyingSource implements BlobSource {
  readonly name = 'lying'
  constructor(
    readonly inner: BlobSource,
    readonly at = 0,
  ) {}

  stat(digest: Digest, options?: OpenOptions): Promise<BlobInfo> {
    return this.inner.stat(digest, options)
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<OpenedBlob> {
    const opened = await this.inner.open(digest, options)
    let pos = options.offset ?? 0
    const at = this.at
    async function* lying(): AsyncGenerator<Buffer> {
      for await (const chunk of opened.stream as AsyncIterable<Buffer>) {
        if (at >= pos && at < pos + chunk.byteLength) {
          const copy = Buffer.from(chunk)
          copy[at - pos] = (copy[at - pos] ?? 0) ^ 0xff
          yield copy
        } else yield chunk
        pos += chunk.byteLength
      }
    }
    return { ...opened, stream: Readable.from(lying()) }
  }
}

/**
 * Wraps a source so that each stream sends `budget(openIndex)` bytes and then goes silent
 * (never ends, never fails) until its consumer gives up: a stalled peer or upstream.
 * `handlesFailover` is settable, to stand in for a peer source that a chain keeps asking.
 */
export class StallingSource implements BlobSource {
  readonly name: string
  readonly opens: number[] = []
  handlesFailover = false
  constructor(
    readonly inner: BlobSource,
    readonly budget: (openIndex: number) => number,
    name = 'stalling',
  ) {
    this.name = name
  }

  stat(digest: Digest, options?: OpenOptions): Promise<BlobInfo> {
    return this.inner.stat(digest, options)
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<OpenedBlob> {
    const allowed = this.budget(this.opens.length)
    this.opens.push(options.offset ?? 0)
    const opened = await this.inner.open(digest, options)
    const signal = options.signal
    async function* stalling(): AsyncGenerator<Buffer> {
      let sent = 0
      for await (const chunk of opened.stream as AsyncIterable<Buffer>) {
        const take = Math.min(chunk.byteLength, allowed - sent)
        if (take > 0) yield chunk.subarray(0, take)
        sent += take
        if (sent >= allowed) break
      }
      opened.stream.destroy()
      if (sent < allowed) return
      // Silent until the consumer aborts (its idle deadline) or destroys the stream.
      await new Promise<void>((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true }))
    }
    return { ...opened, stream: Readable.from(stalling()) }
  }
}
