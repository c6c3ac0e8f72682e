import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { loadOrCreateIdentity } from '../content/p2p/identity.js'
import { createPollenNode, type PollenNode } from '../content/p2p/node.js'
import type { PeerTokenVerifier } from '../content/p2p/admission-gate.js'
import type { AdmissionGateReason } from '../protocol/admission-frames.js'
import type { Admission } from './admission/admission.js'
import type { SeedConfig } from './config.js'
import { SelfToken } from './self-token.js'

/** How often the seed re-reads its revocation list and re-checks the peers it admitted. */
export const REVOCATION_RECHECK_MS = 15_000

export interface SeedNodeComponents {
  logger: Logger
  /** The seed's admission state: with it the seed presents a token of its own to agents. */
  admission?: Admission
  /** Checks agents' tokens; with it (and config.requireAdmission) the seed gates connections. */
  verifier?: PeerTokenVerifier
  onRefused?: (peerId: string, reason: AdmissionGateReason) => void
}

export interface SeedNode {
  node: PollenNode
  stop(): Promise<void>
}

/**
 * Starts the seed's libp2p node, the fleet's bootstrap node. With admission state it signs
 * itself an admission token (sub = its PeerId) and presents it on every connection, so that
 * enrolled agents admit it; when admission is required it also gates connections like an
 * enrolled agent: a peer without a valid token within the deadline is disconnected, kept out
 * of the DHT and refused for a while. Throws when the identity or the first token cannot be made.
 */
export async function startSeedNode(config: SeedConfig, c: SeedNodeComponents): Promise<SeedNode> {
  const logger = c.logger.child({ component: 'p2p' })
  const privateKey = await loadOrCreateIdentity(config.dataDir)
  let node: PollenNode | undefined
  const selfToken =
    c.admission === undefined
      ? undefined
      : new SelfToken(
          { issuer: config.issuer, audience: config.audience, peerId: peerIdFromPrivateKey(privateKey).toString(), ttlMs: config.tokenTtlMs },
          { keys: c.admission.keys, logger, onRefresh: () => node?.presentToken() },
        )
  await selfToken?.start()
  const revocations = c.admission?.revocations
  const gated = config.requireAdmission && c.verifier !== undefined
  node = await createPollenNode(
    { privateKey, listen: config.p2pListen, announce: config.p2pAnnounce.length > 0 ? config.p2pAnnounce : undefined },
    {
      logger,
      token: selfToken === undefined ? undefined : () => selfToken.current(),
      admission:
        !gated || c.verifier === undefined
          ? undefined
          : { verifier: c.verifier, revoked: revocations === undefined ? undefined : (peerId) => revocations.isRevokedCached(peerId), onRefused: c.onRefused },
    },
  )
  const started = node
  const recheck =
    started.gate === undefined || revocations === undefined
      ? undefined
      : setInterval(() => {
          void revocations
            .snapshot()
            .then(() => started.gate?.recheck())
            .catch((err: unknown) => logger.debug({ err: (err as Error).message }, 'could not re-read the revocation list'))
        }, REVOCATION_RECHECK_MS)
  recheck?.unref()
  return {
    node: started,
    async stop() {
      clearInterval(recheck)
      selfToken?.stop()
      await started.stop()
    },
  }
}
