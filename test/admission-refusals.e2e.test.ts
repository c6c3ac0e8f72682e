/**
 * The refusal matrix: every bad admission token is refused by the seed's HTTP API and by an
 * enrolled agent serving blobs over libp2p, with the right status and reason, counted, and
 * without a byte of the blob. The peer side is a real libp2p client written here, with its
 * own identity; its tokens carry its own PeerId as `sub` unless the case is a stolen token.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { attackerKey, fakeCertificateChain, readSeedSigningKey, seedClaims, signEdDSA, signHS256, unsigned, type TokenKey } from './helpers/forged-tokens.js'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { enroll, enrolledToken, startTestPeer, type TestPeer } from './helpers/peer-blob-client.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const run = promisify(execFile)
const SEED_MAIN = fileURLToPath(new URL('../dist/seed/main.js', import.meta.url))
/** The holder agent's --revocation-poll: a revocation must reach it within about this long. */
const REVOCATION_POLL_MS = 1000
const SEED_DENIED = 'pollen_seed_admission_denied_total'
const AGENT_DENIED = 'pollen_agent_admission_denied_total'

interface TokenContext {
  seedKey: TokenKey
  attacker: TokenKey
  peer: TestPeer
  /** Enrolls `peer` with the seed with a join token of this scope; returns its genuine token. */
  enrollPeer(scope: string[]): Promise<string>
}

interface TokenCase {
  name: string
  token(ctx: TokenContext): Promise<string | undefined> | string | undefined
  /** The refusal reason, at the seed and at the peer alike. */
  reason: string
  /** The seed's answer: 401 UNAUTHORIZED unless said otherwise. */
  status?: 403
}

const now = (): number => Math.floor(Date.now() / 1000)

const TOKEN_CASES: TokenCase[] = [
  { name: 'no token at all', token: () => undefined, reason: 'missing' },
  { name: 'a garbage token', token: () => 'not.a.token', reason: 'malformed' },
  { name: 'an expired token (exp 100 s ago, beyond the 30 s tolerance)', token: (c) => signEdDSA(c.seedKey, seedClaims(c.peer.peerId, { iat: now() - 400, nbf: now() - 400, exp: now() - 100 })), reason: 'expired' },
  { name: 'a token not yet valid (nbf in 120 s, beyond the 30 s tolerance)', token: (c) => signEdDSA(c.seedKey, seedClaims(c.peer.peerId, { nbf: now() + 120, exp: now() + 600 })), reason: 'not-yet-valid' },
  { name: 'a token from another issuer', token: (c) => signEdDSA(c.seedKey, seedClaims(c.peer.peerId, { iss: 'evil-seed' })), reason: 'issuer' },
  { name: 'a token for another audience', token: (c) => signEdDSA(c.seedKey, seedClaims(c.peer.peerId, { aud: 'other-fleet' })), reason: 'audience' },
  { name: "a token naming the seed's kid but signed by another key", token: (c) => signEdDSA(c.attacker, seedClaims(c.peer.peerId), { kid: c.seedKey.kid }), reason: 'signature' },
  { name: 'a well-formed token with an unknown kid', token: (c) => signEdDSA(c.attacker, seedClaims(c.peer.peerId)), reason: 'unknown-key' },
  { name: 'an unsigned token (alg none)', token: (c) => unsigned(seedClaims(c.peer.peerId), { kid: c.seedKey.kid }), reason: 'algorithm' },
  { name: "an HS256 token whose HMAC secret is the seed's public key", token: (c) => signHS256(Buffer.from(c.seedKey.publicPem), seedClaims(c.peer.peerId), { kid: c.seedKey.kid }), reason: 'algorithm' },
  { name: "an embedded jwk header with the attacker's key, signed by it", token: (c) => signEdDSA(c.attacker, seedClaims(c.peer.peerId), { kid: c.seedKey.kid, jwk: c.attacker.publicJwk }), reason: 'forbidden-header' },
  { name: "an embedded jwk header with the seed's key, signed by the seed's key", token: (c) => signEdDSA(c.seedKey, seedClaims(c.peer.peerId), { jwk: c.seedKey.publicJwk }), reason: 'forbidden-header' },
  { name: "a jku header pointing at the attacker's JWKS, signed by the attacker", token: (c) => signEdDSA(c.attacker, seedClaims(c.peer.peerId), { jku: 'https://attacker.invalid/jwks.json' }), reason: 'forbidden-header' },
  { name: "a jku header, signed by the seed's key", token: (c) => signEdDSA(c.seedKey, seedClaims(c.peer.peerId), { jku: 'https://attacker.invalid/jwks.json' }), reason: 'forbidden-header' },
  { name: 'an x5c header, signed by the attacker', token: (c) => signEdDSA(c.attacker, seedClaims(c.peer.peerId), { x5c: fakeCertificateChain() }), reason: 'forbidden-header' },
  { name: "an x5c header, signed by the seed's key", token: (c) => signEdDSA(c.seedKey, seedClaims(c.peer.peerId), { x5c: fakeCertificateChain() }), reason: 'forbidden-header' },
  { name: 'a genuine token whose scope (other/**) does not cover team/app', token: (c) => c.enrollPeer(['other/**']), reason: 'scope', status: 403 },
]

describeWithBinaries(['docker-registry'], 'admission refusals at the seed (HTTP) and at a peer (libp2p)', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let holder: AgentProcess
  let holderAddrs: string[]
  let image: BuiltImage
  let layer: Buffer
  let keys: Pick<TokenContext, 'seedKey' | 'attacker'>
  let expiredJoinToken: { token: string; madeAt: number }
  const peers: TestPeer[] = []

  const digest = (): string => image.layers[0]!.digest
  const joinToken = async (scope: string[]): Promise<string> => (await readFile(await seed.joinTokenFile({ scope }), 'utf8')).trim()
  const testPeer = async (key?: Parameters<typeof startTestPeer>[0]): Promise<TestPeer> => {
    const peer = await startTestPeer(key)
    peers.push(peer)
    return peer
  }
  const seedBlob = (token: string | undefined): Promise<Response> =>
    fetch(`${seed.url}/v2/team/app/blobs/${digest()}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) })

  /** The seed refuses `token` with `status`, OCI error JSON naming `reason`, counts it once, and sends no blob bytes. */
  async function expectSeedRefusal(token: string | undefined, reason: string, status: 401 | 403): Promise<void> {
    const before = await seed.metric(SEED_DENIED, { reason })
    const res = await seedBlob(token)
    const body = Buffer.from(await res.arrayBuffer())
    expect(res.status).toBe(status)
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
    if (status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm=/)
    const error = (JSON.parse(body.toString('utf8')) as { errors: Array<{ code: string; message: string }> }).errors[0]!
    expect(error.code).toBe(status === 401 ? 'UNAUTHORIZED' : 'DENIED')
    expect(error.message).toContain(`admission token refused (${reason})`)
    expect(body.includes(layer.subarray(0, 64))).toBe(false)
    expect(await seed.metric(SEED_DENIED, { reason })).toBe(before + 1)
  }

  /** The holder answers `peer`'s request with an `unauthorized` frame naming `reason`, counts it once, and sends no blob bytes. */
  async function expectPeerRefusal(peer: TestPeer, token: string | undefined, reason: string): Promise<void> {
    const before = await holder.metric(AGENT_DENIED, { reason })
    const answer = await peer.requestBlob(holderAddrs, digest(), token)
    expect(answer.response.status).toBe('unauthorized')
    expect(answer.response.message).toContain(`(${reason})`)
    expect(answer.body.length).toBe(0)
    expect(await holder.metric(AGENT_DENIED, { reason })).toBe(before + 1)
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-refusals-'))
    registry = await startRegistry({})
    image = await buildImage(join(work, 'img'), { layers: [200_000], seed: 'refusals' })
    layer = await readFile(image.layers[0]!.path)
    await pushImage(registry.url, 'team/app', 'v1', image)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    // Made now so that its 1 s life is long over when its case runs.
    const { stdout } = await run(process.execPath, [SEED_MAIN, 'join-token', 'create', '--data', seed.dataDir, '--ttl', '1s'], { timeout: 30_000 })
    expiredJoinToken = { token: stdout.trim(), madeAt: Date.now() }
    holder = await startAgentProcess([
      '--data', join(work, 'holder'), '--seed', seed.url, '--default-ns', registry.host,
      '--revocation-poll', `${REVOCATION_POLL_MS}ms`, ...(await seed.enrollArgs()),
    ])
    holderAddrs = holder.logs.find((l) => l.msg === 'agent listening')?.p2p as string[]
    // The holder now holds the layer, seen in team/app.
    await pullImage(holder.url, 'team/app', 'v1', registry.host)
    keys = { seedKey: await readSeedSigningKey(seed.dataDir), attacker: await attackerKey() }
  })
  afterAll(async () => {
    for (const p of peers) await p.stop().catch(() => {})
    await holder?.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('serves the blob to a peer with its own valid token, over HTTP and over libp2p (the control for every refusal)', async () => {
    const peer = await testPeer()
    const token = await enrolledToken(seed.url, peer.privateKey, await joinToken(['team/**']))
    const res = await seedBlob(token)
    expect(res.status).toBe(200)
    expect(Buffer.from(await res.arrayBuffer()).equals(layer)).toBe(true)
    const answer = await peer.requestBlob(holderAddrs, digest(), token)
    expect(answer.response).toMatchObject({ status: 'ok', size: layer.length, complete: true })
    expect(answer.body.equals(layer)).toBe(true)
  })

  for (const c of TOKEN_CASES) {
    it(`refuses ${c.name} at the seed (HTTP ${c.status ?? 401}) and at the peer, as '${c.reason}'`, async () => {
      const peer = await testPeer()
      const token = await c.token({ ...keys, peer, enrollPeer: async (scope) => enrolledToken(seed.url, peer.privateKey, await joinToken(scope)) })
      await expectSeedRefusal(token, c.reason, c.status ?? 401)
      await expectPeerRefusal(peer, token, c.reason)
    })
  }

  // The seed's HTTP API has no PeerId to bind a token to, so a stolen token is a libp2p-only case.
  it('refuses over libp2p a genuine token issued to another PeerId (stolen and replayed from another host; not applicable to HTTP)', async () => {
    const victim = await generateKeyPair('Ed25519')
    const stolen = await enrolledToken(seed.url, victim, await joinToken(['**']))
    const thief = await testPeer()
    await expectPeerRefusal(thief, stolen, 'peer-mismatch')
  })

  it('refuses a revoked PeerId at the seed at once, and at the peer within the revocation poll interval', async () => {
    const peer = await testPeer()
    const token = await enrolledToken(seed.url, peer.privateKey, await joinToken(['**']))
    expect((await seedBlob(token)).status).toBe(200)
    expect((await peer.requestBlob(holderAddrs, digest(), token)).response.status).toBe('ok')
    const agentBefore = await holder.metric(AGENT_DENIED, { reason: 'revoked' })

    await run(process.execPath, [SEED_MAIN, 'revoke', '--data', seed.dataDir, peer.peerId], { timeout: 30_000 })
    const revokedAt = Date.now()
    await expectSeedRefusal(token, 'revoked', 403)

    let answer = await peer.requestBlob(holderAddrs, digest(), token)
    while (answer.response.status === 'ok' && Date.now() - revokedAt < REVOCATION_POLL_MS + 5000) {
      await new Promise((r) => setTimeout(r, 100))
      answer = await peer.requestBlob(holderAddrs, digest(), token)
    }
    const tookMs = Date.now() - revokedAt
    console.log(`revocation reached the peer ${tookMs} ms after 'pollen-seed revoke' returned (poll interval ${REVOCATION_POLL_MS} ms)`)
    expect(answer.response).toMatchObject({ status: 'unauthorized', message: expect.stringContaining('(revoked)') })
    expect(answer.body.length).toBe(0)
    expect(tookMs).toBeLessThan(REVOCATION_POLL_MS + 2000)
    expect(await holder.metric(AGENT_DENIED, { reason: 'revoked' })).toBe(agentBefore + 1)
  })

  const JOIN_TOKEN_CASES = [
    {
      why: 'used-up',
      name: 'a used-up join token',
      joinToken: async (): Promise<string> => {
        const once = await joinToken(['**'])
        await enrolledToken(seed.url, await generateKeyPair('Ed25519'), once)
        return once
      },
    },
    {
      why: 'expired',
      name: 'an expired join token (made with --ttl 1s)',
      joinToken: async (): Promise<string> => {
        const wait = expiredJoinToken.madeAt + 1500 - Date.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        return expiredJoinToken.token
      },
    },
  ]
  for (const c of JOIN_TOKEN_CASES) {
    it(`refuses enrollment with ${c.name}: 401 with a clear message, counted as 'join-token-${c.why}'`, async () => {
      const token = await c.joinToken()
      const reason = `join-token-${c.why}`
      const before = await seed.metric(SEED_DENIED, { reason })
      const res = await enroll(seed.url, await generateKeyPair('Ed25519'), token)
      expect(res.status).toBe(401)
      const error = ((await res.json()) as { errors: Array<{ code: string; message: string }> }).errors[0]!
      expect(error.code).toBe('UNAUTHORIZED')
      expect(error.message).toContain(`join token refused (${c.why})`)
      expect(error.message).not.toContain(token)
      expect(await seed.metric(SEED_DENIED, { reason })).toBe(before + 1)
    })
  }
})
