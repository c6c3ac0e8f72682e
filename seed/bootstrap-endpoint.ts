import type { IncomingMessage, ServerResponse } from 'node:http'
import type { PollenNode } from '../content/p2p/node.js'

/** The JSON body of `GET /v1/bootstrap`. */
export interface BootstrapInfo {
  peerId: string
  /** Addresses of the seed's libp2p node, each ending in /p2p/<peerId>. */
  multiaddrs: string[]
}

/**
 * Answers `GET /v1/bootstrap` with the seed node's PeerId and multiaddrs, so an agent needs
 * only `--seed` to join the fleet's DHT. Returns false for other paths.
 */
export function bootstrapHandler(node: Pick<PollenNode, 'peerId' | 'multiaddrs'>): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if ((req.url ?? '').split('?')[0] !== '/v1/bootstrap') return false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': 0 })
      res.end()
      return true
    }
    const body = JSON.stringify({ peerId: node.peerId, multiaddrs: node.multiaddrs() } satisfies BootstrapInfo)
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' })
    res.end(req.method === 'HEAD' ? undefined : body)
    return true
  }
}
