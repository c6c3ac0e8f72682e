import { Worker } from 'node:worker_threads'
import type { Digest } from '../protocol/digest.js'
import { DigestMismatchError } from '../protocol/errors.js'

/** How far the file must have grown past the last message before the worker is told again. */
const ADVANCE_STEP_BYTES = 4 * 1024 * 1024

// CommonJS, evaluated in the worker: hashes the file from byte 0 up to each `upTo` it is
// told, reading it with its own descriptor; answers `{ hex, bytes }` to `final`.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { openSync, readSync, closeSync } = require('node:fs')
const { createHash } = require('node:crypto')
const fd = openSync(workerData.path, 'r')
const hash = createHash(workerData.algorithm)
const buf = Buffer.allocUnsafe(4 * 1024 * 1024)
let pos = 0
parentPort.on('message', (m) => {
  try {
    while (pos < m.upTo) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, m.upTo - pos), pos)
      if (n === 0) throw new Error('file ended at byte ' + pos + ' before byte ' + m.upTo)
      hash.update(buf.subarray(0, n))
      pos += n
    }
    if (m.final) {
      closeSync(fd)
      parentPort.postMessage({ hex: hash.digest('hex'), bytes: pos })
    }
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message) })
  }
})
`

/**
 * Verifies a file that is being written, on a worker thread: the caller reports how many
 * bytes from offset 0 are written (`advance`), the worker hashes them by reading the file,
 * and `verify(size)` resolves once the first `size` bytes matched the digest. So hashing
 * does not share the event loop's thread with the network and the disk writes. Only bytes
 * already written may be reported; the file must not shrink while the digester lives.
 */
export class FileDigester {
  readonly expected: Digest
  readonly #worker: Worker
  readonly #failed: Promise<never>
  #told = 0
  #closed = false

  constructor(path: string, expected: Digest) {
    this.expected = expected
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, algorithm: expected.algorithm } })
    this.#failed = new Promise<never>((_, reject) => {
      this.#worker.once('error', reject)
      this.#worker.once('exit', (code) => reject(new Error(`hashing worker exited (${code})`)))
      this.#worker.on('message', (m: { error?: string }) => {
        if (m.error !== undefined) reject(new Error(`hashing worker: ${m.error}`))
      })
    })
    this.#failed.catch(() => {})
  }

  /** Reports that bytes [0, upTo) are in the file. */
  advance(upTo: number): void {
    if (this.#closed || upTo - this.#told < ADVANCE_STEP_BYTES) return
    this.#told = upTo
    this.#worker.postMessage({ upTo })
  }

  /**
   * Hashes up to `size` and checks the digest; always stops the worker. Throws
   * DigestMismatchError when the bytes do not match, or the worker's error.
   */
  async verify(size: number): Promise<void> {
    try {
      const answer = new Promise<{ hex: string; bytes: number }>((resolve) => {
        this.#worker.on('message', (m: { hex?: string; bytes: number }) => {
          if (m.hex !== undefined) resolve({ hex: m.hex, bytes: m.bytes })
        })
      })
      this.#worker.postMessage({ upTo: size, final: true })
      const { hex } = await Promise.race([answer, this.#failed])
      const actual = `${this.expected.algorithm}:${hex}`
      if (actual !== this.expected.value) throw new DigestMismatchError(this.expected.value, actual)
    } finally {
      this.close()
    }
  }

  /** Stops the worker (idempotent). */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    void this.#worker.terminate()
  }
}
