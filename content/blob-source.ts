import type { Readable } from 'node:stream'
import type { Digest } from '../protocol/digest.js'
import type { Repository } from '../protocol/reference.js'

/** What is known about a blob before its bytes are read. */
export interface BlobInfo {
  digest: string
  /** Total size in bytes. */
  size: number
  mediaType?: string
}

export interface OpenOptions {
  /** First byte to return; the stream then carries bytes [offset, size). Default 0. */
  offset?: number
  /** The repository the request came through (remote sources need it to find the blob). */
  repository?: Repository
  /** Aborts the request (not a shared fill that it joined). */
  signal?: AbortSignal
  /**
   * The caller's earlier attempts at this blob broke: a chain of sources skips straight to
   * its last one (the seed), the source that must not be passed over.
   */
  lastResort?: boolean
}

export interface OpenedBlob extends BlobInfo {
  /** The bytes from `offset` to the end. Unverified unless the source says otherwise. */
  stream: Readable
  /** Which source served it, when this source chains others (`peer`, `seed`, …). */
  source?: string
}

/**
 * Anything that can produce a blob by digest: the local store, a peer, the seed, an upstream.
 * `stat` and `open` throw BlobUnknownError when the source does not have the blob, and
 * other PollenErrors (unavailable, unauthorized) when it cannot say.
 */
export interface BlobSource {
  readonly name: string
  /** True when the source itself stops using a copy that failed (peers); a chain then keeps asking it. */
  readonly handlesFailover?: boolean
  stat(digest: Digest, options?: OpenOptions): Promise<BlobInfo>
  open(digest: Digest, options?: OpenOptions): Promise<OpenedBlob>
  /**
   * Called when bytes this source served for `digest` did not match it. Returns true when the
   * source can serve another copy (having stopped using the one that lied), so the fill may
   * start over; absent or false makes the mismatch final.
   */
  retryAfterMismatch?(digest: Digest): Promise<boolean>
}
