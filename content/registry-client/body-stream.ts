import { Readable } from 'node:stream'
import { PollenError, UpstreamUnavailableError } from '../../protocol/errors.js'
import { UpstreamProtocolError } from './errors.js'
import type { ResponseBody } from './transport.js'

export interface BlobBodyInit {
  /** The remote as messages name it: `upstream docker.io`, `seed 10.0.0.5:5000`. */
  who: string
  /** Leading bytes to drop (an upstream that ignored the Range). */
  skip: number
  /** Bytes the stream must emit after the skip; fewer or more is an error. */
  length: number
  /** No body bytes for this long, while the reader wants some, fails the stream. */
  idleTimeoutMs: number
  /** The caller's signal: when it aborts, the stream fails with its reason. */
  signal?: AbortSignal
  /** Called with the length of every chunk received (skipped bytes included). */
  onBytes(n: number): void
}

/**
 * A blob body from the upstream as a Readable of exactly `length` bytes. It pulls from the
 * response only when its reader wants more, so backpressure holds and the idle timer only
 * runs while waiting for the upstream. Fails with UpstreamUnavailableError when the upstream
 * stalls or the connection breaks, UpstreamProtocolError on a length mismatch, and with the
 * caller's abort reason when its signal aborts. Destroying it releases the response.
 */
export class BlobBodyStream extends Readable {
  readonly #source: ResponseBody
  readonly #iterator: AsyncIterator<Buffer>
  readonly #init: BlobBodyInit
  #skip: number
  #remaining: number
  #pulling = false
  #idle: NodeJS.Timeout | undefined
  readonly #onAbort = (): void => {
    this.destroy(this.#init.signal?.reason as Error)
  }

  constructor(source: ResponseBody, init: BlobBodyInit) {
    super()
    this.#source = source
    this.#iterator = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
    this.#init = init
    this.#skip = init.skip
    this.#remaining = init.length
    if (init.signal?.aborted === true) this.destroy(init.signal.reason as Error)
    else init.signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  override _read(): void {
    if (!this.#pulling) void this.#pull()
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#disarm()
    this.#init.signal?.removeEventListener('abort', this.#onAbort)
    if (!this.#source.destroyed) this.#source.destroy()
    callback(err)
  }

  async #pull(): Promise<void> {
    this.#pulling = true
    try {
      for (;;) {
        this.#arm()
        const next = await this.#iterator.next()
        this.#disarm()
        if (this.destroyed) return
        if (next.done === true) {
          if (this.#remaining !== 0 || this.#skip !== 0) {
            throw new UpstreamProtocolError(`${this.#init.who} ended the blob ${this.#remaining + this.#skip} bytes early`)
          }
          this.push(null)
          return
        }
        let chunk = next.value
        this.#init.onBytes(chunk.byteLength)
        if (this.#skip > 0) {
          const dropped = Math.min(this.#skip, chunk.byteLength)
          this.#skip -= dropped
          chunk = chunk.subarray(dropped)
          if (chunk.byteLength === 0) continue
        }
        if (chunk.byteLength > this.#remaining) throw new UpstreamProtocolError(`${this.#init.who} sent more blob bytes than it declared`)
        this.#remaining -= chunk.byteLength
        if (!this.push(chunk)) return
      }
    } catch (err) {
      this.#disarm()
      if (!this.destroyed) this.destroy(this.#streamError(err))
    } finally {
      this.#pulling = false
    }
  }

  #streamError(err: unknown): Error {
    const signal = this.#init.signal
    if (signal?.aborted === true && err === signal.reason) return err as Error
    if (err instanceof PollenError) return err
    return new UpstreamUnavailableError(`${this.#init.who} broke off the blob body`, { cause: err })
  }

  #arm(): void {
    const { idleTimeoutMs, who } = this.#init
    this.#idle = setTimeout(() => {
      this.#source.destroy(new UpstreamUnavailableError(`${who} sent no blob bytes for ${idleTimeoutMs} ms`))
    }, idleTimeoutMs)
  }

  #disarm(): void {
    if (this.#idle !== undefined) clearTimeout(this.#idle)
    this.#idle = undefined
  }
}
