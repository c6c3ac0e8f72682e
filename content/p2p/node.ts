// First import, for its side effect: Promise.withResolvers on Node 20 (see node20-shim.ts).
import './node20-shim.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { Identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import type { KadDHT, KadDHTComponents, SingleKadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { AdmissionGate, type AdmissionGateComponents, type AdmissionGateInit } from './admission-gate.js'
import { startAdmissionExchange } from './admission-exchange.js'
import { CompactMemoryDatastore } from './compact-datastore.js'
import { admittedPeersMapper, gatedDhtComponents, guardRoutingTable, type RoutingTableGuard } from './gated-dht.js'
import { routingTableRefill } from './routing-table-refill.js'

/** The p2p layer's defaults, in one place. */
export const DEFAULT_P2P_LISTEN = ['/ip4/127.0.0.1/tcp/0']
export const DEFAULT_DHT_PROTOCOL = '/pollen/kad/1.0.0'
/** How often the node checks whether it has lost every peer, or its routing table lost connected ones. */
export const DEFAULT_REBOOTSTRAP_CHECK_MS = 3_000
/** Deadline for one round of bootstrap dials. */
export const BOOTSTRAP_DIAL_TIMEOUT_MS = 5_000
/** kad-dht's own default is 5 connection attempts per second per host: too few for a fleet restarting at once. */
export const INBOUND_CONNECTION_THRESHOLD = 100
export const MAX_INCOMING_PENDING_CONNECTIONS = 64
/**
 * kad-dht holds every query until its first self-query has run, and starts
 * that one 1 s after start by default: a fresh agent's first provide then
 * waits ≥ 1 s. The self-query still waits for a first routing-table peer.
 */
export const DHT_INITIAL_SELF_QUERY_MS = 100
const BOOTSTRAP_TAG = 'pollen-bootstrap'
/** A routing table below this many peers (kad-dht's K) is refreshed again, first after REFRESH_MIN_PAUSE_MS… */
const ROUTING_TABLE_FULL = 20
const REFRESH_MIN_PAUSE_MS = 10_000
/** …then after doubling pauses up to this one. */
const REFRESH_MAX_PAUSE_MS = 10 * 60_000
/**
 * How often libp2p pings each open connection (its default: 10 s). Each ping opens a stream
 * (multistream-select, Noise, Yamux, a peer-store write at both ends): in a fleet where every
 * agent holds a connection to every other, 10 s made idle agents spend ~30 ms of CPU per second
 * each. The pings still keep connections inside @libp2p/tcp's 2-minute inactivity timeout.
 */
export const CONNECTION_PING_INTERVAL_MS = 60_000
/** Deadline for closing a refused peer's connections. */
const DISCONNECT_TIMEOUT_MS = 2_000

export type PollenServices = { dht: KadDHT; ping: Ping; identify: Identify }
export type PollenLibp2p = Libp2p<PollenServices>

export interface PollenNodeInit {
  privateKey: PrivateKey
  /** Multiaddrs to listen on. Default: DEFAULT_P2P_LISTEN. */
  listen?: string[]
  /** Multiaddrs ending in /p2p/<PeerId>, dialled at start and whenever every peer is gone. */
  bootstrap?: string[]
  /** Default: DEFAULT_DHT_PROTOCOL. Every node of a fleet must use the same one. */
  dhtProtocol?: string
  /** Addresses to advertise instead of the listen addresses (e.g. the node IP when listening on 0.0.0.0). */
  announce?: string[]
  /** How often kad-dht checks which of our provider records need re-providing (kad-dht default: 1 h). */
  reprovideIntervalMs?: number
  /** How long provider records stay valid, ours and the ones we store (kad-dht default: 48 h). */
  provideValidityMs?: number
  /** Default: DEFAULT_REBOOTSTRAP_CHECK_MS. */
  rebootstrapCheckMs?: number
  /** Deadlines and bounds of connection admission, when `components.admission` turns it on. */
  admission?: AdmissionGateInit
}

export interface PollenNodeComponents {
  logger: Logger
  /**
   * Connection admission: with it, a peer that presents no valid admission token within the
   * deadline is disconnected, kept out of the DHT (routing table, answers, inbound requests)
   * and refused for a while (see admission-gate.ts). Absent: every peer is welcome.
   */
  admission?: Omit<AdmissionGateComponents, 'logger'>
  /** Our admission token, presented to every peer we connect to; absent or undefined, nothing is presented. */
  token?: () => string | undefined
}

export interface PollenNode {
  /** Our PeerId, base58. */
  readonly peerId: string
  /** The raw node, for protocol handlers (`handle`) and `dialProtocol`. */
  readonly libp2p: PollenLibp2p
  /** The addresses we listen on or announce, each ending in /p2p/<peerId>. */
  multiaddrs(): string[]
  /** The number of peers we hold at least one open connection to. */
  connectedPeers(): number
  /** The number of peers in the DHT routing table. */
  routingTableSize(): number
  /** Keys in the node's in-memory DHT store (provider records, mostly; the cap is DEFAULT_MAX_DATASTORE_ENTRIES). */
  dhtStoreRecords(): number
  /**
   * Dials every bootstrap peer (each with BOOTSTRAP_DIAL_TIMEOUT_MS) and resolves
   * with how many of them are connected. Never rejects; failures are logged.
   */
  rebootstrap(): Promise<number>
  /** The admission gate, when peers are gated. */
  readonly gate?: AdmissionGate
  /** The DHT routing table as the gate polices it, when peers are gated. */
  readonly routingTable?: RoutingTableGuard
  /** Presents our current token to every connected peer again (call it when the token changed). */
  presentToken(): void
  /** Stops the re-bootstrap timer, the admission gate and the libp2p node. */
  stop(): Promise<void>
}

interface BootstrapPeer {
  peerId: PeerId
  addr: Multiaddr
}

/**
 * Creates and starts a libp2p node (TCP, Noise, Yamux, identify, ping, kad-dht
 * in server mode), dials the bootstrap peers, and keeps re-bootstrapping while
 * no peer is connected. With `components.admission`, peers are gated from the
 * first connection on (see admission-gate.ts and gated-dht.ts); with
 * `components.token`, our token is presented to every peer we connect to. Resolves once the node listens, whether or not a
 * bootstrap peer answered. Throws when a bootstrap address lacks /p2p/<id> or
 * a listen address cannot be bound.
 */
export async function createPollenNode(init: PollenNodeInit, components: PollenNodeComponents): Promise<PollenNode> {
  const log = components.logger.child({ component: 'p2p' })
  const bootstrap = (init.bootstrap ?? []).map(parseBootstrap)
  const reprovide = reprovideOptions(init)
  const gate = components.admission === undefined ? undefined : new AdmissionGate(init.admission ?? {}, { ...components.admission, logger: log.child({ component: 'admission-gate' }) })

  const datastore = new CompactMemoryDatastore()
  const libp2p: PollenLibp2p = await createLibp2p({
    privateKey: init.privateKey,
    datastore,
    // Started below, once the admission exchange listens for connections.
    start: false,
    addresses: {
      listen: init.listen ?? DEFAULT_P2P_LISTEN,
      ...(init.announce === undefined ? {} : { announce: init.announce }),
    },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    // Yamux defaults: initialStreamWindowSize must match on both ends, and the
    // default 16 MiB maxStreamWindowSize already equals the measured optimum.
    streamMuxers: [yamux()],
    connectionManager: {
      inboundConnectionThreshold: INBOUND_CONNECTION_THRESHOLD,
      maxIncomingPendingConnections: MAX_INCOMING_PENDING_CONNECTIONS,
    },
    // A single late ping (a busy event loop while hashing a blob) must not kill
    // a connection that is carrying a transfer; dead sockets still end by TCP
    // errors, socket inactivity timeouts and stream deadlines.
    connectionMonitor: { abortConnectionOnPingFailure: false, pingInterval: CONNECTION_PING_INTERVAL_MS },
    ...(gate === undefined ? {} : { connectionGater: refusedPeersGater(gate) }),
    services: {
      identify: identify(),
      ping: ping(),
      dht: (dhtComponents: KadDHTComponents) =>
        kadDHT({
          protocol: init.dhtProtocol ?? DEFAULT_DHT_PROTOCOL,
          clientMode: false,
          initialQuerySelfInterval: DHT_INITIAL_SELF_QUERY_MS,
          // Keep every address: the fleet lives on LANs (private), loopback in
          // tests, and sometimes public IPs; see router notes in the report.
          // With admission, only admitted peers' addresses are kept.
          peerInfoMapper: gate === undefined ? passthroughMapper : admittedPeersMapper(gate),
          ...(reprovide === undefined ? {} : { reprovide }),
        })(gate === undefined ? dhtComponents : gatedDhtComponents(dhtComponents, gate)),
    },
  })
  const routingTable = gate === undefined ? undefined : guardRoutingTable(libp2p.services.dht, gate, log)
  gate?.attach({
    isConnected: (peer) => libp2p.getConnections(peerIdFromString(peer)).length > 0,
    disconnect: (peer) => libp2p.hangUp(peerIdFromString(peer), { signal: AbortSignal.timeout(DISCONNECT_TIMEOUT_MS) }),
    forget: async (peer) => routingTable?.forget(peerIdFromString(peer)),
  })
  const exchange = await startAdmissionExchange({ libp2p, logger: log, gate, token: components.token })
  try {
    await libp2p.start()
  } catch (err) {
    gate?.stop()
    throw err
  }

  const peerId = libp2p.peerId.toString()
  let stopped = false
  let inFlight: Promise<number> | undefined

  async function dialBootstrap(): Promise<number> {
    const targets = bootstrap.filter(b => !b.peerId.equals(libp2p.peerId))
    const results = await Promise.allSettled(targets.map(async b => {
      await libp2p.peerStore.merge(b.peerId, { multiaddrs: [b.addr], tags: { [BOOTSTRAP_TAG]: { value: 100 } } })
      await libp2p.dial(b.addr, { signal: AbortSignal.timeout(BOOTSTRAP_DIAL_TIMEOUT_MS) })
    }))
    let connected = 0
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') connected++
      else log.warn({ peer: targets[i]?.addr.toString(), err: (r.reason as Error).message }, 'bootstrap dial failed')
    })
    return connected
  }

  function rebootstrap(): Promise<number> {
    if (stopped) return Promise.resolve(0)
    inFlight ??= dialBootstrap()
      .then(n => {
        // Fill the routing table beyond the bootstrap peers (kad-dht runs it in the background).
        if (n > 0 && !stopped) void libp2p.services.dht.refreshRoutingTable().catch(() => {})
        return n
      })
      .catch(err => {
        log.warn({ err: (err as Error).message }, 'bootstrap failed')
        return 0
      })
      .finally(() => { inFlight = undefined })
    return inFlight
  }

  if (bootstrap.length > 0) {
    const n = await rebootstrap()
    log.info({ peerId, bootstrap: bootstrap.length, connected: n }, 'p2p node started')
  } else {
    log.info({ peerId }, 'p2p node started without bootstrap peers')
  }

  const dhtProtocol = init.dhtProtocol ?? DEFAULT_DHT_PROTOCOL
  const refill = routingTableRefill(libp2p.services.dht, dhtProtocol, {
    connectedPeers: () => libp2p.getPeers(),
    protocols: async (peer) => (await libp2p.peerStore.get(peer)).protocols,
    allowed: (peer) => gate === undefined || gate.isAdmitted(peer.toString()),
  })
  if (refill === undefined) log.warn('kad-dht has no routing table internals to refill: peers whose first ping timed out stay out of it')
  let refilling = false
  // A short routing table (a query of ours that ran before the other peers were admitted, or
  // pings that timed out on a busy node) is refreshed again, with a doubling pause, until it
  // holds a full bucket; kad-dht alone would wait for its next scheduled refresh (hours).
  let refreshPauseMs = REFRESH_MIN_PAUSE_MS
  let nextRefreshAt = Date.now() + refreshPauseMs
  let lastTableSize = 0
  const maybeRefresh = (): void => {
    const size = (libp2p.services.dht as SingleKadDHT).routingTable.size
    if (size < lastTableSize) refreshPauseMs = REFRESH_MIN_PAUSE_MS
    lastTableSize = size
    if (size === 0 || size >= ROUTING_TABLE_FULL || Date.now() < nextRefreshAt) return
    nextRefreshAt = Date.now() + refreshPauseMs
    refreshPauseMs = Math.min(refreshPauseMs * 2, REFRESH_MAX_PAUSE_MS)
    void libp2p.services.dht.refreshRoutingTable().catch(() => {})
  }
  const timer = setInterval(() => {
    if (stopped) return
    if (bootstrap.length > 0 && libp2p.getPeers().length === 0) {
      log.info('no connected peers: re-bootstrapping')
      void rebootstrap().then(n => { if (n > 0) log.info({ connected: n }, 're-bootstrapped') })
      return
    }
    maybeRefresh()
    if (refill === undefined || refilling) return
    refilling = true
    void refill()
      .then(n => { if (n > 0) log.info({ peers: n }, 'connected DHT peers missing from the routing table: adding them again') })
      .catch(err => log.warn({ err: (err as Error).message }, 'routing table refill failed'))
      .finally(() => { refilling = false })
  }, init.rebootstrapCheckMs ?? DEFAULT_REBOOTSTRAP_CHECK_MS)
  timer.unref()

  return {
    peerId,
    libp2p,
    multiaddrs: () => libp2p.getMultiaddrs().map(ma => ma.toString()),
    connectedPeers: () => libp2p.getPeers().length,
    routingTableSize: () => (libp2p.services.dht as SingleKadDHT).routingTable.size,
    dhtStoreRecords: () => datastore.size,
    rebootstrap,
    gate,
    routingTable,
    presentToken: () => exchange.presentToAll(),
    async stop() {
      if (stopped) return
      stopped = true
      clearInterval(timer)
      await exchange.stop()
      routingTable?.stop()
      gate?.stop()
      await libp2p.stop()
    },
  }
}

/** Denies dials to, and connections from, peers the gate refused. */
function refusedPeersGater(gate: AdmissionGate): ConnectionGater {
  const refused = (peer: PeerId): boolean => gate.isRefused(peer.toString())
  return { denyDialPeer: refused, denyInboundEncryptedConnection: refused, denyOutboundEncryptedConnection: refused }
}

function parseBootstrap(addr: string): BootstrapPeer {
  const ma = multiaddr(addr)
  const id = ma.getComponents().findLast(c => c.name === 'p2p')?.value
  if (id === undefined) throw new Error(`bootstrap address ${addr} must end in /p2p/<PeerId>`)
  return { peerId: peerIdFromString(id), addr: ma }
}

/**
 * kad-dht reads lifetimes only from `reprovide` (its `providers` options are
 * ignored). A record is re-provided once it is within `threshold` of expiry;
 * with a custom validity, re-provide at half-life so a record never lapses
 * between two checks.
 */
function reprovideOptions(init: PollenNodeInit): { interval?: number; validity?: number; threshold?: number } | undefined {
  if (init.reprovideIntervalMs === undefined && init.provideValidityMs === undefined) return undefined
  return {
    ...(init.reprovideIntervalMs === undefined ? {} : { interval: init.reprovideIntervalMs }),
    ...(init.provideValidityMs === undefined ? {} : { validity: init.provideValidityMs, threshold: init.provideValidityMs / 2 }),
  }
}
