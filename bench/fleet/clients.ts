/**
 * The fleet's clients: one long-lived pull-node process per edge node, inside its namespace.
 * A pull writes an order to every client of the first N nodes in one synchronous loop, which
 * is the barrier: all nodes start at the same instant.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { inNs, type Host } from './network.js'
import type { PullNodeResult, PullOrder } from './pull-node.js'

const PULL_NODE = fileURLToPath(new URL('./pull-node.ts', import.meta.url))
/** `--import tsx` resolves from the working directory: the repository's root. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
const READY_TIMEOUT_MS = 120_000

export interface ImageRef {
  repo: string
  tag: string
  /** The registry the image lives in, as the `ns` query parameter names it. */
  ns: string
}

export interface NodePull extends PullNodeResult {
  node: string
  /** Seconds from the release of the barrier to the end of this node's pull. */
  seconds: number
}

export interface FleetPull {
  /** Epoch milliseconds at which the barrier was released. */
  releasedAt: number
  pulls: NodePull[]
}

interface Client {
  node: Host
  child: ChildProcess
  ready: Promise<void>
  /** Resolves the result of order `id`; a result for another id (a late one) is dropped. */
  waiting: Map<number, (r: PullNodeResult) => void>
  /** Why the process ended, once it has. */
  ended?: string
}

export class FleetClients {
  readonly #clients = new Map<Host, Client>()
  #nextId = 1

  /** Starts a client for every node that has none and waits until all are ready. */
  async start(nodes: Host[]): Promise<void> {
    await withTimeout(Promise.all(nodes.map((node) => this.#client(node).ready)), READY_TIMEOUT_MS, 'the clients did not all get ready')
  }

  /**
   * Makes sure every node has a running client (starting the missing ones at once), waits
   * until all print `ready`, calls `beforeRelease`, then orders all to pull through
   * `mirrorOf(node)`. Resolves once every node reported or `timeoutMs` passed since the
   * release; a node that has not reported by then is killed (its client is restarted on the
   * next pull) and reported as failed.
   */
  async pull(nodes: Host[], mirrorOf: (node: Host) => string, image: ImageRef, timeoutMs: number, beforeRelease: () => Promise<void>): Promise<FleetPull> {
    await this.start(nodes)
    const clients = nodes.map((node) => this.#client(node))
    await beforeRelease()
    const id = this.#nextId++
    const results = clients.map(
      (c) =>
        new Promise<PullNodeResult>((resolve) => {
          if (c.ended !== undefined) return resolve(failed(id, Date.now(), c.ended))
          c.waiting.set(id, resolve)
        }),
    )
    const releasedAt = Date.now()
    for (const c of clients) c.child.stdin!.write(`${JSON.stringify({ id, mirror: mirrorOf(c.node), ...image } satisfies PullOrder)}\n`)
    const timer = setTimeout(() => {
      for (const c of clients) {
        const resolve = c.waiting.get(id)
        if (resolve === undefined) continue
        resolve(failed(id, releasedAt, `timed out after ${timeoutMs / 1000} s`))
        this.#kill(c)
      }
    }, timeoutMs)
    try {
      const done = await Promise.all(results)
      return { releasedAt, pulls: done.map((r, i) => ({ ...r, node: nodes[i]!.role, seconds: (r.end - releasedAt) / 1000 })) }
    } finally {
      clearTimeout(timer)
      for (const c of clients) c.waiting.delete(id)
    }
  }

  /** Kills every client. */
  stop(): void {
    for (const c of this.#clients.values()) this.#kill(c)
  }

  #kill(c: Client): void {
    this.#clients.delete(c.node)
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL')
  }

  #client(node: Host): Client {
    const existing = this.#clients.get(node)
    if (existing !== undefined && existing.ended === undefined) return existing
    const [cmd, ...args] = [...inNs(node.ns), process.execPath, '--import', 'tsx', PULL_NODE]
    const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: REPO_ROOT })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)))
    child.stdin!.on('error', () => {})
    const lines = createInterface({ input: child.stdout! })
    const client: Client = { node, child, ready: Promise.resolve(), waiting: new Map() }
    client.ready = new Promise<void>((resolve, reject) => {
      lines.on('line', (line) => {
        if (line === 'ready') return resolve()
        if (!line.startsWith('{')) return
        const result = JSON.parse(line) as PullNodeResult
        client.waiting.get(result.id)?.(result)
      })
      child.once('close', (code, signal) => {
        client.ended = `client in ${node.ns} exited (code ${code}, signal ${signal}): ${stderr.trim()}`
        reject(new Error(client.ended))
        for (const [id, resolve] of client.waiting) resolve(failed(id, Date.now(), client.ended))
      })
    })
    client.ready.catch(() => {})
    this.#clients.set(node, client)
    return client
  }
}

function failed(id: number, at: number, error: string): PullNodeResult {
  return { id, ok: false, start: at, end: Date.now(), bytes: 0, blobs: 0, cpuSeconds: 0, error }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}
