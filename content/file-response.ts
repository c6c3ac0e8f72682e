import type { ServerResponse } from 'node:http'
import { PollenError } from '../protocol/errors.js'
import { SEND_CHUNK_BYTES, SEND_BUFFERS } from './constants.js'
import type { BlobFile } from './store.js'

/** The client went away before the whole body was written. */
export class ClientGoneError extends PollenError {
  constructor() {
    super('ClientGoneError', 'UNAVAILABLE', 'client closed the connection before the body was sent')
  }
}

/**
 * Writes bytes [start, end] (inclusive) of `file` as the body of `res` (headers already
 * set), then ends it. The cache-hit path: a few buffers are reused round-robin, each refilled
 * only once the socket has taken its previous bytes, so nothing is allocated per chunk and at
 * most SEND_BUFFERS × SEND_CHUNK_BYTES are held per response. Always closes `file`.
 * Rejects with ClientGoneError when the connection closes first, or with the read's error
 * (after cutting the connection).
 */
export async function sendFileRange(res: ServerResponse, file: BlobFile, start: number, end: number): Promise<void> {
  let finished = false
  let onGone!: () => void
  const gone = new Promise<never>((_, reject) => {
    onGone = () => {
      if (!finished && !res.writableFinished) reject(new ClientGoneError())
    }
  })
  gone.catch(() => {})
  res.once('close', onGone)
  if (res.destroyed) onGone()
  const size = Math.min(SEND_CHUNK_BYTES, end - start + 1)
  const buffers = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafeSlow(size))
  const written: Array<Promise<void> | undefined> = buffers.map(() => undefined)
  try {
    let pos = start
    for (let i = 0; pos <= end; i = (i + 1) % buffers.length) {
      // The socket still holds this buffer's previous bytes until their write completes.
      if (written[i] !== undefined) await Promise.race([written[i], gone])
      const buf = buffers[i]!
      const want = Math.min(buf.byteLength, end + 1 - pos)
      const { bytesRead } = await Promise.race([file.handle.read(buf, 0, want, pos), gone])
      if (bytesRead === 0) throw new Error(`blob file ended at byte ${pos}, before byte ${end}`)
      pos += bytesRead
      written[i] = new Promise<void>((resolve, reject) => {
        res.write(bytesRead === buf.byteLength ? buf : buf.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve()))
      })
      written[i]!.catch(() => {})
    }
    await Promise.race([new Promise<void>((resolve) => res.end(resolve)), gone])
    finished = true
  } catch (err) {
    if (!res.destroyed) res.destroy()
    throw err
  } finally {
    res.off('close', onGone)
    await file.close()
  }
}
