/**
 * The bench's network: one namespace per host, each with a veth pair to one bridge in the root
 * namespace, addresses from a /22 block of 198.18.0.0/15 that no root route uses yet, and
 * `tc tbf` on both ends of every veth. Names carry the bench's pid (`pbf-<pid>-<role>` for
 * namespaces, `pbf<pid>br` / `pbf<pid>v<i>` for links; interface names stop at 15 characters),
 * so concurrent runs never collide and a crashed run's leftovers can be recognised.
 *
 * Everything here is synchronous so that it also runs from a signal handler.
 */
import { readFileSync } from 'node:fs'
import { addBridge, addNsHost, freeAddressBlock, inNs, ipv4, removeNsHosts, removeStaleNs, sh } from '../../test/helpers/netns.js'

export { inNs }

/**
 * How much ahead of the edge nodes the datacenter side (upstream registry, seed, pull-through
 * cache) is scheduled: they stand for machines of their own, and on one small machine N edge
 * nodes would otherwise starve them (at N = 32 a seed at equal priority got a 34th of the CPU
 * and answered no request for 10 s). The same for every system, so baselines stay comparable.
 */
export const DATACENTER_NICE = -10

/** `nice -n DATACENTER_NICE ip netns exec NS`: the prefix for the upstream, the seed and the cache. */
export const inDatacenterNs = (ns: string): string[] => ['nice', '-n', String(DATACENTER_NICE), ...inNs(ns)]

export interface Host {
  /** `pbf-<pid>-<role>`. */
  ns: string
  role: string
  /** The bridge-side veth in the root namespace; the namespace side is `eth0`. */
  veth: string
  addr: string
  /** Both directions of this host's link are shaped to this (bits per second). */
  rateBps: number
}

export interface Network {
  pid: number
  bridge: string
  /** The root namespace's address on the bridge: unshaped, for setup and metric scraping only. */
  rootAddr: string
  prefixLength: number
  upstream: Host
  seed: Host
  nodes: Host[]
}

export interface NetworkPlan {
  nodes: number
  edgeRateBps: number
  seedRateBps: number
  wanRateBps: number
}

const NS_PATTERN = /^pbf-(\d+)-/
const LINK_PATTERN = /^pbf(\d+)(?:br|v\d+)$/
const BLOCK_SIZE = 1024 // a /22
const BLOCKS = 128 // in 198.18.0.0/15
const BASE = 198 * 2 ** 24 + 18 * 2 ** 16
const MAX_NODES = BLOCK_SIZE - 259

/** Builds the whole network for `plan.nodes` edge nodes. On failure it removes what it made, then throws. */
export function createNetwork(plan: NetworkPlan): Network {
  if (plan.nodes < 1 || plan.nodes > MAX_NODES) throw new RangeError(`between 1 and ${MAX_NODES} nodes`)
  const pid = process.pid
  const base = freeAddressBlock(BASE, BLOCK_SIZE, BLOCKS, pid)
  const host = (role: string, index: number, offset: number, rateBps: number): Host => ({ ns: `pbf-${pid}-${role}`, role, veth: `pbf${pid}v${index}`, addr: ipv4(base + offset), rateBps })
  const net: Network = {
    pid,
    bridge: `pbf${pid}br`,
    rootAddr: ipv4(base + BLOCK_SIZE - 2),
    prefixLength: 22,
    upstream: host('up', 0, 1, plan.wanRateBps),
    seed: host('seed', 1, 2, plan.seedRateBps),
    nodes: Array.from({ length: plan.nodes }, (_, i) => host(`n${i + 1}`, i + 2, 257 + i, plan.edgeRateBps)),
  }
  try {
    addBridge(net.bridge, `${net.rootAddr}/${net.prefixLength}`)
    for (const h of [net.upstream, net.seed, ...net.nodes]) addHost(net, h)
  } catch (err) {
    destroyNetwork(net)
    throw err
  }
  return net
}

function addHost(net: Network, h: Host): void {
  addNsHost(h, net.bridge, net.prefixLength)
  // Egress toward the host (its download) and egress inside the namespace (its upload).
  sh(['tc', 'qdisc', 'add', 'dev', h.veth, 'root', ...tbf(h.rateBps)])
  sh(['tc', '-n', h.ns, 'qdisc', 'add', 'dev', 'eth0', 'root', ...tbf(h.rateBps)])
}

/**
 * tbf arguments. The bucket holds at least 96 KiB so that a 64 KiB GSO packet passes whole
 * (tbf would otherwise segment it), or 2 ms at the rate; the queue holds 100 ms on top (with 20 ms, a fifth of the segments toward a busy edge node were retransmissions).
 */
function tbf(rateBps: number): string[] {
  const burst = Math.max(96 * 1024, Math.round((rateBps / 8) * 0.002))
  return ['tbf', 'rate', `${rateBps}bit`, 'burst', String(burst), 'latency', '100ms']
}

/** Kills every process left in the network's namespaces, then deletes namespaces, veths and the bridge. Never throws. */
export function destroyNetwork(net: Network): void {
  removeNsHosts([net.upstream, net.seed, ...net.nodes], [net.bridge])
}

/**
 * Removes namespaces and links with the bench's prefix whose bench process is gone (a crashed
 * run), killing the processes still inside them. Returns how many namespaces and links it removed.
 */
export function removeStale(): { namespaces: number; links: number } {
  return removeStaleNs({ ns: NS_PATTERN, link: LINK_PATTERN, alive: benchAlive })
}

/** Bytes the host's namespace side of its veth has sent (tx_bytes of `eth0` in its namespace). */
export function txBytes(h: Host): number {
  const [link] = JSON.parse(sh(['ip', '-n', h.ns, '-j', '-s', 'link', 'show', 'dev', 'eth0'])) as Array<{ stats64: { tx: { bytes: number } } }>
  return link!.stats64.tx.bytes
}

export interface TcpCounters {
  outSegs: number
  retransSegs: number
}

/** The host namespace's TCP segment counters (/proc/net/snmp as seen from inside it). */
export function tcpCounters(h: Host): TcpCounters {
  const lines = sh([...inNs(h.ns), 'cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Tcp:'))
  const names = lines[0]!.split(/\s+/)
  const values = lines[1]!.split(/\s+/).map(Number)
  const get = (name: string): number => values[names.indexOf(name)] ?? 0
  return { outSegs: get('OutSegs'), retransSegs: get('RetransSegs') }
}

/** A bench process with this pid is still running (the pid exists and runs bench/fleet). */
function benchAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('fleet')
  } catch {
    return false
  }
}
