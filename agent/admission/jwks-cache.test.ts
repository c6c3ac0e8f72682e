import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AdmissionVerifier } from '../../content/admission/verifier.js'
import { openAdmission, type Admission } from '../../seed/admission/admission.js'
import { admissionHandler } from '../../seed/admission/http.js'
import { JwksCache, type JwksCacheInit } from './jwks-cache.js'
import { TokenManager } from './token-manager.js'

const ISSUER = 'pollen-seed'
const AUDIENCE = 'pollen'
const logger = pino({ level: 'silent' })
const X = '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo'

let dir: string
let admission: Admission
let server: Server
let url: string
let requests = 0
/** When set, the server answers every request with this JSON instead of the seed handler's answer. */
let override: unknown
const cleanups: Array<() => Promise<void>> = []

async function serverDown(): Promise<void> {
  if (!server.listening) return
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-jwks-cache-'))
  admission = await openAdmission({ dataDir: join(dir, 'seed') }, { logger })
  const { handle } = admissionHandler({ issuer: ISSUER, audience: AUDIENCE, tokenTtlMs: 600_000 }, { admission, logger })
  requests = 0
  override = undefined
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests++
    if (override !== undefined) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(override))
    else if (!handle(req, res)) res.writeHead(404).end()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  await serverDown()
  await admission.close()
  await rm(dir, { recursive: true, force: true })
})

function cache(init: Partial<JwksCacheInit> = {}, now?: () => number): JwksCache {
  const jwks = new JwksCache({ seedUrl: url, dataDir: join(dir, 'agent'), ...init }, { logger, now })
  cleanups.push(() => jwks.stop())
  return jwks
}

describe('JwksCache', () => {
  it('serves the persisted JWKS when the seed is down, and peers\' tokens keep verifying', async () => {
    const key = await generateKeyPair('Ed25519')
    const { token: joinToken } = await admission.joinTokens.create({})
    const tm = new TokenManager({ seedUrl: url, dataDir: join(dir, 'peer'), joinToken }, { privateKey: key, logger })
    cleanups.push(() => tm.stop())
    await tm.start()
    const first = cache()
    await first.start()
    const fetched = first.keys()
    expect(fetched.keys.length).toBeGreaterThanOrEqual(1)
    await first.stop()
    await serverDown()

    const second = cache()
    await second.start()
    expect(second.keys()).toEqual(fetched)
    await expect(second.refresh()).rejects.toMatchObject({ name: 'SeedUnavailableError' })
    expect(second.keys()).toEqual(fetched)
    const verifier = new AdmissionVerifier({ issuer: ISSUER, audience: AUDIENCE }, { keys: () => second.keys() })
    const peerId = peerIdFromPrivateKey(key).toString()
    expect((await verifier.verify(tm.current(), { peerId })).sub).toBe(peerId)
  })

  it('starts with no keys and no error when the seed is down and nothing was persisted', async () => {
    await serverDown()
    const jwks = cache({ requestTimeoutMs: 1_000 })
    await expect(jwks.start()).resolves.toBeUndefined()
    expect(jwks.keys()).toEqual({ keys: [] })
    expect(jwks.fetchedAt).toBeUndefined()
  })

  it('keeps only Ed25519 public signing keys, never one with a private part, and refuses a set with none', async () => {
    const good = { kty: 'OKP', crv: 'Ed25519', x: X, kid: 'k1', alg: 'EdDSA', use: 'sig', extra: 'dropped' }
    override = {
      keys: [
        good,
        { ...good, kid: 'k2', d: X },
        { kty: 'EC', crv: 'P-256', x: X, y: X, kid: 'k3' },
        { ...good, kid: 'k4', use: 'enc' },
        { ...good, kid: 'k5', x: 'short' },
        'not an object',
      ],
    }
    const jwks = cache()
    await jwks.start()
    expect(jwks.keys()).toEqual({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: X, kid: 'k1', alg: 'EdDSA', use: 'sig' }] })
    override = { keys: [{ ...good, kid: 'k6', d: X }] }
    await expect(jwks.refresh()).rejects.toMatchObject({ name: 'SeedAnswerInvalidError' })
    override = { notKeys: [] }
    await expect(jwks.refresh()).rejects.toMatchObject({ name: 'SeedAnswerInvalidError' })
    expect(jwks.keys().keys.map((k) => k.kid)).toEqual(['k1'])
  })

  it('refreshes on demand at most once per 5 s', async () => {
    let skew = 0
    const jwks = cache({}, () => Date.now() + skew)
    await jwks.start()
    expect(requests).toBe(1)
    expect(jwks.refreshSoon()).toBe(false)
    skew = 5_000
    expect(jwks.refreshSoon()).toBe(true)
    expect(jwks.refreshSoon()).toBe(false)
    await new Promise((r) => setTimeout(r, 200))
    expect(requests).toBe(2)
    expect(jwks.refreshSoon()).toBe(false)
  })

  it('fetches again every refreshMs', async () => {
    const jwks = cache({ refreshMs: 100 })
    await jwks.start()
    await new Promise((r) => setTimeout(r, 450))
    expect(requests).toBeGreaterThanOrEqual(3)
  })
})
