import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client'

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
}

export function createAgentMetrics(registry: Registry, sources: AgentGaugeSources = {}, options: { defaultMetrics?: boolean } = {}): AgentMetrics {
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
      help: 'Mirror requests answered, by kind (base, manifest, blob, health, unknown) and HTTP status code.',
      labelNames: ['kind', 'code'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'pollen_agent_request_duration_seconds',
      help: 'Time to answer a mirror request, until the last body byte was written.',
      labelNames: ['kind'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
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
      help: 'Tags answered from the last known digest because the seed (or upstream) was unreachable.',
      labelNames: ['registry'],
      registers,
    }),
    remoteRequests: new Counter({
      name: 'pollen_agent_remote_requests_total',
      help: 'HTTP requests to the seed (or upstreams when standalone), by status code ("error" for connection failures).',
      labelNames: ['code'],
      registers,
    }),
    remoteBytes: new Counter({ name: 'pollen_agent_remote_bytes_total', help: 'Bytes received from the seed (or upstreams when standalone).', registers }),
    fills: new Counter({ name: 'pollen_agent_fills_total', help: 'Finished blob fills, by outcome (committed, failed).', labelNames: ['outcome'], registers }),
    evictions: new Counter({ name: 'pollen_agent_evictions_total', help: 'Blobs evicted to stay under the cache size.', registers }),
    evictedBytes: new Counter({ name: 'pollen_agent_evicted_bytes_total', help: 'Bytes evicted to stay under the cache size.', registers }),
    admissionDenied: new Counter({
      name: 'pollen_agent_admission_denied_total',
      help: 'Peers refused for their admission token, by reason: blob requests, and connections (reason "not-presented": no token shown within the deadline after connecting).',
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
