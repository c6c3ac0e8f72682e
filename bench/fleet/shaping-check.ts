/**
 * Checks that the tbf shaping does what it was told: a few timed HTTP transfers across the
 * shaped links at startup, each compared with the rate of its narrowest link.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { inNs, type Host, type Network } from './network.js'

const run = promisify(execFile)
const PORT = 7999
const SECONDS = 1.5

/** Serves `GET /<n>` as n zero bytes, honouring backpressure; prints `ready` once listening. */
const BYTE_SERVER = `
const b = Buffer.alloc(1 << 20)
require('http').createServer((q, s) => {
  let n = Number(q.url.slice(1))
  s.writeHead(200, { 'content-length': n })
  const w = () => { while (n > 0) { const c = Math.min(n, b.length); n -= c; if (!s.write(b.subarray(0, c))) return s.once('drain', w) } s.end() }
  w()
}).listen(${PORT}, process.argv[1], () => console.log('ready'))
`

export interface LinkCheck {
  path: string
  configuredBps: number
  measuredBps: number
  /** Measured goodput ÷ configured link rate; TCP/IP headers alone keep this near 0.95. */
  ratio: number
}

/** Measures edge download and upload, the seed's uplink and the WAN link, one transfer each. */
export async function checkShaping(net: Network): Promise<LinkCheck[]> {
  const node = net.nodes[0]!
  const servers = new Map<Host, ChildProcess>()
  try {
    for (const h of [net.seed, node, net.upstream]) servers.set(h, await startByteServer(h))
    const checks: Array<[string, Host, Host | undefined, number]> = [
      ['seed → edge node (edge download)', net.seed, node, Math.min(net.seed.rateBps, node.rateBps)],
      ['edge node → root (edge upload)', node, undefined, node.rateBps],
      ['seed → root (seed uplink)', net.seed, undefined, net.seed.rateBps],
      ['upstream → root (WAN)', net.upstream, undefined, net.upstream.rateBps],
    ]
    const results: LinkCheck[] = []
    for (const [path, from, to, configuredBps] of checks) {
      const measuredBps = await transfer(from, to, Math.max(2e6, Math.round((configuredBps / 8) * SECONDS)))
      results.push({ path, configuredBps, measuredBps, ratio: measuredBps / configuredBps })
    }
    return results
  } finally {
    for (const child of servers.values()) child.kill('SIGKILL')
  }
}

async function startByteServer(h: Host): Promise<ChildProcess> {
  const [cmd, ...args] = [...inNs(h.ns), process.execPath, '-e', BYTE_SERVER, h.addr]
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  const ready = once(lines, 'line')
  const exited = once(child, 'exit').then(() => Promise.reject(new Error(`byte server in ${h.ns} exited`)))
  await Promise.race([ready, exited])
  return child
}

/** Downloads `bytes` from `from`'s byte server in `to`'s namespace (the root when undefined); resolves to bits per second. */
async function transfer(from: Host, to: Host | undefined, bytes: number): Promise<number> {
  const curl = ['curl', '-sS', '--fail', '--max-time', '60', '-o', '/dev/null', '-w', '%{size_download} %{speed_download}', `http://${from.addr}:${PORT}/${bytes}`]
  const [cmd, ...args] = [...(to === undefined ? [] : inNs(to.ns)), ...curl]
  const { stdout } = await run(cmd!, args)
  const [got, speed] = stdout.trim().split(' ').map(Number)
  if (got !== bytes) throw new Error(`shaping check ${from.ns} → ${to?.ns ?? 'root'}: got ${got} of ${bytes} bytes`)
  return speed! * 8
}
