import { Readable } from 'node:stream'
import type { Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { PollenError } from '../../protocol/errors.js'
import { FrameReader, type DecodedFrame, type FrameKind, type FrameReaderOptions } from '../../protocol/blob-frames.js'

/** Bytes a stream may hold for a paused reader; at least yamux's grown window (16 MiB). */
export const STREAM_READ_BUFFER_BYTES = 32 * 1024 * 1024
/** Bytes a Readable over a stream buffers before it pauses the stream. */
const READABLE_HIGH_WATER = 4 * 1024 * 1024

export class StreamClosedError extends PollenError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('StreamClosedError', 'UNAVAILABLE', message, options)
  }
}

/**
 * A Node Readable over a libp2p stream's incoming bytes, with backpressure: when the
 * Readable's buffer is full the stream is paused (so yamux stops granting window), and
 * resumed when the consumer reads. Ends when the remote closes its writable end; fails with
 * StreamClosedError when the stream is reset. Destroying it aborts the stream.
 */
export function readableOf(stream: Stream): Readable {
  stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, STREAM_READ_BUFFER_BYTES)
  let ended = false
  const readable = new Readable({
    highWaterMark: READABLE_HIGH_WATER,
    read() {
      stream.resume()
    },
    destroy(err, callback) {
      stream.removeEventListener('message', onMessage)
      if (stream.status === 'open' || stream.status === 'closing') stream.abort(err ?? new StreamClosedError('reader went away'))
      callback(err)
    },
  })
  const onMessage = (evt: { data: Uint8Array | Uint8ArrayList }): void => {
    // A list is pushed buffer by buffer: flattening it (subarray()) would copy every byte.
    let more = true
    if (evt.data instanceof Uint8Array) more = readable.push(evt.data)
    else for (const buf of evt.data) more = readable.push(buf)
    if (!more) {
      // A pause issued during resume()'s synchronous delivery is undone; defer it.
      queueMicrotask(() => {
        if (readable.readableLength >= READABLE_HIGH_WATER) stream.pause()
      })
    }
  }
  const end = (): void => {
    if (ended) return
    ended = true
    readable.push(null)
  }
  // A reset can arrive while nobody is reading (a server done with the request, a hedged
  // loser): the error must not go unhandled. Readers still see it through their own listeners.
  readable.on('error', () => {})
  stream.addEventListener('message', onMessage)
  stream.addEventListener('remoteCloseWrite', end)
  stream.addEventListener('close', (evt) => {
    const error = (evt as { error?: Error }).error
    if (error !== undefined && !ended) readable.destroy(new StreamClosedError(`peer stream closed: ${error.message}`, { cause: error }))
    else end()
  })
  if (stream.readableEnded) end()
  return readable
}

/**
 * Reads one frame from the start of `readable`, puts any bytes after it back (they are the
 * payload), and returns the frame. Throws the codec's typed errors, StreamClosedError when
 * the stream ends first, and the signal's reason on abort.
 */
export async function readFrame<K extends FrameKind>(readable: Readable, expect: K, signal: AbortSignal, options?: FrameReaderOptions): Promise<DecodedFrame<K>['frame']> {
  const reader = new FrameReader(expect, options)
  signal.throwIfAborted()
  // A deadline or abort destroys the readable (and so the stream): the exchange is over.
  const onAbort = (): void => void readable.destroy(signal.reason as Error)
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const chunk of readable.iterator({ destroyOnReturn: false })) {
      const decoded = reader.push(chunk as Uint8Array)
      if (decoded !== undefined) {
        if (decoded.rest.byteLength > 0) readable.unshift(Buffer.from(decoded.rest.buffer, decoded.rest.byteOffset, decoded.rest.byteLength))
        return decoded.frame
      }
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
  reader.finish()
  throw new StreamClosedError('stream ended before a frame arrived')
}

/** Resolves on the stream's next 'drain'; rejects if it closes first or the signal aborts. */
export function drained(stream: Stream, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => {
      cleanup()
      resolve()
    }
    const onClose = (): void => {
      cleanup()
      reject(new StreamClosedError('stream closed while waiting to send'))
    }
    const onAbort = (): void => {
      cleanup()
      reject(signal?.reason)
    }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Sends bytes honouring backpressure: waits for a fresh 'drain' each time send() says the buffer is full. */
export async function sendBytes(stream: Stream, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
  if (!stream.send(bytes)) await drained(stream, signal)
}
