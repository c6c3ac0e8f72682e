import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { AdmissionDeniedError } from '../../protocol/admission.js'
import type { PollenLibp2p } from '../../content/p2p/node.js'
import { fanoutHandler } from './endpoint.js'
import { FanoutPlanner } from './planner.js'

const logger = pino({ level: 'silent' })
const D = 'sha256:' + 'e'.repeat(64)
const A = '12D3KooWDA4ZtUQbi5193fDUQbbqng5Vv6LSF1fZijb7Hdroxoss'
const B = '12D3KooWRnaP8Ya7iUqzpHFWXeh1x4Q6wMabDV7DL9dsRf26NiGD'

/** The two parts of the seed's libp2p node the endpoint reads: connections and the peer store. */
function fakeLibp2p(askerRemote: string): PollenLibp2p {
  return {
    getConnections: () => [{ remoteAddr: multiaddr(askerRemote) }],
    peerStore: { get: async () => ({ addresses: [{ multiaddr: multiaddr('/ip4/127.0.0.1/tcp/4001') }, { multiaddr: multiaddr('/ip4/10.0.0.7/tcp/4001') }] }) },
  } as unknown as PollenLibp2p
}

let server: Server | undefined
afterEach(() => server?.close())

async function serve(handle: ReturnType<typeof fanoutHandler>): Promise<string> {
  server = createServer((req, res) => {
    if (!handle(req, res)) res.writeHead(404).end()
  })
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const verify = async (token: string | undefined): Promise<{ sub: string }> => {
  if (token === 'token-a') return { sub: A }
  if (token === 'token-b') return { sub: B }
  throw new AdmissionDeniedError('missing', 'no admission token')
}

describe('GET /v1/fanout/<digest>', () => {
  it('answers the first agent "from the seed" and the next one with the first as parent, without loopback addresses for a remote asker', async () => {
    const url = await serve(fanoutHandler({ planner: new FanoutPlanner({ direct: 1 }), verify, libp2p: fakeLibp2p('/ip4/10.0.0.9/tcp/5555'), logger }))
    const first = await fetch(`${url}/v1/fanout/${D}`, { headers: { authorization: 'Bearer token-a' } })
    expect([first.status, await first.json()]).toEqual([200, { parent: null }])
    const second = await fetch(`${url}/v1/fanout/${D}`, { headers: { authorization: 'Bearer token-b' } })
    expect([second.status, await second.json()]).toEqual([200, { parent: { peerId: A, multiaddrs: ['/ip4/10.0.0.7/tcp/4001'] } }])
  })

  it('refuses a request without a valid token with 401 and OCI error JSON, a bad digest with 400, and other methods with 405', async () => {
    const url = await serve(fanoutHandler({ planner: new FanoutPlanner(), verify, libp2p: fakeLibp2p('/ip4/127.0.0.1/tcp/1'), logger }))
    const anonymous = await fetch(`${url}/v1/fanout/${D}`)
    expect(anonymous.status).toBe(401)
    expect(((await anonymous.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('UNAUTHORIZED')
    const bad = await fetch(`${url}/v1/fanout/sha256:nothex`, { headers: { authorization: 'Bearer token-a' } })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('DIGEST_INVALID')
    const post = await fetch(`${url}/v1/fanout/${D}`, { method: 'POST' })
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET'])
  })
})
