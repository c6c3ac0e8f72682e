/**
 * A test network of namespaces that can be split in two: every host is a namespace with a veth
 * to bridge 1 in the root namespace (which has an address there, for setup); `split` moves some
 * hosts' veths to bridge 2 (no root address, no route out), `heal` moves them back. Addresses come
 * from a /24 of 198.18.0.0/15 that no root route uses. Names carry the test's pid
 * (`ppt-<pid>-<role>` namespaces, `pt<pid>b1`/`pt<pid>b2` bridges, `pt<pid>v<i>` veths), so a
 * crashed run's leftovers are recognisable (removeStalePartitionNets).
 */
import { existsSync } from 'node:fs'
import { addBridge, addNsHost, freeAddressBlock, inNs, ipv4, removeNsHosts, removeStaleNs, sh, type NsHost } from './netns.js'

export { inNs }

export interface NetHost extends NsHost {
  role: string
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

const BASE = 198 * 2 ** 24 + 19 * 2 ** 16 // 198.19.0.0/16: /24s that no route uses (the fleet bench also takes free /22s anywhere in 198.18.0.0/15)

/** Builds the network with one namespace per role. On failure removes what it made, then throws. */
export function createPartitionNet(roles: string[]): PartitionNet {
  const pid = process.pid
  const base = freeAddressBlock(BASE, 256, 250, pid)
  const hosts = roles.map((role, i) => ({ ns: `ppt-${pid}-${role}`, role, veth: `pt${pid}v${i}`, addr: ipv4(base + i + 1) }))
  const net: PartitionNet = {
    rootAddr: ipv4(base + 254),
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
      removeNsHosts(hosts, [net.bridge1, net.bridge2])
    },
  }
  try {
    addBridge(net.bridge1, `${net.rootAddr}/24`)
    addBridge(net.bridge2)
    for (const h of hosts) addNsHost(h, net.bridge1, 24)
  } catch (err) {
    net.destroy()
    throw err
  }
  return net
}

/** Removes namespaces and links of earlier runs whose test process is gone; returns how many. */
export function removeStalePartitionNets(): number {
  const alive = (pid: number): boolean => pid === process.pid || existsSync(`/proc/${pid}`)
  const { namespaces, links } = removeStaleNs({ ns: NS_PATTERN, link: LINK_PATTERN, alive })
  return namespaces + links
}
