import type { ServerResponse } from 'node:http'
import { PollenError } from '../protocol/errors.js'
import { MIN_SEND_CHUNK_BYTES, SEND_BUDGET_BYTES, SEND_BUFFERS, SEND_CHUNK_BYTES } from './constants.js'
import type { BlobFile } from './store.js'

/** The client went away before the whole body was written. */
export class ClientGoneError extends PollenError {
  constructor() {
    super('ClientGoneError', 'UNAVAILABLE', 'client closed the connection before the body was sent')
  }
}

/**
 * The buffer memory that the cache-hit responses of one server share. Alone, a response reads
 * in SEND_CHUNK_BYTES chunks (fast: few syscalls); once the budget is spoken for, later
 * responses get MIN_SEND_CHUNK_BYTES chunks, so that 500 concurrent clients hold about the
 * budget plus 500 × SEND_BUFFERS × MIN_SEND_CHUNK_BYTES, not 500 × 12 MiB.
 */
export class SendBudget {
  readonly bytes: number
  #held = 0

  constructor(bytes = SEND_BUDGET_BYTES) {
    this.bytes = bytes
  }

  /** Bytes held by responses now. */
  get held(): number {
    return this.#held
  }

  /** The chunk size for a new response of `length` bytes, and the call that gives its share back. */
  acquire(length: number): { chunkBytes: number; release(): void } {
    const fair = Math.floor((this.bytes - this.#held) / SEND_BUFFERS / MIN_SEND_CHUNK_BYTES) * MIN_SEND_CHUNK_BYTES
    const chunkBytes = Math.max(1, Math.min(length, SEND_CHUNK_BYTES, Math.max(MIN_SEND_CHUNK_BYTES, fair)))
    const share = chunkBytes * SEND_BUFFERS
    this.#held += share
    let released = false
    return {
      chunkBytes,
      release: () => {
        if (released) return
        released = true
        this.#held -= share
      },
    }
  }
}

/**
 * Writes bytes [start, end] (inclusive) of `file` as the body of `res` (headers already
 * set), then ends it; a file still being filled is followed as it grows. The HTTP blob path: a few buffers are reused round-robin, each refilled
 * only once the socket has taken its previous bytes, so nothing is allocated per chunk and at
 * most SEND_BUFFERS × the chunk size `budget` grants are held per response. Always closes `file`.
 * Rejects with ClientGoneError when the connection closes first, or with the read's error
 * (after cutting the connection).
 */
export async function sendFileRange(res: ServerResponse, file: BlobFile, start: number, end: number, budget: SendBudget): Promise<void> {
  let finished = false
  // Each wait below is raced with the client going away. Not with Promise.race against one
  // long-lived promise: that adds a reaction to it per call, which lives as long as the
  // response (1,000 per 64 MiB in 64 KiB chunks; 500 clients grew the heap by 500 MiB).
  let goneError: ClientGoneError | undefined
  const waiting = new Set<(err: Error) => void>()
  const onGone = (): void => {
    if (finished || res.writableFinished || goneError !== undefined) return
    goneError = new ClientGoneError()
    for (const reject of waiting) reject(goneError)
    waiting.clear()
  }
  const unlessGone = <T,>(p: Promise<T>): Promise<T> => {
    if (goneError !== undefined) {
      p.catch(() => {})
      return Promise.reject(goneError)
    }
    return new Promise<T>((resolve, reject) => {
      waiting.add(reject)
      p.then(
        (value) => {
          waiting.delete(reject)
          resolve(value)
        },
        (err: unknown) => {
          waiting.delete(reject)
          reject(err as Error)
        },
      )
    })
  }
  res.once('close', onGone)
  if (res.destroyed) onGone()
  const share = budget.acquire(end - start + 1)
  const buffers = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafeSlow(share.chunkBytes))
  const written: Array<Promise<void> | undefined> = buffers.map(() => undefined)
  try {
    let pos = start
    for (let i = 0; pos <= end; i = (i + 1) % buffers.length) {
      // The socket still holds this buffer's previous bytes until their write completes.
      if (written[i] !== undefined) await unlessGone(written[i]!)
      const buf = buffers[i]!
      // A blob still being filled: wait until bytes past pos are there (and verified, for the last one).
      const limit = file.available === undefined ? end + 1 : Math.min(end + 1, await unlessGone(file.available(pos)))
      const want = Math.min(buf.byteLength, limit - pos)
      const { bytesRead } = await unlessGone(file.handle.read(buf, 0, want, pos))
      file.check?.()
      if (bytesRead === 0) throw new Error(`blob file ended at byte ${pos}, before byte ${end}`)
      pos += bytesRead
      written[i] = new Promise<void>((resolve, reject) => {
        res.write(bytesRead === buf.byteLength ? buf : buf.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve()))
      })
      written[i]!.catch(() => {})
    }
    await unlessGone(new Promise<void>((resolve) => res.end(resolve)))
    finished = true
  } catch (err) {
    if (!res.destroyed) res.destroy()
    throw err
  } finally {
    share.release()
    res.off('close', onGone)
    await file.close()
  }
}
