/**
 * Puts connected DHT peers back into the routing table when kad-dht dropped them.
 *
 * kad-dht (16.x) adds a peer to its routing table once, when the peer connects (or answers
 * a query), and only after pinging it: a new contact that does not answer the ping within
 * the adaptive timeout is left out. On a busy node (a fleet starting at once, a CI machine
 * hashing blobs) that ping times out, the connection stays open, and nothing ever tries
 * again: the node keeps its connection to the seed and an empty routing table, so it
 * neither finds nor announces anything. This check, run periodically, queues another
 * routing-table update for every connected peer that speaks our DHT protocol, is allowed
 * in (admitted, when peers are gated) and is missing from the table.
 */
import type { PeerId } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'

/** The parts of kad-dht's implementation (not its public interface) the refill uses. */
interface RefillInternals {
  find(peer: PeerId): Promise<PeerId | undefined>
  queueRoutingTableUpdate(peer: PeerId): void
}

export interface RefillNetwork {
  /** Peers we hold at least one open connection to. */
  connectedPeers(): PeerId[]
  /** The protocols the peer announced (identify), empty when unknown. */
  protocols(peer: PeerId): Promise<string[]>
  /** False for a peer that must stay out of the routing table (not admitted). */
  allowed(peer: PeerId): boolean
}

export type RoutingTableRefill = () => Promise<number>

/**
 * Returns the check: it resolves with how many peers it queued (0 when nothing was missing).
 * Returns undefined when this kad-dht lacks the internals (the node then works as kad-dht
 * alone does).
 */
export function routingTableRefill(dht: KadDHT, dhtProtocol: string, network: RefillNetwork): RoutingTableRefill | undefined {
  const table = (dht as unknown as { routingTable?: Partial<RefillInternals> }).routingTable
  if (typeof table?.find !== 'function' || typeof table.queueRoutingTableUpdate !== 'function') return undefined
  const rt = table as RefillInternals
  return async () => {
    let queued = 0
    for (const peer of network.connectedPeers()) {
      if (!network.allowed(peer)) continue
      if ((await rt.find(peer)) !== undefined) continue
      const protocols = await network.protocols(peer).catch((): string[] => [])
      if (!protocols.includes(dhtProtocol)) continue
      rt.queueRoutingTableUpdate(peer)
      queued++
    }
    return queued
  }
}
