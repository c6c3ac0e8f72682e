/**
 * A node's client, run inside its network namespace for a whole test:
 *   ip netns exec NS node --import tsx test/helpers/ns-pull-client.ts
 * Prints `ready`, then answers each stdin line (an NsOrder, JSON) with one stdout line (its
 * NsAnswer, JSON), orders running concurrently. It reaches the agent on the namespace's own
 * loopback, as containerd would, so a network partition never cuts the client from its agent.
 */
import { createInterface } from 'node:readline'
import { verifiedPull, type PullOptions, type PullOutcome } from './reliability.js'

export type NsOrder =
  | { id: number; kind: 'pull'; mirror: string; repo: string; reference: string; ns: string; options?: PullOptions }
  | { id: number; kind: 'get'; url: string }

export type NsAnswer =
  | { id: number; kind: 'pull'; outcome: PullOutcome; start: number; end: number }
  | { id: number; kind: 'get'; status: number; body: string }

async function answer(order: NsOrder): Promise<NsAnswer> {
  if (order.kind === 'pull') {
    const start = Date.now()
    const outcome = await verifiedPull(order.mirror, order.repo, order.reference, order.ns, order.options)
    return { id: order.id, kind: 'pull', outcome, start, end: Date.now() }
  }
  try {
    const res = await fetch(order.url, { signal: AbortSignal.timeout(10_000) })
    return { id: order.id, kind: 'get', status: res.status, body: await res.text() }
  } catch {
    return { id: order.id, kind: 'get', status: 0, body: '' }
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (line.trim() === '') return
  void answer(JSON.parse(line) as NsOrder).then((a) => process.stdout.write(`${JSON.stringify(a)}\n`))
})
lines.on('close', () => process.exit(0))
process.stdout.write('ready\n')
