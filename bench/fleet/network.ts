/**
 * The bench's network: one namespace per host, each with a veth pair to one bridge in the root
 * namespace, addresses from a /22 block of 198.18.0.0/15 that no root route uses yet, and
 * `tc tbf` on both ends of every veth. Names carry the bench's pid (`pbf-<pid>-<role>` for
 * namespaces, `pbf<pid>br` / `pbf<pid>v<i>` for links; interface names stop at 15 characters),
 * so concurrent runs never collide and a crashed run's leftovers can be recognised.
 *
 * Everything here is synchronous so that it also runs from a signal handler.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

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

const sh = (args: string[]): string => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
const quiet = (args: string[]): void => {
  try {
    sh(args)
  } catch {
    /* already gone */
  }
}

/** `ip netns exec NS`: the prefix to run a command inside a host's namespace. */
export const inNs = (ns: string): string[] => ['ip', 'netns', 'exec', ns]

/** Builds the whole network for `plan.nodes` edge nodes. On failure it removes what it made, then throws. */
export function createNetwork(plan: NetworkPlan): Network {
  if (plan.nodes < 1 || plan.nodes > MAX_NODES) throw new RangeError(`between 1 and ${MAX_NODES} nodes`)
  const pid = process.pid
  const base = BASE + freeBlock(pid) * BLOCK_SIZE
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
    sh(['ip', 'link', 'add', net.bridge, 'type', 'bridge'])
    sh(['ip', 'addr', 'add', `${net.rootAddr}/${net.prefixLength}`, 'dev', net.bridge])
    sh(['ip', 'link', 'set', net.bridge, 'up'])
    for (const h of [net.upstream, net.seed, ...net.nodes]) addHost(net, h)
  } catch (err) {
    destroyNetwork(net)
    throw err
  }
  return net
}

function addHost(net: Network, h: Host): void {
  sh(['ip', 'netns', 'add', h.ns])
  sh(['ip', 'link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns])
  sh(['ip', 'link', 'set', h.veth, 'master', net.bridge, 'up'])
  sh(['ip', '-n', h.ns, 'addr', 'add', `${h.addr}/${net.prefixLength}`, 'dev', 'eth0'])
  sh(['ip', '-n', h.ns, 'link', 'set', 'eth0', 'up'])
  sh(['ip', '-n', h.ns, 'link', 'set', 'lo', 'up'])
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
  for (const h of [net.upstream, net.seed, ...net.nodes]) killNsProcesses(h.ns)
  for (const h of [net.upstream, net.seed, ...net.nodes]) {
    quiet(['ip', 'link', 'del', h.veth])
    quiet(['ip', 'netns', 'del', h.ns])
  }
  quiet(['ip', 'link', 'del', net.bridge])
}

/**
 * Removes namespaces and links with the bench's prefix whose bench process is gone (a crashed
 * run), killing the processes still inside them. Returns how many namespaces and links it removed.
 */
export function removeStale(): { namespaces: number; links: number } {
  let namespaces = 0
  let links = 0
  const nsNames = sh(['ip', 'netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean)
  for (const ns of nsNames) {
    const pid = NS_PATTERN.exec(ns)?.[1]
    if (pid === undefined || benchAlive(Number(pid))) continue
    killNsProcesses(ns)
    quiet(['ip', 'netns', 'del', ns])
    namespaces++
  }
  const linkNames = (JSON.parse(sh(['ip', '-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname)
  for (const name of linkNames) {
    const pid = LINK_PATTERN.exec(name)?.[1]
    if (pid === undefined || benchAlive(Number(pid))) continue
    quiet(['ip', 'link', 'del', name])
    links++
  }
  return { namespaces, links }
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

function killNsProcesses(ns: string): void {
  let pids: number[] = []
  try {
    pids = sh(['ip', 'netns', 'pids', ns]).split('\n').filter(Boolean).map(Number)
  } catch {
    return
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      /* already gone */
    }
  }
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

/** The first /22 block of 198.18.0.0/15, starting at pid % 128, that no root-namespace route overlaps. */
function freeBlock(pid: number): number {
  const routes = JSON.parse(sh(['ip', '-j', '-4', 'route', 'show'])) as Array<{ dst: string }>
  const used = new Set<number>()
  for (const { dst } of routes) {
    if (dst === 'default') continue
    const [addr, len] = dst.split('/')
    const start = ipv4ToInt(addr!)
    const size = 2 ** (32 - Number(len ?? 32))
    for (let b = 0; b < BLOCKS; b++) {
      const blockStart = BASE + b * BLOCK_SIZE
      if (start < blockStart + BLOCK_SIZE && blockStart < start + size) used.add(b)
    }
  }
  for (let i = 0; i < BLOCKS; i++) {
    const b = (pid + i) % BLOCKS
    if (!used.has(b)) return b
  }
  throw new Error('every /22 of 198.18.0.0/15 is routed already')
}

function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

function ipv4ToInt(addr: string): number {
  return addr.split('.').reduce((n, part) => n * 256 + Number(part), 0)
}
