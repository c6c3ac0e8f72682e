import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client'
import { ADMISSION_GATE_REASONS } from '../protocol/admission-frames.js'
import { REQUEST_DURATION_BUCKETS } from '../content/metric-conventions.js'
import { DEFAULT_MAX_DATASTORE_ENTRIES } from '../content/p2p/compact-datastore.js'

/** Every metric the seed exports, registered on an injected Registry. */
export interface SeedMetrics {
  registry: Registry
  upstreamBytes: Counter<'registry'>
  upstreamRequests: Counter<'registry' | 'code'>
  /** 1 unless the last request to the registry failed to connect, timed out or got a 5xx; set by the upstream clients' callbacks. */
  upstreamUp: Gauge<'registry'>
  servedBytes: Counter<'kind'>
  requestDuration: Histogram<'method' | 'route' | 'status'>
  staleTagsServed: Counter<'registry'>
  inflightFills: Gauge
  fills: Counter<'outcome'>
  cacheBytes: Gauge
  cacheCapacity: Gauge
  evictions: Counter
  evictedBytes: Counter
  dhtPeers: Gauge
  dhtStoreRecords: Gauge
  admissionIssued: Counter<'how'>
  admissionDenied: Counter<'reason'>
  fanout: Counter<'from'>
}

/** Values of the `reason` label of pollen_seed_admission_denied_total. */
export const SEED_DENIAL_REASONS: ReadonlySet<string> = new Set([
  ...ADMISSION_GATE_REASONS,
  'join-token-unknown',
  'join-token-expired',
  'join-token-used-up',
])

/** Live values read at scrape time; set them once the components exist. */
export interface SeedGaugeSources {
  inflightFills?: () => number
  cacheBytes?: () => number
  /** --cache-size in bytes; 0 without a limit. */
  cacheCapacity?: () => number
  dhtPeers?: () => number
  dhtStoreRecords?: () => number
}

export function createSeedMetrics(registry: Registry, sources: SeedGaugeSources = {}, options: { defaultMetrics?: boolean } = {}): SeedMetrics {
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  return {
    registry,
    upstreamBytes: new Counter({
      name: 'pollen_seed_upstream_bytes_total',
      help: 'Body bytes (blobs and manifests) received from upstream registries, by registry.',
      labelNames: ['registry'],
      registers,
    }),
    upstreamRequests: new Counter({
      name: 'pollen_seed_upstream_requests_total',
      help: 'HTTP requests to upstream registries (and their token services), by configured registry and HTTP status code ("error" for connection failures, "timeout" when no answer came in time).',
      labelNames: ['registry', 'code'],
      registers,
    }),
    upstreamUp: new Gauge({
      name: 'pollen_seed_upstream_up',
      help: 'Per configured registry: 0 when the last request to it failed to connect, timed out or got a 5xx answer, else 1 (also before the first request).',
      labelNames: ['registry'],
      registers,
    }),
    servedBytes: new Counter({
      name: 'pollen_seed_served_bytes_total',
      help: 'Body bytes sent to clients, by kind (blob or manifest).',
      labelNames: ['kind'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'pollen_seed_request_duration_seconds',
      help: 'Time to answer a client request, until the last body byte was written, by method, route (base, manifest, blob, health, unknown, other) and HTTP status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [...REQUEST_DURATION_BUCKETS],
      registers,
    }),
    staleTagsServed: new Counter({
      name: 'pollen_seed_stale_tags_served_total',
      help: 'Tag resolutions answered from the last known digest because the upstream was unreachable.',
      labelNames: ['registry'],
      registers,
    }),
    inflightFills: new Gauge({
      name: 'pollen_seed_inflight_fills',
      help: 'Blob fills from upstream in progress.',
      registers,
      collect() {
        this.set(sources.inflightFills?.() ?? 0)
      },
    }),
    fills: new Counter({ name: 'pollen_seed_fills_total', help: 'Blob fills from upstream, by outcome (committed, failed).', labelNames: ['outcome'], registers }),
    admissionIssued: new Counter({
      name: 'pollen_seed_admission_issued_total',
      help: 'Admission tokens issued, by how the agent enrolled (join-token, oidc, refresh).',
      labelNames: ['how'],
      registers,
    }),
    admissionDenied: new Counter({
      name: 'pollen_seed_admission_denied_total',
      help: 'Refused admissions, by reason: enrollments (join-token-unknown, join-token-expired, join-token-used-up, …), registry requests without a valid token, and libp2p peers (not-presented, …).',
      labelNames: ['reason'],
      registers,
    }),
    fanout: new Counter({
      name: 'pollen_seed_fanout_answers_total',
      help: 'Answers to agents asking where to fetch a blob from: the seed itself (seed) or an agent already fetching it (peer).',
      labelNames: ['from'],
      registers,
    }),
    cacheBytes: new Gauge({
      name: 'pollen_seed_cache_bytes',
      help: 'Bytes of committed content in the seed cache.',
      registers,
      collect() {
        this.set(sources.cacheBytes?.() ?? 0)
      },
    }),
    cacheCapacity: new Gauge({
      name: 'pollen_seed_cache_capacity_bytes',
      help: 'The content cache capacity (--cache-size) in bytes; 0 when the seed runs without a limit.',
      registers,
      collect() {
        this.set(sources.cacheCapacity?.() ?? 0)
      },
    }),
    evictions: new Counter({ name: 'pollen_seed_evictions_total', help: 'Blobs evicted from the content cache (least recently used first) to stay under --cache-size.', registers }),
    evictedBytes: new Counter({ name: 'pollen_seed_evicted_bytes_total', help: 'Bytes of the blobs evicted from the content cache.', registers }),
    dhtPeers: new Gauge({
      name: 'pollen_seed_dht_routing_table_peers',
      help: "Peers in the seed's DHT routing table (with admission: admitted peers only).",
      registers,
      collect() {
        this.set(sources.dhtPeers?.() ?? 0)
      },
    }),
    dhtStoreRecords: new Gauge({
      name: 'pollen_seed_dht_store_records',
      help: `Records in the seed's in-memory DHT store (the agents' provider records, mostly: the seed is every agent's bootstrap peer); new records are refused at ${DEFAULT_MAX_DATASTORE_ENTRIES}.`,
      registers,
      collect() {
        this.set(sources.dhtStoreRecords?.() ?? 0)
      },
    }),
  }
}
