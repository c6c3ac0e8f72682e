/**
 * One edge node's client, run inside its namespace for the whole bench:
 *   ip netns exec NS node --import tsx bench/fleet/pull-node.ts
 * Prints `ready` once loaded. Each stdin line is a PullOrder (JSON); the line itself is the
 * start signal, so the bench releases every node at once by writing to all of them together.
 * It pulls the image the way containerd does (test/helpers/pull-client.ts: manifest, then
 * blobs 3 at a time, each sha256-checked) and prints one JSON line: PullNodeResult.
 * Staying up across runs spares a TypeScript start-up per node per run (~0.7 CPU s).
 */
import { createInterface } from 'node:readline'
import { pullImage } from '../../test/helpers/pull-client.js'

export interface PullOrder {
  id: number
  mirror: string
  repo: string
  tag: string
  /** The `ns` query parameter: the registry the image lives in. */
  ns: string
}

export interface PullNodeResult {
  /** The order's id. */
  id: number
  ok: boolean
  /** Epoch milliseconds when the order arrived and when the pull ended. */
  start: number
  end: number
  bytes: number
  blobs: number
  /** This client's CPU seconds (user + system) over the pull. */
  cpuSeconds: number
  error?: string
}

async function pull(order: PullOrder): Promise<PullNodeResult> {
  const cpu0 = process.cpuUsage()
  const start = Date.now()
  const cpu = (): number => {
    const { user, system } = process.cpuUsage(cpu0)
    return (user + system) / 1e6
  }
  try {
    const pulled = await pullImage(order.mirror, order.repo, order.tag, order.ns)
    return { id: order.id, ok: true, start, end: Date.now(), bytes: pulled.bytes, blobs: pulled.blobs, cpuSeconds: cpu() }
  } catch (err) {
    return { id: order.id, ok: false, start, end: Date.now(), bytes: 0, blobs: 0, cpuSeconds: cpu(), error: (err as Error).message.slice(0, 500) }
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (line.trim() === '') return
  void pull(JSON.parse(line) as PullOrder).then((result) => process.stdout.write(`${JSON.stringify(result)}\n`))
})
lines.on('close', () => process.exit(0))
process.stdout.write('ready\n')
