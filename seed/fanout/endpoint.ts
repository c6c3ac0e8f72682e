import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { AdmissionDeniedError } from '../../protocol/admission.js'
import { DigestInvalidError } from '../../protocol/errors.js'
import { isLoopbackHost } from '../../protocol/loopback.js'
import { FANOUT_PATH_PREFIX, fanoutDigest, type FanoutAnswer } from '../../protocol/fanout.js'
import { toOciError } from '../../protocol/oci-errors.js'
import type { PollenLibp2p } from '../../content/p2p/node.js'
import { bearerToken } from '../admission/authorize.js'
import type { FanoutDecision, FanoutPlanner } from './planner.js'

export interface FanoutEndpointComponents {
  planner: FanoutPlanner
  /** Checks an admission token and returns its claims; throws AdmissionDeniedError. Absent: nobody is named (every answer is "from the seed"). */
  verify?: (token: string | undefined) => Promise<{ sub: string }>
  /** The seed's libp2p node, for the addresses of a parent. */
  libp2p: PollenLibp2p
  logger: Logger
  onDecision?: (decision: FanoutDecision) => void
}

/**
 * Answers `GET /v1/fanout/<digest>` (protocol/fanout.ts) for the agent named by the request's
 * admission token. Returns false for other paths. A request without a valid token gets 401
 * with the OCI error JSON; a bad digest 400.
 */
export function fanoutHandler(c: FanoutEndpointComponents): (req: IncomingMessage, res: ServerResponse) => boolean {
  const answer = async (req: IncomingMessage, path: string): Promise<FanoutAnswer> => {
    const digest = fanoutDigest(path)
    if (digest === undefined) throw new DigestInvalidError(path.slice(FANOUT_PATH_PREFIX.length, FANOUT_PATH_PREFIX.length + 80))
    if (c.verify === undefined) return { parent: null }
    const { sub } = await c.verify(bearerToken(req.headers.authorization))
    const decision = c.planner.assign(digest, sub)
    c.onDecision?.(decision)
    if (decision.from === 'seed') return { parent: null }
    c.logger.debug({ digest, peer: sub, parent: decision.parent, depth: decision.depth }, 'fan-out: agent follows a parent')
    return { parent: { peerId: decision.parent, multiaddrs: await addressesOf(c.libp2p, decision.parent, sub) } }
  }
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? ''
    if (!path.startsWith(FANOUT_PATH_PREFIX)) return false
    if (req.method !== 'GET') {
      res.writeHead(405, { Allow: 'GET', 'Content-Length': 0 })
      res.end()
      return true
    }
    answer(req, path).then(
      (body) => send(res, 200, body),
      (err: unknown) => {
        if (!(err instanceof AdmissionDeniedError) && !(err instanceof DigestInvalidError)) c.logger.warn({ err: (err as Error).message }, 'fan-out answer failed')
        const { status, body } = toOciError(err)
        send(res, status, body)
      },
    )
    return true
  }
}

/**
 * The parent's listen addresses as the seed knows them. Loopback addresses are left out
 * unless the asking agent itself reaches the seed over loopback (one host): elsewhere they
 * name the asker's own host.
 */
async function addressesOf(libp2p: PollenLibp2p, parent: string, asker: string): Promise<string[]> {
  const askerViaLoopback = libp2p.getConnections(peerIdFromString(asker)).some((conn) => isLoopback(conn.remoteAddr))
  try {
    const peer = await libp2p.peerStore.get(peerIdFromString(parent))
    return peer.addresses
      .map((a) => a.multiaddr)
      .filter((ma) => askerViaLoopback || !isLoopback(ma))
      .slice(0, 16)
      .map((ma) => ma.toString())
  } catch {
    return []
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json), 'Cache-Control': 'no-store' })
  res.end(json)
}

function isLoopback(ma: Multiaddr): boolean {
  const first = ma.getComponents()[0]
  return (first?.name === 'ip4' || first?.name === 'ip6') && isLoopbackHost(first.value ?? '')
}
