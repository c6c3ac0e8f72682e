import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client'

/** Every metric the seed exports, registered on an injected Registry. */
export interface SeedMetrics {
  registry: Registry
  upstreamBytes: Counter<'registry'>
  upstreamRequests: Counter<'registry' | 'code'>
  servedBytes: Counter<'kind'>
  requestDuration: Histogram<'method' | 'route' | 'status'>
  staleTagsServed: Counter<'registry'>
  inflightFills: Gauge
  fills: Counter<'outcome'>
  cacheBytes: Gauge
  admissionIssued: Counter<'how'>
  admissionDenied: Counter<'reason'>
}

/** Live values read at scrape time; set them once the components exist. */
export interface SeedGaugeSources {
  inflightFills?: () => number
  cacheBytes?: () => number
}

export function createSeedMetrics(registry: Registry, sources: SeedGaugeSources = {}, options: { defaultMetrics?: boolean } = {}): SeedMetrics {
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  return {
    registry,
    upstreamBytes: new Counter({
      name: 'pollen_seed_upstream_bytes_total',
      help: 'Blob bytes received from upstream registries.',
      labelNames: ['registry'],
      registers,
    }),
    upstreamRequests: new Counter({
      name: 'pollen_seed_upstream_requests_total',
      help: 'HTTP requests to upstream registries, by HTTP status code ("error" for connection failures).',
      labelNames: ['registry', 'code'],
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
      help: 'Time to answer a client request, until the last body byte was written.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
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
    fills: new Counter({ name: 'pollen_seed_fills_total', help: 'Blob fills from upstream, by outcome.', labelNames: ['outcome'], registers }),
    admissionIssued: new Counter({
      name: 'pollen_seed_admission_issued_total',
      help: 'Admission tokens issued, by how the agent enrolled (join-token, oidc, refresh).',
      labelNames: ['how'],
      registers,
    }),
    admissionDenied: new Counter({
      name: 'pollen_seed_admission_denied_total',
      help: 'Enrollments refused, by reason.',
      labelNames: ['reason'],
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
  }
}
