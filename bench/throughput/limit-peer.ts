/**
 * The far end of the limit measurements, run as its own process so sender and receiver each
 * have a thread (as two agents do). Prints one line `READY <address>` on stdout, then serves
 * until killed:
 *   tcp SIZE         a TCP server; each connection receives SIZE bytes (a 1 MiB buffer written repeatedly)
 *   http FILE        a minimal node:http server answering every GET with FILE (from the page cache)
 *   libp2p FILE      a createPollenNode node; each /pollen-bench/raw/1 stream receives FILE, 1 MiB sends, no framing
 */
import '../../content/p2p/node20-shim.js'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo } from 'node:net'
import { pipeline } from 'node:stream/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { createPollenNode } from '../../content/p2p/node.js'
import { sendBytes } from '../../agent/p2p/stream-io.js'

export const RAW_PROTOCOL = '/pollen-bench/raw/1'
const CHUNK = 1024 * 1024

async function main(): Promise<void> {
  const [mode, arg] = process.argv.slice(2)
  if (mode === 'tcp') {
    const size = Number(arg)
    const chunk = Buffer.alloc(CHUNK, 7)
    const server = createTcpServer((socket) => {
      let left = size
      const write = (): void => {
        while (left > 0) {
          const n = Math.min(CHUNK, left)
          left -= n
          if (!socket.write(n === CHUNK ? chunk : chunk.subarray(0, n))) return void socket.once('drain', write)
        }
        socket.end()
      }
      socket.on('error', () => {})
      write()
    })
    server.listen(0, '127.0.0.1', () => ready(String((server.address() as AddressInfo).port)))
  } else if (mode === 'http') {
    const file = arg!
    const { size } = await stat(file)
    const server = createHttpServer((req, res) => {
      res.writeHead(200, { 'Content-Length': size, 'Content-Type': 'application/octet-stream' })
      pipeline(createReadStream(file, { highWaterMark: CHUNK }), res).catch(() => {})
    })
    server.listen(0, '127.0.0.1', () => ready(String((server.address() as AddressInfo).port)))
  } else if (mode === 'libp2p') {
    const file = arg!
    const node = await createPollenNode({ privateKey: await generateKeyPair('Ed25519') }, { logger: pino({ level: 'silent' }) })
    await node.libp2p.handle(RAW_PROTOCOL, async (stream) => {
      try {
        for await (const chunk of createReadStream(file, { highWaterMark: CHUNK })) await sendBytes(stream, chunk as Buffer)
        await stream.close()
      } catch (err) {
        stream.abort(err as Error)
      }
    })
    ready(node.multiaddrs()[0]!)
  } else {
    throw new TypeError(`unknown mode ${mode}`)
  }
}

function ready(address: string): void {
  process.stdout.write(`READY ${address}\n`)
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
