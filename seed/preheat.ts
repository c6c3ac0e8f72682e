import { setTimeout as sleep } from 'node:timers/promises'
import { request, type Dispatcher } from 'undici'
import { parseDigest } from '../protocol/digest.js'
import { DigestVerifier, digestOf } from '../protocol/digest-verifier.js'
import { DigestMismatchError, ManifestInvalidError, PollenError, SizeMismatchError } from '../protocol/errors.js'
import type { ImageReference } from '../protocol/image-reference.js'
import { MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, isIndexMediaType, parseManifest, type Descriptor } from '../protocol/media-types.js'
import type { Repository } from '../protocol/reference.js'
import { PREHEAT_ATTEMPTS, PREHEAT_BLOB_TIMEOUT_MS, PREHEAT_CONCURRENCY, PREHEAT_MANIFEST_TIMEOUT_MS, PREHEAT_STALL_TIMEOUT_MS } from './constants.js'
import type { PlatformFilter } from './preheat-args.js'
import type { PreheatListener } from './preheat-progress.js'

export interface PreheatInit {
  /** The seed's origin, e.g. `http://127.0.0.1:5000`. */
  seedUrl: string
  platforms: PlatformFilter[] | 'all'
  concurrency?: number
  manifestTimeoutMs?: number
  blobTimeoutMs?: number
  stallTimeoutMs?: number
  attempts?: number
}

export interface PreheatComponents {
  /** An admission token valid now, covering every repository. */
  token: () => Promise<string>
  listener: PreheatListener
  dispatcher?: Dispatcher
}

/** One image's outcome; `error` says why it failed. */
export interface PreheatOutcome {
  image: string
  ok: boolean
  blobs: number
  bytes: number
  error?: string
}

/** The seed answered a request with an error status. */
export class PreheatHttpError extends PollenError {
  readonly status: number
  constructor(what: string, status: number, detail: string) {
    super('PreheatHttpError', status === 404 ? 'MANIFEST_UNKNOWN' : 'UNAVAILABLE', `${what}: HTTP ${status}${detail === '' ? '' : ` ${detail}`}`)
    this.status = status
  }
}

/** An index held no child for the requested platforms. */
export class PlatformNotFoundError extends PollenError {
  constructor(platforms: string) {
    super('PlatformNotFoundError', 'MANIFEST_UNKNOWN', `the index has no manifest for ${platforms}`)
  }
}

const MAX_INDEX_DEPTH = 2

/**
 * Makes the seed fetch every image: its manifest (an index's children for the requested
 * platforms) and each distinct blob, read through the seed and discarded while their digest
 * is checked, so that the seed's cache ends up holding them. Reports progress to the
 * listener. Resolves one outcome per image, in order; never rejects for an image's failure.
 */
export async function preheatImages(images: ImageReference[], init: PreheatInit, c: PreheatComponents): Promise<PreheatOutcome[]> {
  const client = new SeedReader(init, c)
  const slots = semaphore(init.concurrency ?? PREHEAT_CONCURRENCY)
  return Promise.all(images.map((image) => preheatOne(image, client, slots, init.platforms, c.listener)))
}

async function preheatOne(image: ImageReference, client: SeedReader, slots: Semaphore, platforms: PlatformFilter[] | 'all', listener: PreheatListener): Promise<PreheatOutcome> {
  const name = image.text
  let done = { blobs: 0, bytes: 0 }
  try {
    const ref = image.reference.kind === 'tag' ? image.reference.tag : image.reference.digest.value
    const blobs = await slots.run(() => resolveBlobs(client, image.repository, ref, platforms, 0))
    listener.resolved(name, { blobs: blobs.length, bytes: blobs.reduce((n, b) => n + b.size, 0) })
    await Promise.all(
      blobs.map((blob) =>
        slots.run(async () => {
          const started = performance.now()
          await client.blob(image.repository, blob, (n) => listener.bytes(name, n))
          done = { blobs: done.blobs + 1, bytes: done.bytes + blob.size }
          listener.blobDone(name, { digest: blob.digest, size: blob.size, ms: performance.now() - started })
        }),
      ),
    )
    listener.imageDone(name, { ok: true })
    return { image: name, ok: true, ...done }
  } catch (err) {
    const error = (err as Error).message
    listener.imageDone(name, { ok: false, error })
    return { image: name, ok: false, ...done, error }
  }
}

/** The distinct blobs (configs and layers) of a manifest, following an index to its children for `platforms`. */
async function resolveBlobs(client: SeedReader, repo: Repository, ref: string, platforms: PlatformFilter[] | 'all', depth: number): Promise<Descriptor[]> {
  const manifest = await client.manifest(repo, ref)
  const parsed = parseManifest(manifest.body, manifest.contentType)
  if (!isIndexMediaType(parsed.mediaType)) return dedupe(parsed.references)
  if (depth >= MAX_INDEX_DEPTH) throw new ManifestInvalidError(`manifest ${ref} is an index nested deeper than ${MAX_INDEX_DEPTH} levels`)
  const children = childrenFor(manifest.body, parsed.references, platforms)
  if (children.length === 0) throw new PlatformNotFoundError(platforms === 'all' ? 'any platform' : platforms.map(platformText).join(', '))
  const nested = []
  for (const child of children) nested.push(...(await resolveBlobs(client, repo, child.digest, platforms, depth + 1)))
  return dedupe(nested)
}

/** The index's child descriptors whose `platform` matches one filter (all of them for `all`). */
export function childrenFor(indexBody: Uint8Array, references: Descriptor[], platforms: PlatformFilter[] | 'all'): Descriptor[] {
  if (platforms === 'all') return references
  const entries = (JSON.parse(Buffer.from(indexBody).toString('utf8')) as { manifests: Array<{ platform?: Partial<Record<string, unknown>> }> }).manifests
  return references.filter((_, i) => {
    const p = entries[i]?.platform
    if (p === undefined || p === null) return false
    return platforms.some((f) => p.os === f.os && p.architecture === f.architecture && (f.variant === undefined || p.variant === f.variant))
  })
}

function platformText(p: PlatformFilter): string {
  return [p.os, p.architecture, p.variant].filter((s) => s !== undefined).join('/')
}

function dedupe(descriptors: Descriptor[]): Descriptor[] {
  const seen = new Set<string>()
  return descriptors.filter((d) => !seen.has(d.digest) && seen.add(d.digest) !== undefined)
}

/** GETs from the seed with the admission token, a deadline per request and bounded retries. */
class SeedReader {
  readonly #init: PreheatInit
  readonly #c: PreheatComponents

  constructor(init: PreheatInit, c: PreheatComponents) {
    this.#init = init
    this.#c = c
  }

  /** The manifest's bytes and Content-Type; checked against `ref` when it is a digest. Throws PreheatHttpError, DigestMismatchError. */
  async manifest(repo: Repository, ref: string): Promise<{ body: Uint8Array; contentType: string }> {
    return this.#retrying(async () => {
      const res = await this.#get(repo, `manifests/${ref}`, this.#init.manifestTimeoutMs ?? PREHEAT_MANIFEST_TIMEOUT_MS, { accept: MANIFEST_MEDIA_TYPES.join(', ') })
      await expectOk(res, `manifest ${repo.ns}/${repo.name}:${ref}`)
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.byteLength
        if (size > MAX_MANIFEST_BYTES) throw new ManifestInvalidError(`manifest ${ref} is larger than ${MAX_MANIFEST_BYTES} bytes`)
        chunks.push(chunk)
      }
      const body = Buffer.concat(chunks)
      if (ref.includes(':')) {
        const actual = digestOf(body, parseDigest(ref).algorithm)
        if (actual !== ref) throw new DigestMismatchError(ref, actual)
      }
      return { body, contentType: String(res.headers['content-type'] ?? '') }
    })
  }

  /** Reads the blob through the seed and discards it, checking size and digest as it streams. Throws PreheatHttpError, DigestMismatchError, SizeMismatchError. */
  async blob(repo: Repository, blob: Descriptor, onBytes: (n: number) => void): Promise<void> {
    await this.#retrying(async () => {
      const res = await this.#get(repo, `blobs/${blob.digest}`, this.#init.blobTimeoutMs ?? PREHEAT_BLOB_TIMEOUT_MS, {})
      await expectOk(res, `blob ${blob.digest}`)
      const verifier = new DigestVerifier(parseDigest(blob.digest), blob.size)
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          verifier.update(chunk)
          onBytes(chunk.byteLength)
        }
        verifier.verify()
      } catch (err) {
        onBytes(-verifier.bytes)
        throw err
      }
    })
  }

  async #get(repo: Repository, path: string, timeoutMs: number, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    const url = `${this.#init.seedUrl}/v2/${repo.name}/${path}?ns=${encodeURIComponent(repo.ns)}`
    const stall = this.#init.stallTimeoutMs ?? PREHEAT_STALL_TIMEOUT_MS
    return request(url, {
      headers: { ...headers, authorization: `Bearer ${await this.#c.token()}` },
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: stall,
      bodyTimeout: stall,
      ...(this.#c.dispatcher === undefined ? {} : { dispatcher: this.#c.dispatcher }),
    })
  }

  /** Runs `fn` up to `attempts` times while it fails in a way another try may cure (5xx, 429, a broken or stalled connection). */
  async #retrying<T>(fn: () => Promise<T>): Promise<T> {
    const attempts = this.#init.attempts ?? PREHEAT_ATTEMPTS
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn()
      } catch (err) {
        if (attempt >= attempts || !transient(err)) throw describeNetworkError(err, this.#init.seedUrl)
        await sleep(250 * 2 ** (attempt - 1))
      }
    }
  }
}

async function expectOk(res: Dispatcher.ResponseData, what: string): Promise<void> {
  if (res.statusCode === 200) return
  const text = (await res.body.text().catch(() => '')).slice(0, 2000)
  let detail = ''
  try {
    const first = (JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0]
    if (first !== undefined) detail = `${first.code ?? ''}${first.message === undefined ? '' : `: ${first.message}`}`
  } catch {
    /* not an OCI error body */
  }
  const hint = res.statusCode === 401 ? " (do --issuer and --audience match the running seed's?)" : ''
  throw new PreheatHttpError(what, res.statusCode, `${detail.replace(/[^\x20-\x7e]/g, '?').slice(0, 300)}${hint}`)
}

function transient(err: unknown): boolean {
  if (err instanceof PreheatHttpError) return err.status >= 500 || err.status === 429
  if (err instanceof DigestMismatchError || err instanceof SizeMismatchError || err instanceof PollenError) return false
  return true
}

/** A connection failure as one line naming the seed. */
function describeNetworkError(err: unknown, seedUrl: string): unknown {
  if (err instanceof PollenError) return err
  const e = err as Error & { code?: string; cause?: { code?: string } }
  const code = e.code ?? e.cause?.code
  if (code === 'ECONNREFUSED') return new Error(`cannot reach the seed at ${seedUrl} (connection refused; is it running?)`, { cause: err })
  if (e.name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return new Error(`the seed at ${seedUrl} did not answer in time`, { cause: err })
  return new Error(`request to the seed at ${seedUrl} failed: ${e.message}`, { cause: err })
}

interface Semaphore {
  run<T>(fn: () => Promise<T>): Promise<T>
}

/** Runs at most `n` functions at once, the rest in arrival order. */
function semaphore(n: number): Semaphore {
  let active = 0
  const waiting: Array<() => void> = []
  return {
    async run(fn) {
      if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve))
      else active++
      try {
        return await fn()
      } finally {
        const next = waiting.shift()
        if (next === undefined) active--
        else next()
      }
    },
  }
}
