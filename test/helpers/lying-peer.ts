/**
 * A hostile peer, run as its own process: it joins the DHT, provides a digest, and answers
 * every /pollen/blob/1.0.0 request for it with `ok, complete` and random bytes of the right
 * size. Prints `ready <PeerId>` when it has provided.
 *
 * With --seed and --join-token-file it first enrolls its own identity and presents the token on
 * every connection, as an enrolled (so admitted) host gone bad would: enrolled agents and the
 * seed disconnect peers that show no token.
 *
 *   node --import tsx test/helpers/lying-peer.ts --bootstrap MULTIADDR --digest sha256:… --size N [--seed URL --join-token-file FILE]
 */
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { signProof } from '../../content/admission/proof.js'
import { createPollenNode } from '../../content/p2p/node.js'
import { DhtRouter } from '../../agent/p2p/router.js'
import { sendBytes } from '../../agent/p2p/stream-io.js'
import { BLOB_PROTOCOL, encodeResponse } from '../../protocol/blob-frames.js'

const { values } = parseArgs({
  options: { bootstrap: { type: 'string', multiple: true }, digest: { type: 'string' }, size: { type: 'string' }, seed: { type: 'string' }, 'join-token-file': { type: 'string' } },
})
const size = Number(values.size)
const logger = pino({ level: 'warn' })
const privateKey = await generateKeyPair('Ed25519')
let token: string | undefined
if (values.seed !== undefined && values['join-token-file'] !== undefined) {
  const proof = await signProof(privateKey, 'pollen-seed', Math.floor(Date.now() / 1000))
  const joinToken = (await readFile(values['join-token-file'], 'utf8')).trim()
  const res = await fetch(`${values.seed}/v1/admission`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ peerId: proof.peerId, proof: { timestamp: proof.timestamp, signature: proof.signature }, joinToken }),
    signal: AbortSignal.timeout(10_000),
  })
  if (res.status !== 200) throw new Error(`lying peer: enrollment refused with HTTP ${res.status}`)
  token = ((await res.json()) as { token: string }).token
}
const node = await createPollenNode({ privateKey, bootstrap: values.bootstrap ?? [] }, { logger, token: () => token })
await node.libp2p.handle(BLOB_PROTOCOL, (stream) => {
  void (async () => {
    await sendBytes(stream, encodeResponse({ status: 'ok', size, available: size, complete: true }))
    for (let sent = 0; sent < size; sent += 1024 * 1024) await sendBytes(stream, randomBytes(Math.min(1024 * 1024, size - sent)))
    await stream.close()
  })().catch(() => stream.abort(new Error('lying peer stopped')))
})
const router = new DhtRouter({ libp2p: node.libp2p, logger })
await router.provide(values.digest!, AbortSignal.timeout(10_000))
process.stdout.write(`ready ${node.peerId}\n`)
process.once('SIGTERM', () => void node.stop().then(() => process.exit(0)))
