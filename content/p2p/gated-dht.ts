/**
 * Keeps unadmitted peers out of kad-dht (16.x). kad-dht learns of peers three ways:
 *  1. the registrar's topology `onConnect` once identify shows a peer speaks the DHT protocol
 *     (→ `onPeerConnect` → `peerInfoMapper` → routing table);
 *  2. peers named in answers (closer peers, providers) (→ `onPeerConnect` → `peerInfoMapper`);
 *  3. every peer that answered one of our queries (straight into the routing table).
 * It also answers inbound DHT requests from any connected peer, and names peers from its
 * routing table and provider store in its answers (through `peerInfoMapper`).
 * So: (1) is held back until the peer is admitted (a registrar decorator), (2) and the
 * answers go through a mapper that strips unadmitted peers, inbound DHT streams wait for the
 * peer's admission, and (3) is policed on the routing table's `peer:add` event.
 */
import type { PeerId, PeerInfo, Stream, Connection, Topology } from '@libp2p/interface'
import { passthroughMapper, type KadDHT, type KadDHTComponents, type PeerInfoMapper } from '@libp2p/kad-dht'
import type { Logger } from 'pino'

/** What the DHT wrappers need from the gate. */
export interface DhtAdmission {
  readonly deadlineMs: number
  isAdmitted(peerId: string): boolean
  isPending(peerId: string): boolean
  whenAdmitted(peerId: string, signal: AbortSignal): Promise<boolean>
}

/** Extra wait beyond the gate's deadline before a held-back DHT stream or topology event gives up. */
const WAIT_MARGIN_MS = 1_000

/**
 * kad-dht's components, with a registrar whose inbound stream handlers run only once the
 * remote peer is admitted (others' streams are reset) and whose topologies hear of a peer
 * (`onConnect`) only once it is admitted.
 */
export function gatedDhtComponents(components: KadDHTComponents, gate: DhtAdmission): KadDHTComponents {
  const registrar = components.registrar
  const wait = (peer: PeerId): Promise<boolean> => gate.whenAdmitted(peer.toString(), AbortSignal.timeout(gate.deadlineMs + WAIT_MARGIN_MS))
  const gated: KadDHTComponents['registrar'] = new Proxy(registrar, {
    get(target, prop) {
      if (prop === 'handle') {
        return (protocol: string, handler: (stream: Stream, connection: Connection) => void | Promise<void>, options?: object) =>
          target.handle(
            protocol,
            async (stream, connection) => {
              if (!(await wait(connection.remotePeer))) {
                stream.abort(new Error('peer is not admitted'))
                return
              }
              await handler(stream, connection)
            },
            options,
          )
      }
      if (prop === 'register') {
        return (protocol: string, topology: Topology, options?: object) =>
          target.register(
            protocol,
            {
              ...topology,
              onConnect: (peer: PeerId, connection: Connection) => {
                void wait(peer).then((ok) => (ok ? topology.onConnect?.(peer, connection) : undefined)).catch(() => {})
              },
            },
            options,
          )
      }
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
  return new Proxy(components, {
    get(target, prop) {
      return prop === 'registrar' ? gated : Reflect.get(target, prop)
    },
  })
}

/** A peerInfoMapper that keeps admitted peers' addresses and strips everyone else's (kad-dht then ignores them). */
export function admittedPeersMapper(gate: DhtAdmission, inner: PeerInfoMapper = passthroughMapper): PeerInfoMapper {
  return (peer: PeerInfo) => (gate.isAdmitted(peer.id.toString()) ? inner(peer) : { ...peer, multiaddrs: [] })
}

/** The parts of kad-dht's implementation (not its public interface) the guard uses. */
interface RoutingTableInternals {
  size: number
  remove(peer: PeerId): Promise<void>
  find(peer: PeerId): Promise<PeerId | undefined>
  addEventListener(type: 'peer:add', listener: (evt: CustomEvent<PeerId>) => void): void
  removeEventListener(type: 'peer:add', listener: (evt: CustomEvent<PeerId>) => void): void
}

export interface RoutingTableGuard {
  /** Peers in the routing table. */
  size(): number
  /** True when the peer is in the routing table. */
  has(peer: PeerId): Promise<boolean>
  /** Removes the peer from the routing table (nothing happens when it is not there). */
  forget(peer: PeerId): Promise<void>
  stop(): void
}

/**
 * Removes any peer kad-dht adds to its routing table that is neither admitted nor within its
 * admission deadline (the gate removes those when it refuses them). Throws TypeError when
 * this kad-dht has no routing table we can police: better to fail at start than to gate nothing.
 */
export function guardRoutingTable(dht: KadDHT, gate: DhtAdmission, logger: Logger): RoutingTableGuard {
  const table = (dht as unknown as { routingTable?: Partial<RoutingTableInternals> }).routingTable
  if (typeof table?.remove !== 'function' || typeof table.find !== 'function' || typeof table.addEventListener !== 'function') {
    throw new TypeError('kad-dht has no routing table with remove/find/events: cannot keep unadmitted peers out of it')
  }
  const rt = table as RoutingTableInternals
  const onAdd = (evt: CustomEvent<PeerId>): void => {
    const peer = evt.detail.toString()
    if (gate.isAdmitted(peer) || gate.isPending(peer)) return
    logger.debug({ peer }, 'removing an unadmitted peer kad-dht added to its routing table')
    void rt.remove(evt.detail).catch(() => {})
  }
  rt.addEventListener('peer:add', onAdd)
  return {
    size: () => rt.size,
    has: async (peer) => (await rt.find(peer)) !== undefined,
    forget: (peer) => rt.remove(peer),
    stop: () => rt.removeEventListener('peer:add', onAdd),
  }
}
