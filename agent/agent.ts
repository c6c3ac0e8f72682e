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
import type { AgentConfig } from './config.js'
import { createAgentMetrics, type AgentGaugeSources, type AgentMetrics } from './metrics.js'
import type { Remote } from './remote.js'

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
  close(): Promise<void>
}

/**
 * Builds and starts the agent: store → evictor → read-through cache over the remote →
 * manifest service → mirror server (and ops server). The read path is a chain of BlobSources,
 * so the peer source slots in between the cache and the remote.
 */
export async function startAgent(config: AgentConfig, c: AgentComponents): Promise<RunningAgent> {
  const { logger } = c
  const store = await ContentStore.open({ dir: join(config.dataDir, 'content') }, { logger: logger.child({ component: 'store' }) })
  const gauges: AgentGaugeSources = { cacheBytes: () => store.bytes, cacheCapacity: () => config.cacheSize }
  const metrics = createAgentMetrics(new Registry(), gauges)
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
  const detachEvictor = evictor.attach()
  // Set once the p2p node exists: a new token is presented to every peer, a new revocation list re-checks them.
  let presentToken = (): void => {}
  let recheckPeers = (): void => {}
  const tokens =
    config.seed !== undefined && (c.joinToken !== undefined || config.oidcTokenFile !== undefined)
      ? new TokenManager(
          { seedUrl: config.seed, dataDir: config.dataDir, issuer: config.seedIssuer, joinToken: c.joinToken, oidcTokenFile: config.oidcTokenFile },
          { privateKey: await loadOrCreateIdentity(config.dataDir), logger: logger.child({ component: 'admission' }), onRefresh: () => presentToken() },
        )
      : undefined
  await tokens?.start()
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
            metrics.admissionDenied.inc({ reason })
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
                onRefused: (_peer, reason) => metrics.admissionDenied.inc({ reason }),
                onUnknownKey: () => peerAdmission.jwks.refreshSoon(),
              },
      })
    : undefined
  if (p2p !== undefined) {
    gauges.peers = () => p2p.node.connectedPeers()
    gauges.dhtPeers = () => p2p.node.routingTableSize()
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
      onMismatch: (source) => metrics.digestMismatch.inc({ source }),
    },
  )
  gauges.inflightFills = () => blobs.inflight
  const manifests = new ManifestService(
    { tagTtlMs: config.tagTtlMs, staleAfterMs: STALE_AFTER_MS },
    {
      store,
      upstreams: remote.manifests,
      logger: logger.child({ component: 'manifests' }),
      onStaleTag: (registry) => metrics.staleTagsServed.inc({ registry }),
      onDigestMismatch: () => metrics.digestMismatch.inc({ source: remote.name }),
    },
  )
  const readiness = async (): Promise<ReadinessCheck[]> => [
    await storeReadiness(store),
    ...(tokens === undefined ? [] : [{ name: 'admission', ok: tokens.valid(), detail: tokens.valid() ? undefined : 'no valid admission token' }]),
  ]
  const server = createRegistryServer(
    { defaultNs: config.defaultNs, neverChallenge: true },
    {
      blobs,
      manifests,
      logger: logger.child({ component: 'mirror' }),
      health: healthHandler({ readiness }),
      authorize:
        c.mirrorToken === undefined ? undefined : mirrorTokenCheck(c.mirrorToken, () => metrics.admissionDenied.inc({ reason: 'mirror-token' })),
      events: {
        request: (e) => {
          metrics.requests.inc({ kind: e.route, code: String(e.status) })
          metrics.requestDuration.observe({ kind: e.route }, e.seconds)
        },
        manifestBytes: (n) => metrics.manifestBytes.inc(n),
        blobBytes: (n, source) => metrics.blobBytes.inc({ source }, n),
      },
    },
  )
  await p2p?.serve(blobs)
  const url = await listen(server, config.listen.host, config.listen.port)
  let ops: Server | undefined
  let opsUrl: string | undefined
  if (config.metricsListen !== undefined) {
    ops = createOpsServer({ readiness, metrics: metrics.registry })
    opsUrl = await listen(ops, config.metricsListen.host, config.metricsListen.port)
  }
  logger.info(
    { url, opsUrl, remote: remote.name, seed: config.seed, cacheSize: config.cacheSize, cached: store.bytes, peerId: p2p?.node.peerId, p2p: p2p?.node.multiaddrs() },
    'agent listening',
  )
  return {
    url,
    opsUrl,
    metrics,
    async close() {
      detachEvictor()
      await closeServers(server, ops)
      await p2p?.stop()
      await remote.close()
      await tokens?.stop()
      await peerAdmission?.stop()
      await store.close()
    },
  }
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
