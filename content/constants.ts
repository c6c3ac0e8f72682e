/** Defaults for the content store and fills, applied with `??`. */
export const DEFAULT_FILL_RESUMES = 3
/** A fill whose source sends nothing for this long is failed (and resumed if it can be). */
export const DEFAULT_FILL_IDLE_TIMEOUT_MS = 30_000
/** Largest read a stream of a stored blob issues (store.createReadStream). */
export const READ_CHUNK_BYTES = 1024 * 1024
/**
 * Largest read, and the buffered bytes, of one reader of a fill in progress. Small, because
 * every client of a cold blob is such a reader: 500 of them at 1 MiB held 1.8 GiB.
 */
export const FILL_READ_CHUNK_BYTES = 256 * 1024
/** Minimum gap between two last-access writes for one blob. */
export const ACCESS_WRITE_INTERVAL_MS = 60_000
/** How long a tag → digest answer is reused before asking the remote again. */
export const DEFAULT_TAG_TTL_MS = 30_000
/** Tags remembered for stale-if-error; the least recently used beyond this are forgotten. */
export const MAX_CACHED_TAGS = 10_000
/** Deadline for resolving a manifest for a client, retries included. */
export const MANIFEST_DEADLINE_MS = 60_000
/** Deadline for a blob request to learn the blob's size (the source's first response). */
export const BLOB_OPEN_DEADLINE_MS = 60_000
/** Eviction starts above this fraction of the cache size… */
export const DEFAULT_HIGH_WATERMARK = 0.85
/** …and stops below this one. */
export const DEFAULT_LOW_WATERMARK = 0.7
/** Chunk size of the cache-hit HTTP path (content/file-response.ts)… */
export const SEND_CHUNK_BYTES = 4 * 1024 * 1024
/** …and how many such buffers one response cycles through. */
export const SEND_BUFFERS = 3
/** Buffer memory all cache-hit responses of one server share; beyond it each gets MIN_SEND_CHUNK_BYTES buffers. */
export const SEND_BUDGET_BYTES = 48 * 1024 * 1024
export const MIN_SEND_CHUNK_BYTES = 64 * 1024
/** A fill of a blob at least this large hashes it on a worker thread, off the network's thread (content/file-digester.ts). */
export const DEFAULT_OFF_THREAD_HASH_BYTES = 16 * 1024 * 1024
