import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CachingSource } from '../../content/caching-source.js'
import { MemorySource } from '../../content/fault-sources.js'
import { createPollenNode, type PollenNode } from '../../content/p2p/node.js'
import { ContentStore } from '../../content/store.js'
import { BLOB_PROTOCOL, encodeRequest, type BlobResponse } from '../../protocol/blob-frames.js'
import { parseDigest } from '../../protocol/digest.js'
import { BlobServer } from './blob-server.js'
import { readFrame, readableOf, sendBytes } from './stream-io.js'

const logger = pino({ level: 'silent' })
const bytes = randomBytes(64 * 1024)
const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`

let work: string
let server: PollenNode
let client: PollenNode
let store: ContentStore
/** The repositories each authorize call was given; a call refuses when `refuse` is set. */
const calls: Array<readonly string[] | undefined> = []
let refuse: Error | undefined

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'pollen-blob-admission-'))
  server = await createPollenNode({ privateKey: await generateKeyPair('Ed25519') }, { logger })
  client = await createPollenNode({ privateKey: await generateKeyPair('Ed25519') }, { logger })
  store = await ContentStore.open({ dir: work }, { logger })
  await store.putBuffer(parseDigest(digest), bytes, { repository: 'registry.example/team/app' })
  const blobs = new CachingSource({}, { store, source: new MemorySource('seed'), logger })
  const authorize = async (_token: string | undefined, _peer: string, repositories: readonly string[] | undefined): Promise<void> => {
    calls.push(repositories)
    if (refuse !== undefined) throw refuse
  }
  await new BlobServer({}, { libp2p: server.libp2p, store, blobs, logger, authorize }).start()
})
afterAll(async () => {
  await client?.stop()
  await server?.stop()
  await store?.close()
  await rm(work, { recursive: true, force: true })
})

async function request(d: string): Promise<{ response: BlobResponse; body: Buffer }> {
  const stream = await client.libp2p.dialProtocol(server.multiaddrs().map((a) => multiaddr(a)), BLOB_PROTOCOL, { signal: AbortSignal.timeout(5000) })
  const readable = readableOf(stream)
  await sendBytes(stream, encodeRequest({ digest: d, offset: 0, token: 'a.b.c' }))
  const response = await readFrame(readable, 'response', AbortSignal.timeout(5000))
  const parts: Buffer[] = []
  for await (const chunk of readable) parts.push(chunk as Buffer)
  return { response, body: Buffer.concat(parts) }
}

describe('blob server admission', () => {
  it('gives authorize the repositories the blob was seen in, and serves it when authorize accepts', async () => {
    calls.length = 0
    refuse = undefined
    const { response, body } = await request(digest)
    expect(calls).toEqual([['registry.example/team/app']])
    expect(response.status).toBe('ok')
    expect(body.equals(bytes)).toBe(true)
  })

  it('answers unauthorized with the refusal message and no blob bytes when authorize refuses', async () => {
    refuse = new Error('admission token refused (scope): token scope covers no repository this blob was seen in')
    const { response, body } = await request(digest)
    expect(response).toEqual({ status: 'unauthorized', message: refuse.message })
    expect(body.length).toBe(0)
  })

  it('gives authorize no repositories for a blob it does not hold', async () => {
    calls.length = 0
    refuse = undefined
    const { response } = await request(`sha256:${'0'.repeat(64)}`)
    expect(calls).toEqual([undefined])
    expect(response.status).toBe('not-found')
  })
})
