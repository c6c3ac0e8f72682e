/**
 * A test network of namespaces that can be split in two: every host is a namespace with a veth
 * to bridge 1 in the root namespace (which has an address there, for setup); `split` moves some
 * hosts' veths to bridge 2 (no root address, no route out), `heal` moves them back. Addresses come
 * from a /24 of 198.18.0.0/15 that no root route uses. Names carry the test's pid
 * (`ppt-<pid>-<role>` namespaces, `pt<pid>b1`/`pt<pid>b2` bridges, `pt<pid>v<i>` veths), so a
 * crashed run's leftovers are recognisable (removeStalePartitionNets).
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'

export interface NetHost {
  ns: string
  role: string
  veth: string
  addr: string
}

export interface PartitionNet {
  rootAddr: string
  bridge1: string
  bridge2: string
  hosts: NetHost[]
  /** Moves these hosts to bridge 2: they reach each other only. */
  split(hosts: NetHost[]): void
  /** Moves every host back to bridge 1. */
  heal(): void
  /** Kills every process left in the namespaces, deletes namespaces, veths and bridges. Never throws. */
  destroy(): void
}

const NS_PATTERN = /^ppt-(\d+)-/
const LINK_PATTERN = /^pt(\d+)(?:b1|b2|v\d+)$/

const sh = (args: string[]): string => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
const quiet = (args: string[]): void => {
  try {
    sh(args)
  } catch {
    /* already gone */
  }
}

export const inNs = (ns: string): string[] => ['ip', 'netns', 'exec', ns]

/** Builds the network with one namespace per role. On failure removes what it made, then throws. */
export function createPartitionNet(roles: string[]): PartitionNet {
  const pid = process.pid
  const prefix = freeSlash24()
  const hosts = roles.map((role, i) => ({ ns: `ppt-${pid}-${role}`, role, veth: `pt${pid}v${i}`, addr: `${prefix}.${i + 1}` }))
  const net: PartitionNet = {
    rootAddr: `${prefix}.254`,
    bridge1: `pt${pid}b1`,
    bridge2: `pt${pid}b2`,
    hosts,
    split(group) {
      for (const h of group) sh(['ip', 'link', 'set', h.veth, 'master', net.bridge2])
    },
    heal() {
      for (const h of hosts) sh(['ip', 'link', 'set', h.veth, 'master', net.bridge1])
    },
    destroy() {
      for (const h of hosts) killNsProcesses(h.ns)
      for (const h of hosts) {
        quiet(['ip', 'link', 'del', h.veth])
        quiet(['ip', 'netns', 'del', h.ns])
      }
      quiet(['ip', 'link', 'del', net.bridge1])
      quiet(['ip', 'link', 'del', net.bridge2])
    },
  }
  try {
    for (const bridge of [net.bridge1, net.bridge2]) {
      sh(['ip', 'link', 'add', bridge, 'type', 'bridge'])
      sh(['ip', 'link', 'set', bridge, 'up'])
    }
    sh(['ip', 'addr', 'add', `${net.rootAddr}/24`, 'dev', net.bridge1])
    for (const h of hosts) {
      sh(['ip', 'netns', 'add', h.ns])
      sh(['ip', 'link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns])
      sh(['ip', 'link', 'set', h.veth, 'master', net.bridge1, 'up'])
      sh(['ip', '-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', 'eth0'])
      sh(['ip', '-n', h.ns, 'link', 'set', 'eth0', 'up'])
      sh(['ip', '-n', h.ns, 'link', 'set', 'lo', 'up'])
    }
  } catch (err) {
    net.destroy()
    throw err
  }
  return net
}

/** Removes namespaces and links of earlier runs whose test process is gone; returns how many. */
export function removeStalePartitionNets(): number {
  let removed = 0
  const dead = (pid: string | undefined): boolean => pid !== undefined && Number(pid) !== process.pid && !existsSync(`/proc/${pid}`)
  for (const ns of sh(['ip', 'netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean)) {
    if (!dead(NS_PATTERN.exec(ns)?.[1])) continue
    killNsProcesses(ns)
    quiet(['ip', 'netns', 'del', ns])
    removed++
  }
  for (const { ifname } of JSON.parse(sh(['ip', '-j', 'link', 'show'])) as Array<{ ifname: string }>) {
    if (!dead(LINK_PATTERN.exec(ifname)?.[1])) continue
    quiet(['ip', 'link', 'del', ifname])
    removed++
  }
  return removed
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

/** `198.19.N` for the first N (from pid % 250) whose /24 no root-namespace route overlaps (198.18.x is the fleet bench's). */
function freeSlash24(): string {
  const routes = (JSON.parse(sh(['ip', '-j', '-4', 'route', 'show'])) as Array<{ dst: string }>).map((r) => r.dst).filter((d) => d !== 'default')
  const toInt = (a: string): number => a.split('.').reduce((n, p) => n * 256 + Number(p), 0)
  for (let i = 0; i < 250; i++) {
    const n = (process.pid + i) % 250
    const start = toInt(`198.19.${n}.0`)
    const overlaps = routes.some((dst) => {
      const [addr, len] = dst.split('/')
      const s = toInt(addr!)
      const size = 2 ** (32 - Number(len ?? 32))
      return s < start + 256 && start < s + size
    })
    if (!overlaps) return `198.19.${n}`
  }
  throw new Error('no free /24 in 198.19.0.0/16')
}
