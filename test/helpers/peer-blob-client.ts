/**
 * A test peer that speaks `/pollen/blob/1.0.0` itself, with its own libp2p identity, and the
 * enrollment call that gets such an identity an admission token from a seed.
 */
import type { PrivateKey } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { signProof } from '../../content/admission/proof.js'
import { createPollenNode, type PollenNode } from '../../content/p2p/node.js'
import { readFrame, readableOf, sendBytes } from '../../agent/p2p/stream-io.js'
import { BLOB_PROTOCOL, encodeRequest, type BlobResponse } from '../../protocol/blob-frames.js'

/** What a peer answered to one blob request. */
export interface PeerAnswer {
  response: BlobResponse
  /** Every byte the peer sent after the response header, until it closed the stream. */
  body: Buffer
}

/** A libp2p node of the test's own: `peerId` is what Noise proves to the agent. */
export interface TestPeer {
  privateKey: PrivateKey
  peerId: string
  node: PollenNode
  /** Dials `addrs` (an agent's /p2p addresses), sends one blob request at once, and reads the whole answer. */
  requestBlob(addrs: string[], digest: string, token: string | undefined): Promise<PeerAnswer>
  stop(): Promise<void>
}

const ANSWER_TIMEOUT_MS = 10_000

/** Starts a libp2p node on loopback with `privateKey` (default: a fresh Ed25519 key). */
export async function startTestPeer(privateKey?: PrivateKey): Promise<TestPeer> {
  const key = privateKey ?? (await generateKeyPair('Ed25519'))
  const node = await createPollenNode({ privateKey: key }, { logger: pino({ level: 'silent' }) })
  return {
    privateKey: key,
    peerId: node.peerId,
    node,
    async requestBlob(addrs, digest, token) {
      const signal = AbortSignal.timeout(ANSWER_TIMEOUT_MS)
      const stream = await node.libp2p.dialProtocol(addrs.map((a) => multiaddr(a)), BLOB_PROTOCOL, { signal })
      const readable = readableOf(stream)
      try {
        await sendBytes(stream, encodeRequest(token === undefined ? { digest, offset: 0 } : { digest, offset: 0, token }), signal)
        const response = await readFrame(readable, 'response', signal)
        const parts: Buffer[] = []
        for await (const chunk of readable) parts.push(chunk as Buffer)
        return { response, body: Buffer.concat(parts) }
      } finally {
        readable.destroy()
      }
    },
    stop: () => node.stop(),
  }
}

/**
 * `POST /v1/admission` for `privateKey`'s PeerId with a proof of key possession and
 * `joinToken`; resolves the raw response (200 with `{token}`, or an OCI error).
 */
export async function enroll(seedUrl: string, privateKey: PrivateKey, joinToken: string, issuer = 'pollen-seed'): Promise<Response> {
  const proof = await signProof(privateKey, issuer, Math.floor(Date.now() / 1000))
  return fetch(`${seedUrl}/v1/admission`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ peerId: proof.peerId, proof: { timestamp: proof.timestamp, signature: proof.signature }, joinToken }),
    signal: AbortSignal.timeout(10_000),
  })
}

/** Enrolls `privateKey` and returns its admission token; throws when the seed refuses. */
export async function enrolledToken(seedUrl: string, privateKey: PrivateKey, joinToken: string): Promise<string> {
  const res = await enroll(seedUrl, privateKey, joinToken)
  if (res.status !== 200) throw new Error(`enrollment refused: HTTP ${res.status} ${await res.text()}`)
  return ((await res.json()) as { token: string }).token
}
