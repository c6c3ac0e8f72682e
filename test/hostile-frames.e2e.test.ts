import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import fc from 'fast-check'
import { pino } from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { readableOf } from '../agent/p2p/stream-io.js'
import { createPollenNode, type PollenNode } from '../content/p2p/node.js'
import { ADMISSION_PROTOCOL, AdmissionFrameReader, encodePresentation } from '../protocol/admission-frames.js'
import { BLOB_PROTOCOL, FrameReader, decodeFrame, encodeRequest, type BlobResponse } from '../protocol/blob-frames.js'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { enrolledToken, startTestPeer } from './helpers/peer-blob-client.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type PollenProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

// Generated and mutated frames from real libp2p clients against a real agent holding a blob:
// on /pollen/blob/1.0.0 from an admitted client, and on /pollen/admission/1.0.0 from fresh
// identities. Properties: the agent stays up and keeps serving an admitted peer correct bytes;
// every answer is a well-formed response frame (or nothing: a closed or reset stream); it never
// says 'ok' to a request that does not decode; nothing we sent is echoed back.

const BLOB_CASES = Number(process.env.HOSTILE_BLOB_CASES ?? 2_500)
const ADMISSION_CASES = Number(process.env.HOSTILE_ADMISSION_CASES ?? 200)
const CONCURRENCY = 8
const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const MARK = 'pollenfuzz'
const ANSWER_MS = 5_000
const logger = pino({ level: 'silent' })

let work: string
let registry: RunningRegistry
let seed: SeedProcess
let agent: AgentProcess
let image: BuiltImage
let blob: Buffer

const p2pAddrs = (p: PollenProcess) => ((p.logs.find((l) => l.msg === 'agent listening')?.p2p as string[]) ?? []).map((a) => multiaddr(a))
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** A frame with any type, version and body bytes, and an honest length prefix. */
function frame(version: number, type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(6 + body.length)
  new DataView(out.buffer).setUint32(0, 2 + body.length, false)
  out[4] = version
  out[5] = type
  out.set(body, 6)
  return out
}
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))

/** Mutations of a valid frame: bit flips, truncation, length-prefix lies, huge lengths, extra bytes. */
function mutated(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 4, arbitrary: base },
    fc.tuple(base, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 })).map(([b, flips]) => {
      const out = Uint8Array.from(b)
      for (const [at, bit] of flips) out[at % out.length]! ^= 1 << bit
      return out
    }),
    fc.tuple(base, fc.nat()).map(([b, n]) => b.slice(0, n % b.length)),
    fc.tuple(base, fc.constantFrom(0, 1, 2, 3, 0x4001, 0x10000, 0x7fffffff, 0xffffffff), fc.boolean()).map(([b, len, relative]) => {
      const out = Uint8Array.from(b)
      const view = new DataView(out.buffer)
      view.setUint32(0, relative ? (view.getUint32(0) + len) >>> 0 : len, false)
      return out
    }),
    fc.tuple(base, fc.integer({ min: -8, max: 8 })).map(([b, d]) => {
      const out = Uint8Array.from(b)
      const view = new DataView(out.buffer)
      view.setUint32(0, Math.max(0, view.getUint32(0) + d), false)
      return out
    }),
    fc.tuple(base, fc.uint8Array({ minLength: 1, maxLength: 2_000 })).map(([b, extra]) => Uint8Array.from([...b, ...extra])),
    fc.tuple(base, base).map(([a, b]) => Uint8Array.from([...a, ...b])),
    fc.uint8Array({ maxLength: 300 }),
    fc.integer({ min: 16 * 1024, max: 200 * 1024 }).map((n) => new Uint8Array(n).fill(0x41)),
  )
}

function blobFrames(held: string[], token: () => string): fc.Arbitrary<Uint8Array> {
  const digest = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...held) },
    { weight: 2, arbitrary: fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`) },
    { weight: 1, arbitrary: fc.constantFrom(`sha256:${MARK}`, 'SHA256:' + 'a'.repeat(64), 'sha512:' + 'b'.repeat(128), '../../etc/passwd', '', `${MARK}:${'0'.repeat(64)}`) },
  )
  const offset = fc.oneof(fc.constantFrom(0, 0, 1, 1_000), fc.nat({ max: 300_000 }), fc.constantFrom(-1, 1.5, 2 ** 53, 1e300, Number.MAX_SAFE_INTEGER))
  const tokenValue = fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined).map(() => token()) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.tuple(fc.nat(), fc.constantFrom('A', '.', MARK)).map(([at, c]) => { const t = token(); const i = at % t.length; return t.slice(0, i) + c + t.slice(i + 1) }) },
    { weight: 1, arbitrary: fc.constantFrom('', MARK, `${MARK}.${MARK}.${MARK}`, 'x'.repeat(8 * 1024 + 1)) },
  )
  const valid = fc.tuple(digest, offset, tokenValue).map(([d, o, t]) => {
    try {
      return encodeRequest(t === undefined ? { digest: d, offset: o } : { digest: d, offset: o, token: t })
    } catch {
      return frame(1, 1, json({ digest: d, offset: o, token: t }))
    }
  })
  const oddBodies = fc
    .tuple(
      fc.constantFrom(1, 1, 1, 0, 2, 255),
      fc.constantFrom(1, 1, 1, 2, 0, 3),
      fc.oneof(
        fc.record({ digest, offset: fc.jsonValue(), token: tokenValue }, { requiredKeys: [] }).map(json),
        fc.tuple(digest, offset).map(([d, o]) => json({ digest: d, offset: o, token: token(), [MARK]: MARK, __proto__x: 1 })),
        fc.tuple(digest).map(([d]) => new TextEncoder().encode(`{"digest":"${d}","offset":0,"offset":-5,"token":"${token()}"}`)),
        fc.jsonValue().map(json),
        fc.uint8Array({ maxLength: 500 }),
        fc.constant(Uint8Array.from([0xef, 0xbb, 0xbf, ...json({ digest: held[0], offset: 0 })])),
      ),
    )
    .map(([v, t, b]) => frame(v, t, b))
  return mutated(fc.oneof({ weight: 3, arbitrary: valid }, { weight: 2, arbitrary: oddBodies }))
}

interface Exchange {
  sent: Uint8Array
  /** Every byte the agent sent back, until it closed or reset the stream. */
  got: Buffer
  /** How the stream ended, or the dial error. */
  ended: 'closed' | 'reset' | 'timeout' | 'refused'
}

/** Opens `protocol` to the agent, sends `bytes`, closes its writable end and reads everything back. */
async function exchange(node: PollenNode, protocol: string, bytes: Uint8Array, limit: number): Promise<Exchange> {
  let stream
  try {
    stream = await node.libp2p.dialProtocol(p2pAddrs(agent), protocol, { signal: AbortSignal.timeout(ANSWER_MS) })
  } catch {
    return { sent: bytes, got: Buffer.alloc(0), ended: 'refused' }
  }
  const readable = readableOf(stream)
  const parts: Buffer[] = []
  let n = 0
  let ended: Exchange['ended'] = 'closed'
  const timer = setTimeout(() => {
    ended = 'timeout'
    readable.destroy()
  }, ANSWER_MS)
  try {
    for (let at = 0; at < bytes.length; at += 64 * 1024) stream.send(bytes.subarray(at, at + 64 * 1024))
    void stream.close().catch(() => {})
    for await (const chunk of readable) {
      parts.push(chunk as Buffer)
      n += (chunk as Buffer).byteLength
      if (n > limit) break
    }
  } catch {
    if (ended === 'closed') ended = 'reset'
  } finally {
    clearTimeout(timer)
    readable.destroy()
  }
  return { sent: bytes, got: Buffer.concat(parts), ended }
}

/** Why the agent's answer breaks the properties, or undefined. */
function blobViolation(x: Exchange, token: string, heldBytes: Map<string, Buffer>): string | undefined {
  if (x.ended === 'timeout') return 'the agent neither answered nor closed the stream'
  const text = x.got.toString('latin1')
  if (text.includes(MARK)) return `the answer echoes what we sent: ${text.slice(0, 400)}`
  if (text.includes(token.slice(-40))) return 'the answer echoes the admission token'
  if (x.got.byteLength === 0) return undefined
  let response: BlobResponse
  let rest: Uint8Array
  try {
    const decoded = new FrameReader('response').push(x.got)
    if (decoded === undefined) return `a truncated response frame of ${x.got.byteLength} bytes`
    ;({ frame: response, rest } = decoded)
  } catch (err) {
    return `an answer that is not a response frame (${(err as Error).message}): ${x.got.subarray(0, 80).toString('hex')}`
  }
  let request
  try {
    request = decodeFrame('request', x.sent).frame
  } catch {
    request = undefined
  }
  if (response.status !== 'ok') return rest.byteLength === 0 ? undefined : 'bytes after a refusal'
  if (request === undefined) return `'ok' to a request that does not decode`
  const held = heldBytes.get(request.digest)
  if (held === undefined) return `'ok' for ${request.digest}, which it does not hold`
  if (!Buffer.from(rest).equals(held.subarray(request.offset))) return `wrong bytes for ${request.digest} from ${request.offset}`
  return undefined
}

async function enrolledNode(): Promise<{ node: PollenNode; token: string; key: PrivateKey }> {
  const key = await generateKeyPair('Ed25519')
  const token = await enrolledToken(seed.url, key, (await readFile(await seed.joinTokenFile(), 'utf8')).trim())
  const node = await createPollenNode({ privateKey: key }, { logger, token: () => token })
  await node.libp2p.dial(p2pAddrs(agent), { signal: AbortSignal.timeout(10_000) })
  return { node, token, key }
}

describeWithBinaries(['docker-registry'], 'hostile frames on /pollen/blob/1.0.0 and /pollen/admission/1.0.0 against a running agent', () => {
  const nodes: PollenNode[] = []

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-hostile-frames-'))
    registry = await startRegistry({})
    image = await buildImage(join(work, 'img'), { layers: [150_000, 20_000], seed: 'hostile-frames' })
    await pushImage(registry.url, 'team/app', 'v1', image)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    agent = await startAgentProcess(['--data', join(work, 'agent'), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())])
    await pullImage(agent.url, 'team/app', 'v1', registry.host)
    blob = await readFile(image.layers[0]!.path)
  })

  afterAll(async () => {
    for (const n of nodes) await n.stop().catch(() => {})
    await agent?.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it(`survives ${BLOB_CASES} generated blob frames from an admitted client and ${ADMISSION_CASES} admission frames from fresh identities, and still serves correct bytes`, { timeout: 600_000 }, async () => {
    const started = performance.now()
    const heldBytes = new Map<string, Buffer>([[image.layers[0]!.digest, blob]])
    for (const f of [image.config, image.layers[1]!]) heldBytes.set(f.digest, await readFile(f.path))
    let member = await enrolledNode()
    nodes.push(member.node)
    const frames = fc.sample(blobFrames([...heldBytes.keys()], () => member.token), { numRuns: BLOB_CASES, seed: SEED })

    const endings: Record<string, number> = {}
    const statuses: Record<string, number> = {}
    const bad: string[] = []
    let next = 0
    let identities = 1
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < frames.length) {
          const sent = frames[next++]!
          const x = await exchange(member.node, BLOB_PROTOCOL, sent, 1024 * 1024)
          endings[x.ended] = (endings[x.ended] ?? 0) + 1
          try {
            const status = new FrameReader('response').push(x.got)?.frame.status ?? 'none'
            statuses[status] = (statuses[status] ?? 0) + 1
          } catch {
            statuses.garbage = (statuses.garbage ?? 0) + 1
          }
          const why = blobViolation(x, member.token, heldBytes)
          if (why !== undefined) bad.push(`${why} (sent ${Buffer.from(sent.subarray(0, 120)).toString('hex')})`)
          if (x.ended === 'refused' && member.node.libp2p.getConnections().length === 0) {
            // The agent dropped our connection and may refuse this identity for a while: a fresh one.
            member = await enrolledNode()
            nodes.push(member.node)
            identities++
          }
        }
      }),
    )

    // Admission frames: each from a fresh identity, which the agent refuses (and shuns) after one bad presentation.
    const admissionFrames = fc.sample(
      mutated(
        fc.oneof(
          fc.constant(undefined).map(() => encodePresentation({ token: member.token })),
          fc.string({ minLength: 1, maxLength: 200 }).map((t) => encodePresentation({ token: `${MARK}${t}` })),
          fc.jsonValue().map((v) => frame(1, 1, json(v))),
          fc.record({ token: fc.oneof(fc.constant(MARK), fc.jsonValue()), extra: fc.constant(MARK) }, { requiredKeys: [] }).map((v) => frame(1, 1, json(v))),
          fc.tuple(fc.constantFrom(0, 1, 2, 9), fc.constantFrom(0, 1, 2, 3)).map(([v, t]) => frame(v, t, json({ token: MARK }))),
        ),
      ),
      { numRuns: ADMISSION_CASES, seed: SEED + 1 },
    )
    const verdicts: Record<string, number> = {}
    next = 0
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < admissionFrames.length) {
          const sent = admissionFrames[next++]!
          const stranger = await createPollenNode({ privateKey: await generateKeyPair('Ed25519') }, { logger })
          try {
            const x = await exchange(stranger, ADMISSION_PROTOCOL, sent, 64 * 1024)
            endings[`admission-${x.ended}`] = (endings[`admission-${x.ended}`] ?? 0) + 1
            if (x.ended === 'timeout') bad.push('admission: the agent neither answered nor closed the stream')
            if (x.got.toString('latin1').includes(MARK)) bad.push('admission: the verdict echoes what we sent')
            if (x.got.byteLength > 0) {
              try {
                const verdict = new AdmissionFrameReader('verdict').push(x.got)
                const key = verdict === undefined ? 'truncated' : `${verdict.status}${'reason' in verdict ? `:${verdict.reason}` : ''}`
                verdicts[key] = (verdicts[key] ?? 0) + 1
                if (verdict?.status === 'ok') bad.push(`admission: 'ok' for a token issued to another peer (sent ${Buffer.from(sent.subarray(0, 80)).toString('hex')})`)
              } catch (err) {
                bad.push(`admission: an answer that is not a verdict frame (${(err as Error).message})`)
              }
            }
          } finally {
            await stranger.stop().catch(() => {})
          }
        }
      }),
    )
    const seconds = (performance.now() - started) / 1000
    console.log(
      `hostile frames: ${frames.length} blob frames (${identities} admitted identities) and ${admissionFrames.length} admission frames in ${seconds.toFixed(1)} s (fast-check seed ${SEED});`,
      `stream endings ${JSON.stringify(endings)}; blob answers ${JSON.stringify(statuses)}; admission verdicts ${JSON.stringify(verdicts)}`,
    )
    expect(bad.slice(0, 20), `FC_SEED=${SEED}`).toEqual([])

    // The agent is up and still serves an admitted peer the right bytes.
    expect(agent.child.exitCode, agent.output().slice(-2000)).toBeNull()
    expect((await fetch(`${agent.opsUrl}/healthz`, { signal: AbortSignal.timeout(5_000) })).status).toBe(200)
    const key = await generateKeyPair('Ed25519')
    const peer = await startTestPeer(key)
    nodes.push(peer.node)
    const token = await enrolledToken(seed.url, key, (await readFile(await seed.joinTokenFile(), 'utf8')).trim())
    const answer = await peer.requestBlob(p2pAddrs(agent).map((m) => m.toString()), image.layers[0]!.digest, token)
    expect(answer.response).toMatchObject({ status: 'ok', size: blob.byteLength, complete: true })
    expect(sha256(answer.body)).toBe(image.layers[0]!.digest)
  })
})
