import { peerIdFromString } from '@libp2p/peer-id'
import type { Server } from 'node:http'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Registry } from 'prom-client'
import { CachingSource } from '../content/caching-source.js'
import { closeServers, createOpsServer, healthHandler, listen, storeReadiness, type ReadinessCheck } from '../content/ops-server.js'
import { Evictor } from '../content/evictor.js'
import { ContentStore } from '../content/store.js'
import { STALE_AFTER_MS } from './constants.js'
import type { SeedConfig } from './config.js'
import { ManifestService } from '../content/manifest-service.js'
import { SEED_DENIAL_REASONS, createSeedMetrics, type SeedGaugeSources, type SeedMetrics } from './metrics.js'
import { boundedLabel, methodLabel, remoteAnswered, requestCodeLabel, statusLabel } from '../content/metric-conventions.js'
import { createRegistryServer } from '../content/registry-server.js'
import { startSeedNode } from './p2p-node.js'
import { FanoutPlanner } from './fanout/planner.js'
import { fanoutHandler } from './fanout/endpoint.js'
import { bootstrapHandler } from './bootstrap-endpoint.js'
import type { Admission } from './admission/admission.js'
import { seedAuthorizer, seedChallenge } from './admission/authorize.js'
import { admissionHandler } from './admission/http.js'
import type { OidcVerifier } from './admission/oidc.js'
import type { UpstreamCredentials } from '../content/registry-client/credentials.js'
import { UpstreamBlobSource } from '../content/registry-client/upstream-blob-source.js'
import { UpstreamRegistry } from '../content/registry-client/upstream-registry.js'

export interface SeedComponents {
  logger: Logger
  /** Admission state (keys, join tokens, revocations, audit); its endpoints are served when given. Closed by close(). */
  admission?: Admission
  /** Verifies OIDC tokens at enrollment (`--oidc-issuer`); without it only join tokens enroll. */
  oidc?: OidcVerifier
  /** Upstream credentials by canonical registry host (from --credentials). */
  credentials: ReadonlyMap<string, UpstreamCredentials>
}

export interface RunningSeed {
  /** `http://host:port` of the registry API. */
  url: string
  /** `http://host:port` of the ops listener, when configured. */
  opsUrl?: string
  metrics: SeedMetrics
  close(): Promise<void>
}

/** Builds and starts every seed component from a validated config. */
export async function startSeed(config: SeedConfig, c: SeedComponents): Promise<RunningSeed> {
  const { logger } = c
  if (config.requireAdmission && c.admission === undefined) throw new TypeError('startSeed: admission is required but no admission state was given')
  const store = await ContentStore.open({ dir: join(config.dataDir, 'content') }, { logger: logger.child({ component: 'store' }) })
  const gauges: SeedGaugeSources = { cacheBytes: () => store.bytes, cacheCapacity: () => config.cache?.sizeBytes ?? 0 }
  const metrics = createSeedMetrics(new Registry(), gauges)
  const stopEvictor =
    config.cache === undefined
      ? async () => {}
      : new Evictor(
          { maxBytes: config.cache.sizeBytes, highWatermark: config.cache.highWatermark, lowWatermark: config.cache.lowWatermark },
          {
            store,
            logger: logger.child({ component: 'evictor' }),
            onEvict: (_digest, bytes) => {
              metrics.evictions.inc()
              metrics.evictedBytes.inc(bytes)
            },
          },
        ).attach()
  const denied = (reason: string): void => metrics.admissionDenied.inc({ reason: boundedLabel(reason, SEED_DENIAL_REASONS) })
  const upstreams = new Map<string, UpstreamRegistry>()
  for (const u of config.upstreams) {
    metrics.upstreamUp.set({ registry: u.ns }, 1)
    upstreams.set(
      u.ns,
      new UpstreamRegistry(
        { ns: u.ns, url: u.url, realmHosts: u.realmHosts, credentials: c.credentials.get(u.ns) },
        {
          logger: logger.child({ component: 'upstream', registry: u.ns }),
          metrics: {
            request: (registry, code) => {
              metrics.upstreamRequests.inc({ registry, code: requestCodeLabel(code) })
              metrics.upstreamUp.set({ registry }, remoteAnswered(code) && !code.startsWith('5') ? 1 : 0)
            },
            bytes: (registry, n) => metrics.upstreamBytes.inc({ registry }, n),
          },
        },
      ),
    )
  }
  const blobs = new CachingSource(
    {},
    {
      store,
      source: new UpstreamBlobSource(upstreams),
      logger: logger.child({ component: 'fill' }),
      onFillSettled: (outcome) => metrics.fills.inc({ outcome }),
    },
  )
  gauges.inflightFills = () => blobs.inflight
  const manifests = new ManifestService(
    { tagTtlMs: config.tagTtlMs, staleAfterMs: STALE_AFTER_MS },
    { store, upstreams, logger: logger.child({ component: 'manifests' }), onStaleTag: (registry) => metrics.staleTagsServed.inc({ registry }) },
  )
  const readiness = async (): Promise<ReadinessCheck[]> => [await storeReadiness(store)]
  const admissionRoutes =
    c.admission === undefined
      ? undefined
      : admissionHandler(
          { issuer: config.issuer, audience: config.audience, tokenTtlMs: config.tokenTtlMs },
          {
            admission: c.admission,
            oidc: c.oidc,
            logger: logger.child({ component: 'admission' }),
            onIssued: (how) => metrics.admissionIssued.inc({ how }),
            onDenied: denied,
          },
        )
  // The fleet's bootstrap node: it presents a token of its own, and gates peers when admission is required.
  const p2p = await startSeedNode(config, {
    logger,
    admission: c.admission,
    verifier: admissionRoutes?.verifier,
    onRefused: (_peer, reason) => denied(reason),
  })
  const { node } = p2p
  gauges.dhtPeers = () => node.routingTableSize()
  gauges.dhtStoreRecords = () => node.dhtStoreRecords()
  const bootstrap = bootstrapHandler(node)
  const planner = new FanoutPlanner(
    { direct: config.fanoutDirect, children: config.fanoutChildren },
    { online: (peer) => node.libp2p.getConnections(peerIdFromString(peer)).length > 0 },
  )
  const verifier = admissionRoutes?.verifier
  const fanout = fanoutHandler({
    planner,
    verify: verifier === undefined ? undefined : (token) => verifier.verify(token),
    libp2p: node.libp2p,
    logger: logger.child({ component: 'fanout' }),
    onDecision: (d) => metrics.fanout.inc({ from: d.from }),
  })
  const server = createRegistryServer(
    { defaultNs: config.defaultNs, registries: new Set(upstreams.keys()), challenge: (req) => seedChallenge(req, config.audience) },
    {
      blobs,
      manifests,
      logger: logger.child({ component: 'registry' }),
      health: healthHandler({ readiness }),
      routes: (req, res) => bootstrap(req, res) || fanout(req, res) || (admissionRoutes?.handle(req, res) ?? false),
      authorize:
        config.requireAdmission && admissionRoutes !== undefined && c.admission !== undefined
          ? seedAuthorizer({ verifier: admissionRoutes.verifier, audit: c.admission.audit, revocations: c.admission.revocations, onDenied: denied })
          : undefined,
      events: {
        request: (e) => metrics.requestDuration.observe({ method: methodLabel(e.method), route: e.route, status: statusLabel(e.status) }, e.seconds),
        manifestBytes: (n) => metrics.servedBytes.inc({ kind: 'manifest' }, n),
        blobBytes: (n) => metrics.servedBytes.inc({ kind: 'blob' }, n),
      },
    },
  )
  const url = await listen(server, config.listen.host, config.listen.port)
  let ops: Server | undefined
  let opsUrl: string | undefined
  if (config.metricsListen !== undefined) {
    ops = createOpsServer({ readiness, metrics: metrics.registry })
    opsUrl = await listen(ops, config.metricsListen.host, config.metricsListen.port)
  }
  logger.info({ url, opsUrl, p2p: node.multiaddrs(), upstreams: [...upstreams.keys()], credentials: [...c.credentials.keys()] }, 'seed listening')
  return {
    url,
    opsUrl,
    metrics,
    async close() {
      await closeServers(server, ops)
      await p2p.stop()
      await c.admission?.close()
      await Promise.all([...upstreams.values()].map((u) => u.close()))
      await stopEvictor()
      await store.close()
    },
  }
}
