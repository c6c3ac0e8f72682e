import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client'
import { ADMISSION_GATE_REASONS } from '../protocol/admission-frames.js'
import { REQUEST_DURATION_BUCKETS, boundedLabel } from '../content/metric-conventions.js'
import { DEFAULT_MAX_DATASTORE_ENTRIES } from '../content/p2p/compact-datastore.js'

/** Every metric the agent exports, registered on an injected Registry. */
export interface AgentMetrics {
  registry: Registry
  blobBytes: Counter<'source'>
  manifestBytes: Counter
  requests: Counter<'kind' | 'code'>
  requestDuration: Histogram<'kind'>
  digestMismatch: Counter<'source'>
  staleTagsServed: Counter<'registry'>
  remoteRequests: Counter<'code'>
  remoteBytes: Counter
  fills: Counter<'outcome'>
  evictions: Counter
  evictedBytes: Counter
  peerUploadBytes: Counter
  dhtLookupDuration: Histogram
  admissionDenied: Counter<'reason'>
}

/** Live values read at scrape time; set them once the components exist. */
export interface AgentGaugeSources {
  cacheBytes?: () => number
  cacheCapacity?: () => number
  inflightFills?: () => number
  peers?: () => number
  dhtPeers?: () => number
  dhtStoreRecords?: () => number
  /** Expiry (ms since the epoch) of the admission token held last; undefined when none was ever held. */
  tokenExpiresAt?: () => number | undefined
  /** Whether the seed answers; only read when `seed` is set in the options. */
  seedUp?: () => boolean
}

export interface AgentMetricsOptions {
  /** Also register the Node.js process metrics (default true). */
  defaultMetrics?: boolean
  /** The agent has a seed: export pollen_agent_seed_up. */
  seed?: boolean
  /** The agent enrolls with its seed: export pollen_agent_admission_token_expiry_timestamp_seconds. */
  enrolled?: boolean
}

/** Registries that keep their name in the `registry` label; any other is `other`. */
export const WELL_KNOWN_REGISTRIES = ['docker.io', 'ghcr.io', 'quay.io', 'registry.k8s.io', 'gcr.io', 'mcr.microsoft.com', 'public.ecr.aws', 'nvcr.io'] as const

/**
 * The `registry` label for a client-chosen `?ns=`: the default registry and the well-known
 * public ones by name, anything else `other` (so a client cannot mint series).
 */
export function registryLabeller(defaultNs: string): (ns: string) => string {
  const known: ReadonlySet<string> = new Set([defaultNs, ...WELL_KNOWN_REGISTRIES])
  return (ns) => boundedLabel(ns, known)
}

/** Values of the `reason` label of pollen_agent_admission_denied_total. */
export const AGENT_DENIAL_REASONS: ReadonlySet<string> = new Set([...ADMISSION_GATE_REASONS, 'mirror-token'])

/** Values of the `source` label (blob bytes, digest mismatches): where bytes came from. */
export const BYTE_SOURCES: ReadonlySet<string> = new Set(['local', 'peer', 'seed', 'upstream', 'chain', 'remote'])

export function createAgentMetrics(registry: Registry, sources: AgentGaugeSources = {}, options: AgentMetricsOptions = {}): AgentMetrics {
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const gauge = (name: string, help: string, read: () => number | undefined): Gauge =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read() ?? 0)
      },
    })
  gauge('pollen_agent_cache_bytes', 'Bytes of committed content in the agent cache.', () => sources.cacheBytes?.())
  gauge('pollen_agent_cache_capacity_bytes', 'The cache size the agent keeps under (--cache-size).', () => sources.cacheCapacity?.())
  gauge('pollen_agent_inflight_fills', 'Blob fills in progress.', () => sources.inflightFills?.())
  gauge('pollen_agent_peers', 'Peers the agent holds a libp2p connection to.', () => sources.peers?.())
  gauge('pollen_agent_dht_routing_table_peers', 'Peers in the DHT routing table (with admission: admitted peers only).', () => sources.dhtPeers?.())
  gauge('pollen_agent_dht_store_records', `Records in the agent's in-memory DHT store (provider records from peers, mostly); new records are refused at ${DEFAULT_MAX_DATASTORE_ENTRIES}.`, () => sources.dhtStoreRecords?.())
  if (options.enrolled === true) {
    gauge(
      'pollen_agent_admission_token_expiry_timestamp_seconds',
      'Expiry of the admission token the agent holds (or held last), in seconds since the epoch; 0 until it obtained one. Only exported by agents that enroll.',
      () => {
        const ms = sources.tokenExpiresAt?.()
        return ms === undefined ? 0 : Math.floor(ms / 1000)
      },
    )
  }
  if (options.seed === true) {
    gauge('pollen_agent_seed_up', '1 when the seed answered the agent\'s last health probe, 0 when it did not (the agent then serves cached and peer content only).', () =>
      sources.seedUp?.() === true ? 1 : 0,
    )
  }
  return {
    registry,
    blobBytes: new Counter({
      name: 'pollen_agent_blob_bytes_total',
      help: 'Blob bytes sent to clients, by where they came from: local (cache hit), peer, or the remote that filled them (seed, or upstream when standalone).',
      labelNames: ['source'],
      registers,
    }),
    manifestBytes: new Counter({ name: 'pollen_agent_manifest_bytes_total', help: 'Manifest bytes sent to clients.', registers }),
    requests: new Counter({
      name: 'pollen_agent_requests_total',
      help: 'Mirror requests answered, by kind (base, manifest, blob, health, unknown, other) and HTTP status code.',
      labelNames: ['kind', 'code'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'pollen_agent_request_duration_seconds',
      help: 'Time to answer a mirror request, until the last body byte was written, by kind.',
      labelNames: ['kind'],
      buckets: [...REQUEST_DURATION_BUCKETS],
      registers,
    }),
    digestMismatch: new Counter({
      name: 'pollen_agent_digest_mismatch_total',
      help: 'Blobs and manifests refused because their bytes did not match their digest, by source.',
      labelNames: ['source'],
      registers,
    }),
    staleTagsServed: new Counter({
      name: 'pollen_agent_stale_tags_served_total',
      help: 'Tags answered from the last known digest because the seed (or upstream) was unreachable, by registry (the default and well-known registries by name, others as "other").',
      labelNames: ['registry'],
      registers,
    }),
    remoteRequests: new Counter({
      name: 'pollen_agent_remote_requests_total',
      help: 'HTTP requests to the seed (or upstreams when standalone), by status code ("error" for connection failures, "timeout" when no answer came in time).',
      labelNames: ['code'],
      registers,
    }),
    remoteBytes: new Counter({ name: 'pollen_agent_remote_bytes_total', help: 'Bytes received from the seed (or upstreams when standalone).', registers }),
    fills: new Counter({ name: 'pollen_agent_fills_total', help: 'Finished blob fills, by outcome (committed, failed).', labelNames: ['outcome'], registers }),
    evictions: new Counter({ name: 'pollen_agent_evictions_total', help: 'Blobs evicted to stay under the cache size.', registers }),
    evictedBytes: new Counter({ name: 'pollen_agent_evicted_bytes_total', help: 'Bytes evicted to stay under the cache size.', registers }),
    admissionDenied: new Counter({
      name: 'pollen_agent_admission_denied_total',
      help: 'Peers refused for their admission token, by reason: blob requests, and connections (reason "not-presented": no token shown within the deadline after connecting); "mirror-token" for mirror clients without the mirror token.',
      labelNames: ['reason'],
      registers,
    }),
    peerUploadBytes: new Counter({ name: 'pollen_agent_peer_upload_bytes_total', help: 'Blob bytes sent to other agents over libp2p.', registers }),
    dhtLookupDuration: new Histogram({
      name: 'pollen_agent_dht_lookup_duration_seconds',
      help: 'Time of a DHT lookup for a digest\'s providers, until it ended (found enough, exhausted, or deadline).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
  }
}
