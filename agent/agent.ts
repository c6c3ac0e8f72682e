import type { Server } from 'node:http'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Registry } from 'prom-client'
import { CachingSource } from '../content/caching-source.js'
import { Evictor } from '../content/evictor.js'
import { ManifestService } from '../content/manifest-service.js'
import { closeServers, createOpsServer, healthHandler, listen, storeReadiness, type ReadinessCheck } from '../content/ops-server.js'
import { createRegistryServer } from '../content/registry-server.js'
import { ContentStore } from '../content/store.js'
import { STALE_AFTER_MS } from './constants.js'
import { FallbackSource } from '../content/fallback-source.js'
import { startP2P } from './p2p/p2p.js'
import { mirrorTokenCheck } from './mirror-token.js'
import { TokenManager } from './admission/token-manager.js'
import { JwksCache } from './admission/jwks-cache.js'
import { RevocationCache } from './admission/revocation-cache.js'
import { scopeCoversAny } from './admission/repository-scope.js'
import { AdmissionDeniedError } from '../protocol/admission.js'
import { AdmissionVerifier, type AdmissionJwks } from '../content/admission/verifier.js'
import { loadOrCreateIdentity } from '../content/p2p/identity.js'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { AgentConfig } from './config.js'
import { AGENT_DENIAL_REASONS, BYTE_SOURCES, createAgentMetrics, registryLabeller, type AgentGaugeSources, type AgentMetrics } from './metrics.js'
import type { Remote } from './remote.js'
import { boundedLabel, statusLabel } from '../content/metric-conventions.js'
import { isLoopbackHost } from '../protocol/loopback.js'
import { SeedReachability } from './seed-reachability.js'
import { RecentLog, recordingLogger } from './status-log.js'
import { agentMode, packageVersion, statusHandler, statusReport } from './status.js'
import type { AgentStatusReport } from './status-report.js'

export interface AgentComponents {
  logger: Logger
  /** Builds the agent's remote (the seed, or upstreams when standalone) with the agent's metrics and admission token. */
  remote: (metrics: AgentMetrics, bearer: () => string | undefined) => Remote
  /** A join token to enroll with the seed (admission); without one the agent sends no token. */
  joinToken?: string
  /** Clients must present this token (the mirror listens beyond loopback). */
  mirrorToken?: string
}

export interface RunningAgent {
  /** `http://host:port` of the mirror. */
  url: string
  /** `http://host:port` of the ops listener, when configured. */
  opsUrl?: string
  metrics: AgentMetrics
  /** What `GET /v1/status` answers now. */
  status(): AgentStatusReport
  close(): Promise<void>
}

/**
 * Builds and starts the agent: store → evictor → read-through cache over the remote →
 * manifest service → mirror server (and ops server). The read path is a chain of BlobSources,
 * so the peer source slots in between the cache and the remote.
 */
export async function startAgent(config: AgentConfig, c: AgentComponents): Promise<RunningAgent> {
  const startedAt = Date.now()
  // Warnings and errors of every component are also kept for /v1/status.
  const recent = new RecentLog()
  const logger = recordingLogger(c.logger, recent)
  const store = await ContentStore.open({ dir: join(config.dataDir, 'content') }, { logger: logger.child({ component: 'store' }) })
  // The seed is probed for pollen_agent_seed_up, /readyz (cache-only while it is down) and /v1/status.
  const seedHealth = config.seed === undefined ? undefined : new SeedReachability({ seedUrl: config.seed }, { logger: logger.child({ component: 'seed-probe' }) })
  const seedProbed = seedHealth?.start()
  let tokenExpiresAt: number | undefined
  const gauges: AgentGaugeSources = {
    cacheBytes: () => store.bytes,
    cacheCapacity: () => config.cacheSize,
    tokenExpiresAt: () => tokenExpiresAt,
    seedUp: () => seedHealth?.reachable === true,
  }
  const enrolls = config.seed !== undefined && (c.joinToken !== undefined || config.oidcTokenFile !== undefined)
  const metrics = createAgentMetrics(new Registry(), gauges, { seed: config.seed !== undefined, enrolled: enrolls })
  const registryLabel = registryLabeller(config.defaultNs)
  const denied = (reason: string | undefined): void => metrics.admissionDenied.inc({ reason: boundedLabel(reason, AGENT_DENIAL_REASONS) })
  const evictor = new Evictor(
    { maxBytes: config.cacheSize, highWatermark: config.highWatermark, lowWatermark: config.lowWatermark },
    {
      store,
      logger: logger.child({ component: 'evictor' }),
      onEvict: (_digest, bytes) => {
        metrics.evictions.inc()
        metrics.evictedBytes.inc(bytes)
      },
    },
  )
  const stopEvictor = evictor.attach()
  // Set once the p2p node exists: a new token is presented to every peer, a new revocation list re-checks them.
  let presentToken = (): void => {}
  let recheckPeers = (): void => {}
  // An agent that enrolls has an identity even without p2p: its tokens are bound to its PeerId.
  const identity = enrolls ? await loadOrCreateIdentity(config.dataDir) : undefined
  const tokens =
    config.seed !== undefined && identity !== undefined
      ? new TokenManager(
          { seedUrl: config.seed, dataDir: config.dataDir, issuer: config.seedIssuer, joinToken: c.joinToken, oidcTokenFile: config.oidcTokenFile },
          {
            privateKey: identity,
            logger: logger.child({ component: 'admission' }),
            onRefresh: (expiresAt) => {
              tokenExpiresAt = expiresAt
              presentToken()
            },
          },
        )
      : undefined
  await tokens?.start()
  await seedProbed
  const bearer = (): string | undefined => tokens?.current()
  // An enrolled agent serves only admitted peers: their token, checked with the seed's keys
  // (cached on disk, so this keeps working while the seed is down) and revocation list, whose
  // scope covers a repository the blob was seen in.
  const peerAdmission = tokens === undefined || config.seed === undefined ? undefined : await startPeerAdmission(config, config.seed, logger, () => recheckPeers())
  const authorize =
    peerAdmission === undefined
      ? undefined
      : async (token: string | undefined, remotePeer: string, repositories: readonly string[] | undefined): Promise<void> => {
          try {
            const claims = await peerAdmission.verifier.verify(token, { peerId: remotePeer })
            if (repositories !== undefined && !scopeCoversAny(claims.scope, repositories)) {
              throw new AdmissionDeniedError('scope', 'token scope covers no repository this blob was seen in')
            }
          } catch (err) {
            const reason = (err as { reason?: string }).reason ?? 'error'
            if (reason === 'unknown-key') peerAdmission.jwks.refreshSoon()
            denied(reason)
            throw err
          }
        }
  const remote = c.remote(metrics, bearer)
  const p2p = config.p2p.enabled
    ? await startP2P(config.p2p, {
        logger,
        store,
        dataDir: config.dataDir,
        seedUrl: config.seed,
        onLookup: (seconds) => metrics.dhtLookupDuration.observe(seconds),
        onUploadBytes: (n) => metrics.peerUploadBytes.inc(n),
        token: bearer,
        authorize,
        // An enrolled agent also gates connections: a peer that shows no valid token within
        // the deadline is disconnected, kept out of the DHT and refused for a while.
        admission:
          peerAdmission === undefined
            ? undefined
            : {
                verifier: peerAdmission.verifier,
                revoked: peerAdmission.revoked,
                onRefused: (_peer, reason) => denied(reason),
                onUnknownKey: () => peerAdmission.jwks.refreshSoon(),
              },
      })
    : undefined
  if (p2p !== undefined) {
    gauges.peers = () => p2p.node.connectedPeers()
    gauges.dhtPeers = () => p2p.node.routingTableSize()
    gauges.dhtStoreRecords = () => p2p.node.dhtStoreRecords()
    presentToken = () => p2p.node.presentToken()
    recheckPeers = () => p2p.node.gate?.recheck()
  }
  const blobs = new CachingSource(
    {},
    {
      store,
      // The read path: cache → peers → seed (or upstream when standalone).
      source: p2p === undefined ? remote.blobs : new FallbackSource([p2p.peerSource, remote.blobs], { logger: logger.child({ component: 'sources' }) }),
      logger: logger.child({ component: 'fill' }),
      onFillSettled: (outcome, _err, digest) => {
        metrics.fills.inc({ outcome })
        // A failed fill was announced to peers while it ran; take that back.
        if (outcome === 'failed') void p2p?.router.withdraw(digest.value).catch(() => {})
      },
      onMismatch: (source) => metrics.digestMismatch.inc({ source: boundedLabel(source, BYTE_SOURCES) }),
    },
  )
  gauges.inflightFills = () => blobs.inflight
  const manifests = new ManifestService(
    { tagTtlMs: config.tagTtlMs, staleAfterMs: STALE_AFTER_MS },
    {
      store,
      upstreams: remote.manifests,
      logger: logger.child({ component: 'manifests' }),
      onStaleTag: (registry) => metrics.staleTagsServed.inc({ registry: registryLabel(registry) }),
      onDigestMismatch: () => metrics.digestMismatch.inc({ source: remote.name }),
    },
  )
  // Ready: the store is writable and, when enrolled, the token valid. An unreachable seed does not
  // make the agent unready: it serves its cache and its peers (mode cache-only), and containerd
  // falls back to the registry for the rest.
  const mode = (): string => agentMode(config.seed, seedHealth)
  const readiness = async (): Promise<ReadinessCheck[]> => [
    await storeReadiness(store),
    ...(tokens === undefined ? [] : [{ name: 'admission', ok: tokens.valid(), detail: tokens.valid() ? undefined : 'no valid admission token' }]),
    ...(seedHealth === undefined ? [] : [seedCheck(seedHealth)]),
  ]
  const version = await packageVersion()
  const ownPeerId = p2p?.node.peerId ?? (identity === undefined ? undefined : peerIdFromPrivateKey(identity).toString())
  const status = (): AgentStatusReport =>
    statusReport({
      version,
      seedUrl: config.seed,
      seed: seedHealth,
      peerId: ownPeerId,
      token: tokens === undefined ? undefined : { valid: () => tokens.valid(), expiresAt: () => tokenExpiresAt },
      cache: { bytes: () => store.bytes, capacity: config.cacheSize },
      peers: p2p === undefined ? undefined : { connected: () => p2p.node.connectedPeers(), routingTable: () => p2p.node.routingTableSize() },
      recent,
      startedAt,
    })
  // On the mirror listener, /v1/status answers loopback clients, and others only with the mirror token.
  const mirrorCheck = c.mirrorToken === undefined ? undefined : mirrorTokenCheck(c.mirrorToken, () => denied('mirror-token'))
  const mirrorStatus = statusHandler(status, async (req) => {
    if (mirrorCheck === undefined || isLoopbackHost(req.socket.remoteAddress ?? '')) return true
    return mirrorCheck(req).then(
      () => true,
      () => false,
    )
  })
  const server = createRegistryServer(
    { defaultNs: config.defaultNs, neverChallenge: true },
    {
      blobs,
      manifests,
      logger: logger.child({ component: 'mirror' }),
      health: healthHandler({ readiness, mode }),
      routes: mirrorStatus,
      authorize: mirrorCheck,
      events: {
        request: (e) => {
          metrics.requests.inc({ kind: e.route, code: statusLabel(e.status) })
          metrics.requestDuration.observe({ kind: e.route }, e.seconds)
        },
        manifestBytes: (n) => metrics.manifestBytes.inc(n),
        blobBytes: (n, source) => metrics.blobBytes.inc({ source: boundedLabel(source, BYTE_SOURCES) }, n),
      },
    },
  )
  await p2p?.serve(blobs)
  const url = await listen(server, config.listen.host, config.listen.port)
  let ops: Server | undefined
  let opsUrl: string | undefined
  if (config.metricsListen !== undefined) {
    ops = createOpsServer({ readiness, mode, metrics: metrics.registry, routes: statusHandler(status) })
    opsUrl = await listen(ops, config.metricsListen.host, config.metricsListen.port)
  }
  logger.info(
    { url, opsUrl, version, mode: mode(), remote: remote.name, seed: config.seed, cacheSize: config.cacheSize, cached: store.bytes, peerId: p2p?.node.peerId, p2p: p2p?.node.multiaddrs() },
    'agent listening',
  )
  return {
    url,
    opsUrl,
    metrics,
    status,
    async close() {
      const evictorStopped = stopEvictor()
      seedHealth?.stop()
      await closeServers(server, ops)
      await p2p?.stop()
      await remote.close()
      await tokens?.stop()
      await peerAdmission?.stop()
      await evictorStopped
      await store.close()
    },
  }
}

/** The `seed` readiness check: always ok (an agent without its seed serves cache-only), saying which. */
function seedCheck(seed: SeedReachability): ReadinessCheck {
  if (seed.reachable) return { name: 'seed', ok: true, detail: 'reachable' }
  if (!seed.unreachable) return { name: 'seed', ok: true, detail: 'not probed yet' }
  return { name: 'seed', ok: true, detail: `${seed.lastError?.message ?? 'unreachable'}; serving cached and peer content only (cache-only)` }
}

/**
 * The seed's keys and revocations, cached and polled, and a verifier over them for peers' tokens.
 * `onRevocationsChange` is called whenever a new revocation list arrives.
 */
async function startPeerAdmission(config: AgentConfig, seedUrl: string, logger: Logger, onRevocationsChange: () => void = () => {}) {
  const jwks = new JwksCache({ seedUrl, dataDir: config.dataDir }, { logger: logger.child({ component: 'jwks' }) })
  const revocations = new RevocationCache({ seedUrl, dataDir: config.dataDir, pollMs: config.revocationPollMs }, { logger: logger.child({ component: 'revocations' }), onChange: () => onRevocationsChange() })
  await Promise.all([jwks.start(), revocations.start()])
  const verifier = new AdmissionVerifier(
    { issuer: config.seedIssuer, audience: config.seedAudience },
    { keys: () => jwks.keys() as AdmissionJwks, revoked: (peerId) => revocations.isRevoked(peerId) },
  )
  return {
    jwks,
    verifier,
    revoked: (peerId: string) => revocations.isRevoked(peerId),
    async stop() {
      await Promise.all([jwks.stop(), revocations.stop()])
    },
  }
}
