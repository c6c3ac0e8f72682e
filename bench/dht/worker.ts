/**
 * A child process hosting a share of the DHT bench's nodes (see swarm.ts). It starts `count`
 * nodes bootstrapping from the address given, then answers the parent's requests over IPC:
 * table sizes, a timed provide or lookup by one of its nodes, its event-loop delay; 'stop'
 * stops its nodes and exits.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { createPollenNode, type PollenNode } from '../../content/p2p/node.js'
import { timedFind, timedProvide } from './lookups.js'

export type WorkerRequest =
  | { id: number; op: 'tables' }
  | { id: number; op: 'provide' | 'find'; node: number; digest: string }
  | { id: number; op: 'loop-reset' }
  | { id: number; op: 'loop' }
  | { id: number; op: 'stop' }

/** Started together: a whole fleet dialling the seed in the same instant is not what a rollout looks like. */
const START_BATCH = 4

async function main(): Promise<void> {
  const [countArg, bootstrap] = process.argv.slice(2)
  const count = Number(countArg)
  const logger = pino({ level: 'error' })
  const nodes: PollenNode[] = []
  while (nodes.length < count) {
    const batch = Math.min(START_BATCH, count - nodes.length)
    nodes.push(...(await Promise.all(Array.from({ length: batch }, async () => createPollenNode({ privateKey: await generateKeyPair('Ed25519'), bootstrap: [bootstrap!] }, { logger })))))
  }
  let delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const send = (msg: unknown): void => void process.send!(msg)
  process.on('message', (m: WorkerRequest) => {
    void (async () => {
      try {
        switch (m.op) {
          case 'tables':
            return send({ id: m.id, result: { tables: nodes.map((n) => n.routingTableSize()), connections: nodes.map((n) => n.connectedPeers()) } })
          case 'provide':
            return send({ id: m.id, result: await timedProvide(nodes[m.node]!, m.digest) })
          case 'find':
            return send({ id: m.id, result: await timedFind(nodes[m.node]!, m.digest) })
          case 'loop-reset':
            delay.disable()
            delay = monitorEventLoopDelay({ resolution: 10 })
            delay.enable()
            return send({ id: m.id, result: null })
          case 'loop':
            return send({ id: m.id, result: { p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 } })
          case 'stop':
            await Promise.allSettled(nodes.map((n) => n.stop()))
            send({ id: m.id, result: null })
            process.exit(0)
        }
      } catch (err) {
        send({ id: m.id, error: (err as Error).message })
      }
    })()
  })
  process.on('disconnect', () => process.exit(0))
  send({ ready: true })
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
