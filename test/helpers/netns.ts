/**
 * Network-namespace plumbing shared by the fleet bench (bench/fleet/network.ts) and the partition
 * test network (test/helpers/partition-net.ts): hosts that are each a namespace with a veth pair
 * to a bridge in the root namespace, address blocks of 198.18.0.0/15 that no root route uses,
 * and removal of a crashed run's leftovers, recognised by the pid in their names.
 *
 * Everything here is synchronous so that it also runs from a signal handler.
 */
import { execFileSync } from 'node:child_process'

/** A namespace `ns` whose veth pair is `veth` in the root namespace and `eth0` inside, with address `addr`. */
export interface NsHost {
  ns: string
  veth: string
  addr: string
}

/** Runs a command; returns its stdout, throws when it fails. */
export const sh = (args: string[]): string => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

/** Runs a command and ignores its failure (for removing what may already be gone). */
export const quiet = (args: string[]): void => {
  try {
    sh(args)
  } catch {
    /* already gone */
  }
}

/** `ip netns exec NS`: the prefix to run a command inside a host's namespace. */
export const inNs = (ns: string): string[] => ['ip', 'netns', 'exec', ns]

/** Adds bridge `name` and sets it up; with `rootAddr` (`a.b.c.d/len`), the root namespace gets that address on it. */
export function addBridge(name: string, rootAddr?: string): void {
  sh(['ip', 'link', 'add', name, 'type', 'bridge'])
  if (rootAddr !== undefined) sh(['ip', 'addr', 'add', rootAddr, 'dev', name])
  sh(['ip', 'link', 'set', name, 'up'])
}

/** Adds the host's namespace and veth pair, puts `veth` on `bridge`, gives `eth0` `addr/prefixLength`, and sets `eth0` and `lo` up. */
export function addNsHost(h: NsHost, bridge: string, prefixLength: number): void {
  sh(['ip', 'netns', 'add', h.ns])
  sh(['ip', 'link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns])
  sh(['ip', 'link', 'set', h.veth, 'master', bridge, 'up'])
  sh(['ip', '-n', h.ns, 'addr', 'add', `${h.addr}/${prefixLength}`, 'dev', 'eth0'])
  sh(['ip', '-n', h.ns, 'link', 'set', 'eth0', 'up'])
  sh(['ip', '-n', h.ns, 'link', 'set', 'lo', 'up'])
}

/** Kills every process left in the hosts' namespaces, then deletes their veths and namespaces and the bridges. Never throws. */
export function removeNsHosts(hosts: readonly NsHost[], bridges: readonly string[]): void {
  for (const h of hosts) killNsProcesses(h.ns)
  for (const h of hosts) {
    quiet(['ip', 'link', 'del', h.veth])
    quiet(['ip', 'netns', 'del', h.ns])
  }
  for (const bridge of bridges) quiet(['ip', 'link', 'del', bridge])
}

/** SIGKILLs every process in namespace `ns`. Never throws (a missing namespace has none). */
export function killNsProcesses(ns: string): void {
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

/** How a crashed run's leftovers are named: the first group of each pattern is the owning run's pid. */
export interface StalePatterns {
  ns: RegExp
  link: RegExp
  /** True while the run with this pid still owns its names. */
  alive(pid: number): boolean
}

/**
 * Removes the namespaces and links whose name matches and whose run is no longer alive, killing the
 * processes still inside those namespaces. Returns how many namespaces and links it removed.
 */
export function removeStaleNs(p: StalePatterns): { namespaces: number; links: number } {
  const stale = (name: string, pattern: RegExp): boolean => {
    const pid = pattern.exec(name)?.[1]
    return pid !== undefined && !p.alive(Number(pid))
  }
  let namespaces = 0
  let links = 0
  for (const ns of sh(['ip', 'netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean)) {
    if (!stale(ns, p.ns)) continue
    killNsProcesses(ns)
    quiet(['ip', 'netns', 'del', ns])
    namespaces++
  }
  for (const { ifname } of JSON.parse(sh(['ip', '-j', 'link', 'show'])) as Array<{ ifname: string }>) {
    if (!stale(ifname, p.link)) continue
    quiet(['ip', 'link', 'del', ifname])
    links++
  }
  return { namespaces, links }
}

/**
 * The first address of the first of `count` blocks of `size` addresses from `base` (tried from
 * block `from % count` on, wrapping) that no root-namespace route overlaps. Throws when every one does.
 */
export function freeAddressBlock(base: number, size: number, count: number, from: number): number {
  const routes = (JSON.parse(sh(['ip', '-j', '-4', 'route', 'show'])) as Array<{ dst: string }>).map((r) => r.dst).filter((d) => d !== 'default')
  const overlaps = (start: number): boolean =>
    routes.some((dst) => {
      const [addr, len] = dst.split('/')
      const s = ipv4ToInt(addr!)
      return s < start + size && start < s + 2 ** (32 - Number(len ?? 32))
    })
  for (let i = 0; i < count; i++) {
    const start = base + ((from + i) % count) * size
    if (!overlaps(start)) return start
  }
  throw new Error(`every /${32 - Math.log2(size)} of the ${count} from ${ipv4(base)} is routed already`)
}

/** Dotted-quad form of a 32-bit address. */
export function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

/** The 32-bit number of a dotted-quad address. */
export function ipv4ToInt(addr: string): number {
  return addr.split('.').reduce((n, part) => n * 256 + Number(part), 0)
}
