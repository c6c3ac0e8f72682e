import { multiaddr } from '@multiformats/multiaddr'
import { request } from 'undici'
import type { Logger } from 'pino'
import type { CachingSource } from '../../content/caching-source.js'
import { loadOrCreateIdentity } from '../../content/p2p/identity.js'
import { createPollenNode, type PollenNode } from '../../content/p2p/node.js'
import type { AdmissionGateComponents } from '../../content/p2p/admission-gate.js'
import type { ContentStore } from '../../content/store.js'
import type { P2PConfig } from '../config.js'
import { SEED_BOOTSTRAP_RETRY_MS } from '../constants.js'
import { Advertiser } from './advertiser.js'
import { BlobServer, type AuthorizeBlobRequest } from './blob-server.js'
import { PeerSource } from './peer-source.js'
import { DhtRouter } from './router.js'
import { seedParents } from './seed-parents.js'

export interface P2PComponents {
  logger: Logger
  store: ContentStore
  dataDir: string
  /** The seed, whose /v1/bootstrap names the fleet's bootstrap peer. */
  seedUrl?: string
  onLookup?: (seconds: number, found: number) => void
  onUploadBytes?: (n: number) => void
  /** The admission token sent with blob requests to peers, and presented on every new connection. */
  token?: () => string | undefined
  /**
   * Connection admission (an enrolled agent): peers that present no valid token within the
   * deadline are disconnected, kept out of the DHT and refused for a while. Absent: no gating.
   */
  admission?: Omit<AdmissionGateComponents, 'logger'>
  /** Checks a peer's admission token against its authenticated PeerId and the blob's repositories; absent, every peer is served. */
  authorize?: AuthorizeBlobRequest
}

/** The agent's peer-to-peer side: node, router, the peer source for the read path, and (once serve() ran) the blob server. */
export interface P2P {
  node: PollenNode
  router: DhtRouter
  peerSource: PeerSource
  /** Starts serving blobs to peers and advertising what the store holds. */
  serve(blobs: CachingSource): Promise<void>
  stop(): Promise<void>
}

/**
 * Starts the agent's libp2p node with its persisted identity, bootstrapped from --bootstrap
 * and from the seed's /v1/bootstrap (retried in the background while the agent has no peer,
 * so an agent started while the seed is down joins once it is back).
 */
export async function startP2P(config: P2PConfig, c: P2PComponents): Promise<P2P> {
  const logger = c.logger.child({ component: 'p2p' })
  const fromSeed = c.seedUrl === undefined ? [] : await seedBootstrap(c.seedUrl).catch((err: unknown) => {
    logger.warn({ err: (err as Error).message }, 'could not fetch bootstrap peers from the seed; will retry')
    return []
  })
  const node = await createPollenNode(
    {
      privateKey: await loadOrCreateIdentity(c.dataDir),
      listen: config.listen,
      announce: config.announce.length > 0 ? config.announce : undefined,
      bootstrap: [...config.bootstrap, ...fromSeed],
    },
    { logger, admission: c.admission, token: c.token },
  )
  const gate = node.gate
  const router = new DhtRouter({ libp2p: node.libp2p, logger, onLookup: c.onLookup, accept: gate === undefined ? undefined : (peer) => !gate.isRefused(peer) })
  const advertiser = new Advertiser({ store: c.store, router, logger })
  const peerSource = new PeerSource(
    {},
    {
      libp2p: node.libp2p,
      router,
      logger,
      announce: (digest) => router.provide(digest.value),
      token: c.token,
      admitted: gate === undefined ? undefined : (peer, signal) => gate.whenAdmitted(peer, signal),
      // During a rollout the seed plans who follows whom (seed/fanout/); an enrolled agent asks it.
      askParent: c.seedUrl === undefined || c.token === undefined ? undefined : seedParents(c.seedUrl, { token: c.token, logger }),
    },
  )
  let server: BlobServer | undefined
  const retry =
    c.seedUrl === undefined
      ? undefined
      : setInterval(() => {
          if (node.connectedPeers() > 0) return
          void seedBootstrap(c.seedUrl!)
            .then(async (addrs) => {
              for (const addr of addrs) await node.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(5000) }).catch(() => {})
              if (node.connectedPeers() > 0) logger.info({ peers: node.connectedPeers() }, 'joined the fleet through the seed')
            })
            .catch(() => {})
        }, SEED_BOOTSTRAP_RETRY_MS)
  retry?.unref()
  logger.info({ peerId: node.peerId, addrs: node.multiaddrs(), bootstrap: config.bootstrap.length + fromSeed.length }, 'p2p started')
  return {
    node,
    router,
    peerSource,
    async serve(blobs) {
      server = new BlobServer(
        { maxUploads: config.maxUploads, uploadLimit: config.uploadLimit },
        { libp2p: node.libp2p, store: c.store, blobs, logger, onUploadBytes: c.onUploadBytes, authorize: c.authorize },
      )
      await server.start()
      await advertiser.start()
    },
    async stop() {
      if (retry !== undefined) clearInterval(retry)
      advertiser.stop()
      await server?.stop().catch(() => {})
      await node.stop()
    },
  }
}

/** The seed's bootstrap multiaddrs from `GET /v1/bootstrap`. Throws on failure. */
export async function seedBootstrap(seedUrl: string): Promise<string[]> {
  const res = await request(`${seedUrl}/v1/bootstrap`, { signal: AbortSignal.timeout(3000) })
  if (res.statusCode !== 200) {
    await res.body.dump()
    throw new Error(`seed answered /v1/bootstrap with ${res.statusCode}`)
  }
  const body = (await res.body.json()) as { peerId?: unknown; multiaddrs?: unknown }
  if (typeof body.peerId !== 'string' || !Array.isArray(body.multiaddrs)) throw new Error('seed sent a malformed /v1/bootstrap answer')
  return body.multiaddrs
    .filter((a): a is string => typeof a === 'string' && a.length < 512)
    .map((a) => (a.includes('/p2p/') ? a : `${a}/p2p/${body.peerId as string}`))
}
