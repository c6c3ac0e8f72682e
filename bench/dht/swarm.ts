/**
 * A swarm of real Pollen libp2p nodes on loopback. Node 0 plays the seed (the fleet's DHT
 * bootstrap peer, started first with no bootstrap list) and lives in this process; the others
 * bootstrap from it, as agents do from the seed's /v1/bootstrap, and live in `procs` child
 * processes (worker.ts), so that the nodes' background work (pings, identify, table upkeep)
 * spreads over the cores instead of queueing on one event loop. Built by createPollenNode
 * without an admission verifier, so connections are not gated (createPollenNode gates only
 * when given `components.admission`).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { createPollenNode } from '../../content/p2p/node.js'
import { timedFind, timedProvide, type FindSample, type ProvideSample } from './lookups.js'
import type { Spread } from './results.js'
import type { WorkerRequest } from './worker.js'

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))
const POLL_MS = 1_000
/** Deadline for one request to a worker (a provide's own deadline is 30 s). */
const REQUEST_TIMEOUT_MS = 60_000

type Req = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never

class Worker {
  private next = 0
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()
  constructor(readonly child: ChildProcess) {
    child.on('message', (m: { id?: number; result?: unknown; error?: string }) => {
      if (m.id === undefined) return
      const p = this.pending.get(m.id)
      this.pending.delete(m.id)
      if (m.error !== undefined) p?.reject(new Error(m.error))
      else p?.resolve(m.result)
    })
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('DHT bench worker exited'))
      this.pending.clear()
    })
  }

  request<T>(req: Req): Promise<T> {
    const id = this.next++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker request ${req.op} timed out`)), REQUEST_TIMEOUT_MS)
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer)
          resolve(v as T)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      })
      this.child.send({ ...req, id } as WorkerRequest)
    })
  }
}

export interface Swarm {
  size: number
  procs: number
  /** Seconds from the first start to the last node listening and bootstrapped. */
  startSeconds: number
  provide(node: number, digest: string): Promise<ProvideSample>
  find(node: number, digest: string): Promise<FindSample>
  sizes(): Promise<{ tables: number[]; connections: number[] }>
  resetEventLoop(): Promise<void>
  /** The worst worker's event-loop delay since the last reset, in ms. */
  eventLoop(): Promise<{ p50: number; p99: number; max: number }>
  stop(): Promise<void>
}

async function startWorker(count: number, bootstrap: string): Promise<Worker> {
  const child = fork(WORKER, [String(count), bootstrap], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [m] = (await Promise.race([once(child, 'message'), once(child, 'exit').then(() => [{ exited: true }])])) as [{ ready?: boolean }]
  if (m.ready !== true) throw new Error('a DHT bench worker exited before its nodes started')
  return new Worker(child)
}

export async function startSwarm(size: number, procs: number): Promise<Swarm> {
  const started = performance.now()
  const seed = await createPollenNode({ privateKey: await generateKeyPair('Ed25519') }, { logger: pino({ level: 'error' }) })
  const others = size - 1
  const shares = Array.from({ length: procs }, (_, i) => Math.floor(others / procs) + (i < others % procs ? 1 : 0)).filter((n) => n > 0)
  const workers: Worker[] = []
  try {
    // Started one after the other, like a fleet coming up over a few seconds.
    for (const n of shares) workers.push(await startWorker(n, seed.multiaddrs()[0]!))
  } catch (err) {
    for (const w of workers) w.child.kill('SIGKILL')
    await seed.stop()
    throw err
  }
  /** Global index → the process and local index holding it; node 0 is the seed, here. */
  const where = (i: number): { w: Worker; local: number } | undefined => {
    if (i === 0) return undefined
    let local = i - 1
    for (const [k, n] of shares.entries()) {
      if (local < n) return { w: workers[k]!, local }
      local -= n
    }
    throw new Error(`no node ${i}`)
  }
  return {
    size,
    procs: workers.length,
    startSeconds: (performance.now() - started) / 1000,
    async provide(i, digest) {
      const at = where(i)
      return at === undefined ? timedProvide(seed, digest) : at.w.request<ProvideSample>({ op: 'provide', node: at.local, digest })
    },
    async find(i, digest) {
      const at = where(i)
      return at === undefined ? timedFind(seed, digest) : at.w.request<FindSample>({ op: 'find', node: at.local, digest })
    },
    async sizes() {
      const parts = await Promise.all(workers.map((w) => w.request<{ tables: number[]; connections: number[] }>({ op: 'tables' })))
      return { tables: [seed.routingTableSize(), ...parts.flatMap((p) => p.tables)], connections: [seed.connectedPeers(), ...parts.flatMap((p) => p.connections)] }
    },
    async resetEventLoop() {
      await Promise.all(workers.map((w) => w.request({ op: 'loop-reset' })))
    },
    async eventLoop() {
      const all = await Promise.all(workers.map((w) => w.request<{ p50: number; p99: number; max: number }>({ op: 'loop' })))
      return { p50: Math.max(...all.map((a) => a.p50)), p99: Math.max(...all.map((a) => a.p99)), max: Math.max(...all.map((a) => a.max)) }
    },
    async stop() {
      await Promise.allSettled(workers.map((w) => w.request({ op: 'stop' })))
      for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL')
      await seed.stop()
    },
  }
}

export function spread(values: number[]): Spread {
  const s = [...values].sort((a, b) => a - b)
  return { min: s[0] ?? 0, median: s[Math.floor((s.length - 1) / 2)] ?? 0, max: s.at(-1) ?? 0 }
}

/**
 * Waits until every routing table holds at least `minPeers` and none changed for `stableMs`,
 * or `timeoutMs` passed; resolves with how long that took and the final sizes.
 */
export async function settle(swarm: Swarm, opts: { minPeers: number; stableMs: number; timeoutMs: number }): Promise<{ seconds: number; timedOut: boolean; routingTables: Spread; connections: Spread }> {
  const started = performance.now()
  let last = ''
  let stableSince = performance.now()
  let timedOut = false
  let now = await swarm.sizes()
  for (;;) {
    now = await swarm.sizes()
    const key = now.tables.join(',')
    if (key !== last) {
      last = key
      stableSince = performance.now()
    }
    if (performance.now() - stableSince >= opts.stableMs && Math.min(...now.tables) >= opts.minPeers) break
    if (performance.now() - started >= opts.timeoutMs) {
      timedOut = true
      break
    }
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
  return { seconds: (performance.now() - started) / 1000, timedOut, routingTables: spread(now.tables), connections: spread(now.connections) }
}
