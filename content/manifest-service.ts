import type { Logger } from 'pino'
import type { ContentStore } from './store.js'
import { parseDigest, type Digest } from '../protocol/digest.js'
import { digestOf } from '../protocol/digest-verifier.js'
import { DigestMismatchError, ManifestUnknownError, PollenError, RegistryUnknownError } from '../protocol/errors.js'
import { MAX_MANIFEST_BYTES, isManifestMediaType, parseManifest } from '../protocol/media-types.js'
import { repositoryKey, type Reference, type Repository } from '../protocol/reference.js'
import { DEFAULT_TAG_TTL_MS } from './constants.js'
import { SingleFlight } from './single-flight.js'
import { TagCache, type TagEntry } from './tag-cache.js'
import { raceAbort } from './abort.js'

/** A manifest as served: exact bytes, media type and digest. */
export interface Manifest {
  bytes: Buffer
  mediaType: string
  digest: string
  /** True when a tag was answered from the last known digest because the upstream was unreachable. */
  stale: boolean
}

/** What the manifest service needs from an upstream registry. */
export interface ManifestUpstream {
  getManifest(repo: string, reference: string, opts?: { signal?: AbortSignal; accept?: string }): Promise<{ bytes: Buffer; mediaType: string; digest?: string }>
}

export interface ManifestServiceInit {
  tagTtlMs?: number
  /**
   * When a tag's answer has expired but is known, serve it (stale) if the remote has not
   * answered within this many ms; undefined waits for the remote's own deadline.
   */
  staleAfterMs?: number
}

export interface ManifestServiceComponents {
  store: ContentStore
  /** The remote for each registry host (a Map, or a lookup that makes clients on demand). */
  upstreams: Pick<ReadonlyMap<string, ManifestUpstream>, 'get'>
  logger: Logger
  now?: () => number
  onStaleTag?: (ns: string) => void
  /** Called when a remote's manifest bytes did not match the digest asked for or announced. */
  onDigestMismatch?: (ns: string) => void
}

/**
 * Resolves manifests for the seed and the agent. By digest: from the store, else fetched, verified and
 * stored. By tag: from the tag cache while fresh (`tagTtlMs`), else upstream; when the
 * upstream is unavailable the last known answer is served (stale-if-error).
 * Throws ManifestUnknownError, RegistryUnknownError, ManifestInvalidError (body contradicts
 * its type), DigestMismatchError, and the upstream's errors.
 */
export class ManifestService {
  readonly #ttl: number
  readonly #staleAfterMs: number | undefined
  readonly #c: ManifestServiceComponents
  readonly #now: () => number
  readonly #tags = new TagCache()
  readonly #flights = new SingleFlight<Manifest>()

  constructor(init: ManifestServiceInit, components: ManifestServiceComponents) {
    this.#ttl = init.tagTtlMs ?? DEFAULT_TAG_TTL_MS
    this.#staleAfterMs = init.staleAfterMs
    this.#c = components
    this.#now = components.now ?? Date.now
  }

  /**
   * `accept` is a normalised manifest Accept list (see normaliseManifestAccept): undefined asks
   * for every manifest type; otherwise it is sent on, and tag answers are cached per list.
   */
  async get(repository: Repository, reference: Reference, opts: { signal?: AbortSignal; accept?: string } = {}): Promise<Manifest> {
    const { signal, accept } = opts
    const upstream = this.#c.upstreams.get(repository.ns)
    if (upstream === undefined) throw new RegistryUnknownError(repository.ns)
    if (reference.kind === 'digest') {
      const local = await this.#fromStore(reference.digest)
      if (local !== undefined) return local
      return this.#flights.run(`${repositoryKey(repository)}@${reference.digest.value}`, () =>
        this.#fetch(upstream, repository, reference.digest.value, reference.digest, signal, accept),
      )
    }
    const key = `${repositoryKey(repository)}:${reference.tag}${accept === undefined ? '' : ` accept=${accept}`}`
    const known = this.#tags.get(key) ?? (await this.#persistedTag(key))
    if (known !== undefined && this.#now() - known.fetchedAt < this.#ttl) {
      const local = await this.#fromStore(parseDigest(known.digest))
      if (local !== undefined) return local
    }
    const refresh = this.#flights.run(key, async () => {
      const manifest = await this.#fetch(upstream, repository, reference.tag, undefined, undefined, accept)
      const entry = { digest: manifest.digest, mediaType: manifest.mediaType, fetchedAt: this.#now() }
      this.#tags.set(key, entry)
      await this.#c.store.putRecord(`tag:${key}`, entry).catch((err: unknown) => this.#c.logger.warn({ err }, 'could not persist a tag answer'))
      return manifest
    })
    try {
      if (known === undefined || this.#staleAfterMs === undefined) return await raceAbort(refresh, signal)
      // A slow remote must not hold the pull: past staleAfterMs the last known answer is
      // served, and the refresh goes on in the background to update the cache.
      let timer: NodeJS.Timeout | undefined
      const slow = new Promise<'slow'>((resolve) => (timer = setTimeout(() => resolve('slow'), this.#staleAfterMs)))
      const first = await raceAbort(Promise.race([refresh, slow]), signal).finally(() => clearTimeout(timer))
      if (first !== 'slow') return first
      refresh.catch(() => {})
      return (await this.#stale(known, key, repository.ns, `no answer within ${this.#staleAfterMs} ms`)) ?? (await raceAbort(refresh, signal))
    } catch (err) {
      if (known === undefined || !isUnavailable(err)) throw err
      const stale = await this.#stale(known, key, repository.ns, (err as Error).message)
      if (stale === undefined) throw err
      return stale
    }
  }

  /** The last known answer for a tag, marked stale (logged and counted), or undefined when its manifest is gone. */
  async #stale(known: TagEntry, key: string, ns: string, why: string): Promise<Manifest | undefined> {
    const stale = await this.#fromStore(parseDigest(known.digest))
    if (stale === undefined) return undefined
    this.#c.logger.warn({ repository: key, digest: known.digest, err: why }, 'upstream unavailable; serving last known tag answer')
    this.#c.onStaleTag?.(ns)
    return { ...stale, stale: true }
  }

  async #fetch(
    upstream: ManifestUpstream,
    repository: Repository,
    reference: string,
    expected: Digest | undefined,
    signal: AbortSignal | undefined,
    accept: string | undefined,
  ): Promise<Manifest> {
    const got = await upstream.getManifest(repository.name, reference, accept === undefined ? { signal } : { signal, accept }).catch((err: unknown) => {
      if (err instanceof DigestMismatchError) this.#c.onDigestMismatch?.(repository.ns)
      throw err
    })
    const algorithm = expected?.algorithm ?? (got.digest?.startsWith('sha512:') === true ? 'sha512' : 'sha256')
    const actual = digestOf(got.bytes, algorithm)
    const announced = expected?.value ?? (got.digest?.startsWith(`${algorithm}:`) === true ? got.digest : undefined)
    if (announced !== undefined && actual !== announced) {
      this.#c.onDigestMismatch?.(repository.ns)
      throw new DigestMismatchError(announced, actual)
    }
    const { mediaType } = parseManifest(got.bytes, got.mediaType)
    await this.#c.store.putBuffer(parseDigest(actual), got.bytes, { mediaType, repository: repositoryKey(repository) })
    return { bytes: got.bytes, mediaType, digest: actual, stale: false }
  }

  /** The tag answer persisted by an earlier run (kept for stale-if-error across restarts). */
  async #persistedTag(key: string): Promise<TagEntry | undefined> {
    const entry = await this.#c.store.getRecord<TagEntry>(`tag:${key}`).catch(() => undefined)
    if (entry === undefined || typeof entry.digest !== 'string' || typeof entry.fetchedAt !== 'number') return undefined
    this.#tags.set(key, entry)
    return entry
  }

  async #fromStore(digest: Digest): Promise<Manifest | undefined> {
    const record = await this.#c.store.stat(digest)
    if (record?.mediaType === undefined || !isManifestMediaType(record.mediaType) || record.size > MAX_MANIFEST_BYTES) return undefined
    try {
      const parts: Buffer[] = []
      for await (const chunk of await this.#c.store.createReadStream(digest)) parts.push(chunk as Buffer)
      return { bytes: Buffer.concat(parts), mediaType: record.mediaType, digest: digest.value, stale: false }
    } catch (err) {
      if (err instanceof PollenError && err.ociCode === 'BLOB_UNKNOWN') return undefined
      throw err
    }
  }
}

function isUnavailable(err: unknown): boolean {
  if (err instanceof ManifestUnknownError) return false
  if (err instanceof PollenError) return err.ociCode === 'UNAVAILABLE' || err.ociCode === 'TOOMANYREQUESTS'
  return true
}
