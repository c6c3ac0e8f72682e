/**
 * A projection of the DHT's cost at fleet scale from kad-dht's own parameters (read from the
 * installed package, not copied) and protobuf-encoded message sizes. A model, not a
 * measurement: every formula and assumption is part of the output.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { simulateLookups, type SimResult } from './simulate.js'

export interface KadParameters {
  /** Replication and bucket size (constants.js K, routing-table KBUCKET_SIZE). */
  k: number
  /** Concurrent requests per query path (constants.js ALPHA). */
  alpha: number
  /** Disjoint paths per query (query/manager.js: init.disjointPaths ?? K). */
  disjointPaths: number
  /** Depth to which the routing table's bucket trie splits (routing-table PREFIX_LENGTH). */
  prefixLength: number
  providersValidityMs: number
  reprovideThresholdMs: number
  reprovideIntervalMs: number
}

export interface ProjectionAssumptions {
  nodes: number
  /** Distinct blobs (and manifests) each node holds and provides. */
  blobsPerNode: number
  /** Multiaddrs a node advertises in its provider record and peer infos. */
  addrsPerPeer: number
  /** Bytes per stream beyond the message: multistream-select of the protocol (both ways), yamux headers, Noise tag and length. */
  streamOverheadBytes: number
  /** Bytes each stored provider record costs the holder's datastore (key /dht/provider/<cid>/<peer> and a varint time): ~390 B of V8 heap each, measured for content/p2p/compact-datastore.ts with 100,000 records. */
  recordStoreBytes: number
}

export const DEFAULT_ASSUMPTIONS: ProjectionAssumptions = { nodes: 10_000, blobsPerNode: 2_000, addrsPerPeer: 2, streamOverheadBytes: 150, recordStoreBytes: 400 }

export interface Projection {
  parameters: KadParameters
  assumptions: ProjectionAssumptions
  messageBytes: { addProvider: number; findNodeRequest: number; findNodeResponse: number }
  lookupHops: { classic: number; kadDht: number; tableCapacity: number }
  lookupMessages: number
  /** The Monte-Carlo model (simulate.ts) at the bench's size, to check it against the measurement, and at N. */
  simulation?: { atBenchSize: SimResult; atN: SimResult }
  providerRecords: { perNode: number; storeBytes: number }
  reprovide: { everyHours: number; providesPerHour: number; messagesPerHour: number; bytesPerHour: number; inboundAddProviderPerHour: number }
  text: string
}

async function kadModule(rel: string): Promise<Record<string, unknown>> {
  const entry = createRequire(import.meta.url).resolve('@libp2p/kad-dht')
  return (await import(pathToFileURL(join(dirname(entry), rel)).href)) as Record<string, unknown>
}

/** kad-dht's parameters as the installed package defines them. */
export async function readKadParameters(): Promise<KadParameters> {
  const c = await kadModule('constants.js')
  const rt = await kadModule('routing-table/index.js')
  const n = (v: unknown, name: string): number => {
    if (typeof v !== 'number') throw new Error(`kad-dht no longer exports ${name}`)
    return v
  }
  const k = n(c.K, 'K')
  return {
    k,
    alpha: n(c.ALPHA, 'ALPHA'),
    disjointPaths: k,
    prefixLength: n(rt.PREFIX_LENGTH, 'PREFIX_LENGTH'),
    providersValidityMs: n(c.PROVIDERS_VALIDITY, 'PROVIDERS_VALIDITY'),
    reprovideThresholdMs: n(c.REPROVIDE_THRESHOLD, 'REPROVIDE_THRESHOLD'),
    reprovideIntervalMs: n(c.REPROVIDE_INTERVAL, 'REPROVIDE_INTERVAL'),
  }
}

/** Encoded sizes of the messages a provide sends, with the message codec kad-dht uses. */
async function messageBytes(k: number, addrs: number): Promise<Projection['messageBytes']> {
  const { Message, MessageType } = (await kadModule('message/dht.js')) as {
    Message: { encode(m: unknown): Uint8Array }
    MessageType: Record<string, unknown>
  }
  const key = new Uint8Array(34) // sha256 multihash
  const peer = { id: new Uint8Array(38), multiaddrs: Array.from({ length: addrs }, () => new Uint8Array(8)) } // Ed25519 PeerId; /ip4/a.b.c.d/tcp/p
  const size = (m: object): number => Message.encode({ closer: [], providers: [], ...m }).length + 2 // + length prefix
  return {
    addProvider: size({ type: MessageType.ADD_PROVIDER, key, providers: [peer] }),
    findNodeRequest: size({ type: MessageType.FIND_NODE, key }),
    findNodeResponse: size({ type: MessageType.FIND_NODE, key, closer: Array.from({ length: k }, () => peer) }),
  }
}

const H = 3_600_000

export async function project(a: ProjectionAssumptions = DEFAULT_ASSUMPTIONS, simulate?: { benchNodes: number; lookups: number }): Promise<Projection> {
  const p = await readKadParameters()
  const sim = (nodes: number): SimResult => simulateLookups({ nodes, k: p.k, alpha: p.alpha, disjointPaths: p.disjointPaths, prefixLength: p.prefixLength, lookups: simulate!.lookups })
  const simulation = simulate === undefined ? undefined : { atBenchSize: sim(simulate.benchNodes), atN: sim(a.nodes) }
  const bytes = await messageBytes(p.k, a.addrsPerPeer)
  const groups = 2 ** p.prefixLength
  const tableCapacity = groups * p.k
  const classic = Math.log2(a.nodes) // b = 1
  // kad-dht 16's table is a trie over absolute key bits, split to depth prefixLength: it holds k
  // random members of each of the 2^p key prefixes, never finer. The first hop reaches the key's
  // prefix group; each answer names k more of its N/2^p members, so the walk needs about
  // log_k(N / (2^p·k)) further rounds to see the closest ones, plus one to confirm them.
  const kadDht = a.nodes - 1 <= tableCapacity ? 1 : 1 + Math.ceil(Math.log(a.nodes / tableCapacity) / Math.log(p.k)) + 1
  const lookupMessages = Math.min(a.nodes - 1, p.k + Math.ceil(a.nodes / groups))
  const perNode = a.blobsPerNode * p.k
  const everyHours = (p.providersValidityMs - p.reprovideThresholdMs) / H
  const providesPerHour = a.blobsPerNode / everyHours
  // With a simulation, its mean walk replaces the closed-form message estimate.
  const walkMessages = simulation === undefined ? lookupMessages : Math.round(simulation.atN.provideMessages.mean - p.k)
  const perProvideMessages = walkMessages + p.k
  const perProvideBytes =
    walkMessages * (bytes.findNodeRequest + bytes.findNodeResponse + a.streamOverheadBytes) + p.k * (bytes.addProvider + a.streamOverheadBytes)
  const r = {
    everyHours,
    providesPerHour,
    messagesPerHour: providesPerHour * perProvideMessages,
    bytesPerHour: providesPerHour * perProvideBytes,
    inboundAddProviderPerHour: (a.blobsPerNode * p.k) / everyHours,
  }
  const f = (v: number, d = 0): string => v.toLocaleString('en-US', { maximumFractionDigits: d })
  const text = [
    `Projection for N = ${f(a.nodes)} nodes (a model from kad-dht's parameters, not a measurement).`,
    `Parameters read from @libp2p/kad-dht: K = ${p.k} (replication and bucket size), ALPHA = ${p.alpha} concurrent requests per path, disjoint paths = K = ${p.disjointPaths}, routing-table PREFIX_LENGTH = ${p.prefixLength}, provider validity ${p.providersValidityMs / H} h, reprovide threshold ${p.reprovideThresholdMs / H} h, reprovide check every ${p.reprovideIntervalMs / H} h.`,
    `Lookup hops: classic Kademlia (b = 1 bit per hop) needs ~log2(N)/b = ${classic.toFixed(1)} hops as a bound. kad-dht 16's table is a trie over absolute key bits split to depth ${p.prefixLength}: at most 2^${p.prefixLength}·K = ${tableCapacity} peers (K random members of each of ${groups} key prefixes), so hop 1 lands in the key's prefix group of N/2^p = ${f(a.nodes / groups)} nodes and each answer names K more of them: hops ≈ 1 + ceil(log_K(N / (2^p·K))) + 1 = ${kadDht}${a.nodes - 1 <= tableCapacity ? ' (N − 1 ≤ table capacity: every node knows every other, one hop)' : ''}. Messages per lookup ≈ K + N/2^p = ${f(lookupMessages)} (the starting K plus the key's prefix group, which 20 disjoint paths largely walk).`,
    ...(simulation === undefined
      ? []
      : [
          `Monte-Carlo model of kad-dht 16's tables and query paths (bench/dht/simulate.ts, ${simulation.atN.lookups} lookups, rounds as hops, no latency or churn): at N = ${f(simulation.atBenchSize.nodes)} it gives first provider at hop ${simulation.atBenchSize.hopsToFirst.p50} (p99 ${simulation.atBenchSize.hopsToFirst.p99}), complete lookups of ${f(simulation.atBenchSize.messagesComplete.mean)} messages over ${simulation.atBenchSize.hopsComplete.p50} hops (compare with the measurement above); at N = ${f(simulation.atN.nodes)}: first provider at hop ${simulation.atN.hopsToFirst.p50} (p99 ${simulation.atN.hopsToFirst.p99}) after ${f(simulation.atN.messagesToFirst.mean)} answers on average, complete lookups of ${f(simulation.atN.messagesComplete.mean)} messages (p99 ${f(simulation.atN.messagesComplete.p99)}) over ${simulation.atN.hopsComplete.p50} hops (p99 ${simulation.atN.hopsComplete.p99}), a provide's walk ${f(walkMessages)} FIND_NODE answers; ${simulation.atN.found} of ${simulation.atN.lookups} lookups found the record.`,
        ]),
    `Provider records per node: each node provides its B = ${f(a.blobsPerNode)} distinct blobs, each record is stored on K = ${p.k} nodes, so the fleet stores N·B·K records and each node holds N·B·K / N = B·K = ${f(perNode)} records (independent of N; ~${f((perNode * a.recordStoreBytes) / 2 ** 20, 1)} MiB at ~${a.recordStoreBytes} B each, in Pollen's compact in-memory datastore, which holds at most 500,000).`,
    `Re-provide traffic: a record is re-provided once it is within ${p.reprovideThresholdMs / H} h of its ${p.providersValidityMs / H} h validity, i.e. every ${everyHours} h (checked hourly), so each node re-provides B / ${everyHours} = ${f(providesPerHour, 1)} records per hour. One provide = a closest-peers walk (~${f(walkMessages)} FIND_NODE request/response pairs of ${bytes.findNodeRequest} + ${bytes.findNodeResponse} B) + K = ${p.k} ADD_PROVIDER messages of ${bytes.addProvider} B, each on its own stream (~${a.streamOverheadBytes} B of multistream-select, yamux and Noise overhead). Per node per hour: ${f(providesPerHour, 1)} × (${f(walkMessages)} + ${p.k}) = ${f(r.messagesPerHour)} messages sent and ~${f(r.bytesPerHour / 1e6, 1)} MB (${f((r.bytesPerHour * 8) / 3600 / 1e3, 1)} kbit/s); each node also receives B·K / ${everyHours} = ${f(r.inboundAddProviderPerHour)} ADD_PROVIDER messages per hour.`,
  ].join('\n')
  return { parameters: p, assumptions: a, messageBytes: bytes, lookupHops: { classic, kadDht, tableCapacity }, lookupMessages, ...(simulation === undefined ? {} : { simulation }), providerRecords: { perNode, storeBytes: perNode * a.recordStoreBytes }, reprovide: r, text }
}
