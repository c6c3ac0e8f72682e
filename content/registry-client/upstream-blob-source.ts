import type { BlobInfo, BlobSource, OpenOptions, OpenedBlob } from '../blob-source.js'
import type { Digest } from '../../protocol/digest.js'
import { RegistryUnknownError } from '../../protocol/errors.js'
import type { Repository } from '../../protocol/reference.js'
import { RepositoryRequiredError } from './errors.js'
import type { UpstreamRegistry } from './upstream-registry.js'

/** What the blob source needs of an upstream registry. */
export type UpstreamBlobs = Pick<UpstreamRegistry, 'openBlob' | 'statBlob'>

/**
 * The seed's last source: blobs straight from the upstream registry that `options.repository`
 * names. Streams are unverified. Throws RepositoryRequiredError without a repository,
 * RegistryUnknownError for a registry that has no upstream, and the upstream's errors
 * (BlobUnknownError, UpstreamUnavailableError, …).
 */
export class UpstreamBlobSource implements BlobSource {
  readonly name: string
  readonly #registries: Pick<ReadonlyMap<string, UpstreamBlobs>, 'get'>

  /** `registries` maps a registry host to its client (a Map, or a lookup that makes clients on demand). */
  constructor(registries: Pick<ReadonlyMap<string, UpstreamBlobs>, 'get'>, name = 'upstream') {
    this.#registries = registries
    this.name = name
  }

  async stat(digest: Digest, options: OpenOptions = {}): Promise<BlobInfo> {
    const [registry, repository] = this.#registry(digest, options.repository)
    const { size } = await registry.statBlob(repository.name, digest.value, { signal: options.signal })
    return { digest: digest.value, size }
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<OpenedBlob> {
    const [registry, repository] = this.#registry(digest, options.repository)
    const { size, stream } = await registry.openBlob(repository.name, digest.value, { offset: options.offset, signal: options.signal })
    return { digest: digest.value, size, stream }
  }

  #registry(digest: Digest, repository: Repository | undefined): [UpstreamBlobs, Repository] {
    if (repository === undefined) throw new RepositoryRequiredError(digest.value)
    const registry = this.#registries.get(repository.ns)
    if (registry === undefined) throw new RegistryUnknownError(repository.ns)
    return [registry, repository]
  }
}
