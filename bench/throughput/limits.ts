/**
 * The limits the Pollen paths are compared with, each measured in this run: raw TCP, sha256
 * alone, HTTP (undici) + sha256 from a minimal node server, and an unverified libp2p stream
 * between two createPollenNode nodes. The far ends run in limit-peer.ts child processes; the
 * receiving end is this process, whose CPU time is what is reported.
 */
import '../../content/p2p/node20-shim.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect } from 'node:net'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { request } from 'undici'
import { createPollenNode } from '../../content/p2p/node.js'
import { readableOf } from '../../agent/p2p/stream-io.js'
import { selfCpu, type Sample } from './measure.js'

const PEER = fileURLToPath(new URL('./limit-peer.ts', import.meta.url))
const RAW_PROTOCOL = '/pollen-bench/raw/1'

interface LimitPeer {
  address: string
  child: ChildProcess
  stop(): Promise<void>
}

async function startPeer(mode: string, arg: string): Promise<LimitPeer> {
  const child = spawn(process.execPath, ['--import', 'tsx', PEER, mode, arg], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  for await (const line of lines) {
    if (!line.startsWith('READY ')) continue
    clearTimeout(timer)
    return {
      address: line.slice(6),
      child,
      stop: async () => {
        if (child.exitCode !== null) return
        child.kill('SIGTERM')
        await once(child, 'exit')
      },
    }
  }
  throw new Error(`limit peer ${mode} exited before it was ready`)
}

/**
 * Counts a stream's bytes with 'data' events. (Async iteration of a byte stream joins
 * whatever is buffered into one new Buffer on each read: a copy the limit must not pay.)
 */
function countBytes(stream: Readable): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0
    stream.on('data', (chunk: Uint8Array) => {
      got += chunk.byteLength
    })
    stream.once('end', () => resolve(got))
    stream.once('error', reject)
  })
}

/** One timed receive on this process: MB/s and this process's CPU seconds. */
async function timed(size: number, body: () => Promise<number>): Promise<Sample> {
  const t = performance.now()
  const c = selfCpu()
  const got = await body()
  if (got !== size) throw new Error(`received ${got} bytes, expected ${size}`)
  return { mbps: size / 1e6 / ((performance.now() - t) / 1000), cpu: selfCpu() - c, rssMiB: undefined }
}

/** sha256 (node:crypto, one thread) over `size` bytes of an in-memory buffer, 1 MiB updates. */
export async function sha256Alone(size: number): Promise<Sample> {
  const buf = randomBytes(64 * 1024 * 1024)
  return timed(size, async () => {
    const hash = createHash('sha256')
    let done = 0
    while (done < size) {
      const n = Math.min(1024 * 1024, size - done)
      const off = done % buf.byteLength
      hash.update(buf.subarray(off, off + n))
      done += n
    }
    hash.digest()
    return done
  })
}

/** Raw TCP over loopback: a child writes `size` bytes, this process reads and discards them. */
export async function rawTcp(size: number): Promise<Sample> {
  const peer = await startPeer('tcp', String(size))
  try {
    return await timed(size, async () => {
      return countBytes(connect(Number(peer.address), '127.0.0.1'))
    })
  } finally {
    await peer.stop()
  }
}

/** undici GET from a minimal node:http server streaming `file` from the page cache, hashed here. */
export async function httpSha256(file: string, size: number): Promise<Sample> {
  const peer = await startPeer('http', file)
  try {
    return await timed(size, async () => {
      const res = await request(`http://127.0.0.1:${peer.address}/`, { signal: AbortSignal.timeout(600_000) })
      const hash = createHash('sha256')
      let got = 0
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer)
        got += (chunk as Buffer).byteLength
      }
      hash.digest()
      return got
    })
  } finally {
    await peer.stop()
  }
}

/**
 * The same bytes over a raw libp2p stream (TCP + Noise + Yamux, 1 MiB sends) between two
 * createPollenNode nodes, read through readableOf (the agent's reader, with backpressure)
 * and discarded: no hashing, no framing, no disk.
 */
export async function libp2pUnverified(file: string, size: number): Promise<Sample> {
  const peer = await startPeer('libp2p', file)
  const node = await createPollenNode({ privateKey: await generateKeyPair('Ed25519') }, { logger: pino({ level: 'silent' }) })
  try {
    const target = multiaddr(peer.address)
    await node.libp2p.dial(target, { signal: AbortSignal.timeout(10_000) })
    return await timed(size, async () => {
      const stream = await node.libp2p.dialProtocol(target, RAW_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      return countBytes(readableOf(stream))
    })
  } finally {
    await node.stop()
    await peer.stop()
  }
}
