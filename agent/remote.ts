import type { Logger } from 'pino'
import { UpstreamBlobSource, type UpstreamBlobs } from '../content/registry-client/upstream-blob-source.js'
import { UpstreamRegistry, type UpstreamMetrics } from '../content/registry-client/upstream-registry.js'
import type { UpstreamCredentials } from '../content/registry-client/credentials.js'
import type { ManifestUpstream } from '../content/manifest-service.js'
import type { BlobSource } from '../content/blob-source.js'
import { defaultRegistryUrl } from '../protocol/reference.js'
import { SEED_MAX_RETRIES, SEED_REQUEST_TIMEOUT_MS } from './constants.js'

/** Where the agent's misses go: manifests and blobs by registry host, and a way to shut it down. */
export interface Remote {
  /** `seed` or `upstream`: the label its bytes carry in metrics. */
  name: 'seed' | 'upstream'
  manifests: Pick<ReadonlyMap<string, ManifestUpstream>, 'get'>
  blobs: BlobSource
  close(): Promise<void>
}

export interface RemoteComponents {
  logger: Logger
  metrics: UpstreamMetrics
  /** The agent's admission token for the seed, when it has one. */
  bearer?: () => string | undefined
}

/**
 * The seed as the agent's remote: one client for the seed's URL, every request carrying the
 * registry as `?ns=`. The agent holds no registry credentials.
 */
export function seedRemote(seedUrl: string, c: RemoteComponents): Remote {
  const seed = new UpstreamRegistry(
    { ns: new URL(seedUrl).host, url: seedUrl, requestTimeoutMs: SEED_REQUEST_TIMEOUT_MS, maxRetries: SEED_MAX_RETRIES, role: 'seed' },
    { logger: c.logger, metrics: c.metrics, bearer: c.bearer },
  )
  const forNs = (ns: string): ManifestUpstream & UpstreamBlobs => ({
    getManifest: (repo, reference, opts) => seed.getManifest(repo, reference, { ...opts, ns }),
    openBlob: (repo, digest, opts) => seed.openBlob(repo, digest, { ...opts, ns }),
    statBlob: (repo, digest, opts) => seed.statBlob(repo, digest, { ...opts, ns }),
  })
  const lookup = { get: forNs }
  return { name: 'seed', manifests: lookup, blobs: new UpstreamBlobSource(lookup, 'seed'), close: () => seed.close() }
}

/**
 * Standalone mode: the agent pulls from each registry itself, with a client per registry made
 * on first use and the operator's own credentials (from ~/.docker/config.json) if any.
 */
export function standaloneRemote(credentials: ReadonlyMap<string, UpstreamCredentials>, c: RemoteComponents): Remote {
  const clients = new Map<string, UpstreamRegistry>()
  const lookup = {
    get(ns: string): UpstreamRegistry {
      let client = clients.get(ns)
      if (client === undefined) {
        client = new UpstreamRegistry({ ns, url: defaultRegistryUrl(ns), credentials: credentials.get(ns) }, { logger: c.logger.child({ registry: ns }), metrics: c.metrics })
        clients.set(ns, client)
      }
      return client
    },
  }
  return {
    name: 'upstream',
    manifests: lookup,
    blobs: new UpstreamBlobSource(lookup, 'upstream'),
    close: async () => {
      await Promise.all([...clients.values()].map((client) => client.close()))
    },
  }
}
