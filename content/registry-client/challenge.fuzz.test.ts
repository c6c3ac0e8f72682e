import { pino } from 'pino'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { PollenError } from '../../protocol/errors.js'
import { parseChallenges, pickChallenge } from './challenge.js'
import { basicOf, sendJson, sendOciError, startServer, type FakeServer, type RecordedRequest } from './fake-upstream.js'
import { UpstreamRegistry } from './upstream-registry.js'

// A hostile upstream answers every /v2/ request with a generated WWW-Authenticate challenge.
// Property: the seed's credentials (the Basic header, the password, its base64) reach only the
// upstream's own host name or the configured realm host; the foreign server receives no request
// at all; parsing never throws; the client fails only with typed PollenErrors.

const logger = pino({ level: 'silent' })
const CREDS = { username: 'robot$seed', password: 'pa55-fuzz-secret-9d1e' }
const BASIC = basicOf(CREDS)
const SECRETS = [BASIC.slice('Basic '.length), CREDS.password, encodeURIComponent(CREDS.password)]
const GOOD_TOKEN = 'issued-token-31c7'

let upstream: FakeServer
let trustedRealm: FakeServer
let foreign: FakeServer
let challenge = ''
const dispatcher = new Agent({ connections: 8 })

beforeAll(async () => {
  const tokenOrChallenge: FakeServer['handler'] = (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    if (!path.startsWith('/v2/')) return sendJson(res, 200, { token: GOOD_TOKEN, expires_in: 60 })
    if (req.headers.authorization === `Bearer ${GOOD_TOKEN}`) return sendOciError(res, 404, 'MANIFEST_UNKNOWN')
    try {
      res.setHeader('www-authenticate', challenge)
    } catch {
      // Bytes Node refuses to write as a header value: send them as a raw server would, UTF-8 read as latin1.
      res.setHeader('www-authenticate', Buffer.from(challenge, 'utf8').toString('latin1').replace(/[\x00-\x08\x0a-\x1f\x7f]/g, ' '))
    }
    sendOciError(res, 401, 'UNAUTHORIZED')
  }
  upstream = await startServer(() => {}, '127.0.0.1')
  upstream.handler = tokenOrChallenge
  trustedRealm = await startServer((_req, res) => sendJson(res, 200, { token: GOOD_TOKEN }), '127.0.0.3')
  foreign = await startServer((_req, res) => sendJson(res, 200, { token: GOOD_TOKEN }), '127.0.0.2')
})

afterAll(async () => {
  await Promise.all([upstream?.close(), trustedRealm?.close(), foreign?.close(), dispatcher.close()])
})

const port = (s: FakeServer) => s.host.split(':')[1] ?? ''

/** Realm URLs an attacker would try: foreign hosts dressed up as the upstream, user info, other schemes, IDN. */
function realmArb(): fc.Arbitrary<string> {
  const scheme = fc.constantFrom('http', 'http', 'http', 'https', 'HTTP', 'ftp', 'file', 'javascript', 'data', 'ws', '')
  const host = fc.constantFrom(
    '127.0.0.1', '127.0.0.2', '127.0.0.3', 'localhost', '127.1', '0x7f.0.0.2', '2130706434', '[::1]', '[::ffff:127.0.0.2]',
    '127.0.0.2.', '127.0.0.1.', 'xn--80ak6aa92e.com', 'ｅｘａｍｐｌｅ.com', '127。0。0。2', 'ⅼocalhost', '127.0.0.2%00', '',
    '127.0.0.2#@127.0.0.1', '127.0.0.2\\@127.0.0.1', '127.0.0.1@127.0.0.2', '127.0.0.2?@127.0.0.1', '127.0.0.1:1@127.0.0.2',
  )
  const portPart = fc.oneof(
    fc.constant(''),
    fc.constantFrom(() => port(upstream), () => port(foreign), () => port(trustedRealm)).map((f) => `:${f()}`),
    fc.constantFrom(':0', ':65536', ':-1', ':abc', ':', ':443', ':80'),
  )
  const userinfo = fc.constantFrom('', '', '', '', 'user@', 'user:pass@', ':@', '@', '127.0.0.1@', `${encodeURIComponent(CREDS.username)}@`)
  const path = fc.constantFrom('/token', '', '/', '/token?x=1', '/token#frag', '/%2e%2e/token', '//127.0.0.2/token', '/token\\..\\')
  const legitimate = fc.constantFrom(
    () => `${upstream.url}/token`,
    () => `http://127.0.0.1/token`,
    () => `${trustedRealm.url}/token`,
    () => `http://127.0.0.3:${port(upstream)}/token`,
  ).map((f) => f())
  return fc.oneof(
    { weight: 2, arbitrary: legitimate },
    { weight: 8, arbitrary: fc.tuple(scheme, userinfo, host, portPart, path).map(([s, u, h, p, pa]) => `${s}${s === '' ? '' : '://'}${u}${h}${p}${pa}`) },
    { weight: 1, arbitrary: fc.string({ maxLength: 100 }) },
    { weight: 1, arbitrary: fc.constantFrom('http://127.0.0.2', '//127.0.0.2/token', 'http:127.0.0.2/token', 'http:/\\127.0.0.2/token', ' http://127.0.0.2/token') },
  )
}

/** A parameter value, quoted (with escapes) or as a bare token. */
function quote(v: string, style: number): string {
  if (style === 0) return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`
  if (style === 1) return `"${v}"`
  return v
}

const paramName = fc.constantFrom('realm', 'Realm', 'REALM', 'service', 'scope', 'error', 'realm ', 'x')
const challengeArb: fc.Arbitrary<string> = fc
  .array(
    fc.record({
      scheme: fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Basic', 'basic', 'Digest', 'Negotiate', 'Bearer,', ''),
      params: fc.array(
        fc.record({ name: paramName, value: fc.oneof({ weight: 5, arbitrary: realmArb() }, fc.string({ maxLength: 40 })), style: fc.integer({ min: 0, max: 2 }) }),
        { maxLength: 5 },
      ),
      sep: fc.constantFrom(',', ', ', ' ,', ',,', ' '),
    }),
    { minLength: 1, maxLength: 4 },
  )
  .map((cs) => cs.map((c) => `${c.scheme} ${c.params.map((p) => `${p.name}=${quote(p.value, p.style)}`).join(c.sep)}`).join(', '))

/** A well-formed Bearer challenge whose realm is the generated URL, alone or among others. */
const bearerArb = fc
  .tuple(realmArb(), fc.constantFrom('', ',service="registry"', ',service=registry,scope="repository:library/app:pull"'), fc.constantFrom(0, 0, 0, 1, 2), fc.option(challengeArb, { nil: undefined }), fc.boolean())
  .map(([realm, rest, style, other, otherFirst]) => {
    const bearer = `Bearer realm=${quote(realm, style)}${rest}`
    if (other === undefined) return bearer
    return otherFirst ? `${other}, ${bearer}` : `${bearer}, ${other}`
  })

const hostileHeader = fc.oneof(
  { weight: 8, arbitrary: bearerArb },
  { weight: 6, arbitrary: challengeArb },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
  { weight: 1, arbitrary: fc.tuple(challengeArb, fc.integer({ min: 8_000, max: 40_000 })).map(([c, n]) => `${c}, x="${'a'.repeat(n)}"`) },
  { weight: 1, arbitrary: fc.integer({ min: 8_000, max: 20_000 }).map((n) => `Bearer realm="http://127.0.0.2:${port(foreign)}/token",x="${'\\"'.repeat(n)}"`) },
)

function leaks(r: RecordedRequest): boolean {
  const text = `${r.url} ${JSON.stringify(r.headers)}`
  return SECRETS.some((s) => text.includes(s))
}

describe('UpstreamRegistry against generated hostile WWW-Authenticate challenges', () => {
  it('parses every generated header without throwing', () => {
    fc.assert(
      fc.property(fc.oneof(hostileHeader, fc.array(hostileHeader, { maxLength: 3 })), (h) => {
        const all = parseChallenges(h)
        for (const c of all) {
          expect(typeof c.scheme).toBe('string')
          expect(c.params.size).toBeLessThanOrEqual(32)
        }
        pickChallenge(h)
      }),
      { numRuns: 5_000 },
    )
  })

  it('never sends the credentials to a host other than the upstream\'s or the configured realm host, and never contacts a foreign realm', async () => {
    const outcomes = new Map<string, number>()
    await fc.assert(
      fc.asyncProperty(hostileHeader, fc.boolean(), async (header, withRealmHost) => {
        challenge = header
        for (const s of [upstream, trustedRealm, foreign]) s.requests.length = 0
        const up = new UpstreamRegistry(
          {
            ns: upstream.host,
            url: upstream.url,
            credentials: CREDS,
            realmHosts: withRealmHost ? [trustedRealm.host] : [],
            maxRetries: 0,
            requestTimeoutMs: 3_000,
          },
          { logger, dispatcher, sleep: async () => {} },
        )
        let name = 'resolved'
        try {
          await up.getManifest('library/app', 'latest')
        } catch (err) {
          if (!(err instanceof PollenError)) throw new Error(`untyped error ${(err as Error)?.name}: ${(err as Error)?.message}`)
          name = err.name
        } finally {
          await up.close()
        }
        outcomes.set(name, (outcomes.get(name) ?? 0) + 1)
        expect(foreign.requests, `foreign realm contacted for challenge ${header.slice(0, 300)}`).toEqual([])
        if (!withRealmHost) expect(trustedRealm.requests).toEqual([])
        for (const r of upstream.requests) {
          if (!leaks(r)) continue
          // The upstream's own host name: what the request was addressed to, not merely where it landed.
          expect(new URL(`http://${r.headers.host ?? ''}`).hostname, `credentials sent to ${r.headers.host} for ${header.slice(0, 300)}`).toBe('127.0.0.1')
        }
        for (const r of trustedRealm.requests) if (leaks(r)) expect(r.headers.host).toBe(trustedRealm.host)
      }),
      { numRuns: 1_500 },
    )
    console.log('outcomes of 1,500 hostile challenges:', Object.fromEntries(outcomes))
    expect(outcomes.size).toBeGreaterThan(1)
  })
})
