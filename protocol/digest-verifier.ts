import { createHash, type Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import type { Digest } from './digest.js'
import { DigestMismatchError, SizeMismatchError } from './errors.js'

/**
 * Incrementally hashes content and checks it against an expected digest (and size,
 * when known). `update` may be called any number of times; `verify` checks once.
 */
export class DigestVerifier {
  readonly expected: Digest
  readonly expectedSize: number | undefined
  #hash: Hash
  #bytes = 0

  constructor(expected: Digest, expectedSize?: number) {
    this.expected = expected
    this.expectedSize = expectedSize
    this.#hash = createHash(expected.algorithm)
  }

  get bytes(): number {
    return this.#bytes
  }

  /** Adds bytes. Throws SizeMismatchError as soon as more than the expected size arrives. */
  update(chunk: Uint8Array): void {
    this.#bytes += chunk.byteLength
    if (this.expectedSize !== undefined && this.#bytes > this.expectedSize) {
      throw new SizeMismatchError(this.expectedSize, this.#bytes)
    }
    this.#hash.update(chunk)
  }

  /**
   * Finishes hashing. Returns nothing when the content matches; throws SizeMismatchError
   * or DigestMismatchError otherwise. Can be called only once.
   */
  verify(): void {
    if (this.expectedSize !== undefined && this.#bytes !== this.expectedSize) {
      throw new SizeMismatchError(this.expectedSize, this.#bytes)
    }
    const actual = `${this.expected.algorithm}:${this.#hash.digest('hex')}`
    if (actual !== this.expected.value) throw new DigestMismatchError(this.expected.value, actual)
  }
}

/**
 * A pass-through stream that hashes what flows through it and fails with
 * DigestMismatchError / SizeMismatchError at the end if the content is wrong.
 */
export function createVerifyingStream(expected: Digest, expectedSize?: number): Transform {
  const verifier = new DigestVerifier(expected, expectedSize)
  return new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      try {
        verifier.update(chunk)
        callback(null, chunk)
      } catch (err) {
        callback(err as Error)
      }
    },
    flush(callback: TransformCallback) {
      try {
        verifier.verify()
        callback()
      } catch (err) {
        callback(err as Error)
      }
    },
  })
}

/** The canonical digest of an in-memory buffer (manifests, configs). */
export function digestOf(bytes: Uint8Array, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`
}
