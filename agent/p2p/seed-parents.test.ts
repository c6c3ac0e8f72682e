import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { parseDigest } from '../../protocol/digest.js'
import { seedParents } from './seed-parents.js'

const logger = pino({ level: 'silent' })
const D = parseDigest('sha256:' + 'f'.repeat(64))
const PARENT = '12D3KooWRnaP8Ya7iUqzpHFWXeh1x4Q6wMabDV7DL9dsRf26NiGD'

let server: Server | undefined
afterEach(() => server?.close())

/** A seed stand-in answering each request with the next of `answers` (status and raw body); records what it was asked. */
async function seed(answers: Array<[number, string]>): Promise<{ url: string; asked: Array<{ path: string; auth: string | undefined }> }> {
  const asked: Array<{ path: string; auth: string | undefined }> = []
  server = createServer((req, res) => {
    asked.push({ path: req.url ?? '', auth: req.headers.authorization })
    const [status, body] = answers.shift() ?? [500, '']
    res.writeHead(status, { 'content-type': 'application/json' }).end(body)
  })
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked }
}

describe('seedParents (asking the seed where to fetch a blob from)', () => {
  it('sends the admission token and returns the parent the seed names, or null for "from the seed"', async () => {
    const s = await seed([
      [200, JSON.stringify({ parent: { peerId: PARENT, multiaddrs: ['/ip4/10.0.0.7/tcp/4001'] } })],
      [200, JSON.stringify({ parent: null })],
    ])
    const ask = seedParents(s.url, { token: () => 'tok', logger })
    expect(await ask(D)).toEqual({ peerId: PARENT, multiaddrs: ['/ip4/10.0.0.7/tcp/4001'] })
    expect(await ask(D)).toBeNull()
    expect(s.asked).toEqual([
      { path: `/v1/fanout/${D.value}`, auth: 'Bearer tok' },
      { path: `/v1/fanout/${D.value}`, auth: 'Bearer tok' },
    ])
  })

  it('returns undefined (plan alone) for a refusal, a malformed answer or a seed without the endpoint, and stops asking a seed without it', async () => {
    let now = 0
    const s = await seed([
      [401, '{"errors":[]}'],
      [200, JSON.stringify({ parent: { peerId: 'not base58!', multiaddrs: [] } })],
    ])
    const ask = seedParents(s.url, { token: () => 'tok', logger, now: () => now })
    expect(await ask(D)).toBeUndefined()
    expect(await ask(D)).toBeUndefined()
    // The malformed answer silences the client for a while.
    expect(await ask(D)).toBeUndefined()
    expect(s.asked).toHaveLength(2)
    now = 10 * 60_000
    expect(await ask(D)).toBeUndefined()
    expect(s.asked).toHaveLength(3)
  })

  it('does not ask without an admission token, and never throws when the seed is down', async () => {
    const s = await seed([])
    expect(await seedParents(s.url, { token: () => undefined, logger })(D)).toBeUndefined()
    expect(s.asked).toEqual([])
    expect(await seedParents('http://127.0.0.1:1', { token: () => 'tok', logger })(D)).toBeUndefined()
  })
})
