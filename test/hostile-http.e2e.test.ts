import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { isOciErrorCode } from '../protocol/oci-errors.js'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type PollenProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { pullImage } from './helpers/pull-client.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

// Generated hostile HTTP requests against a running agent and a running seed. Properties: both
// stay up; every status is one the OCI distribution spec and our errors use (500 is a bug); every
// JSON error body is {errors:[{code,message}]} with an OCI code; nothing is created outside the
// data dirs; no temp file is left behind.

const REQUESTS_PER_TARGET = Number(process.env.HOSTILE_HTTP_REQUESTS ?? 5_000)
const CONCURRENCY = 16
const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
/** Appears in many generated names, so a file an attacker made anywhere can be recognised. */
const MARK = 'pollenfuzz'
/** Statuses a registry may legitimately answer with; 500 is deliberately absent. */
const ALLOWED = new Set([200, 206, 400, 401, 403, 404, 405, 413, 414, 415, 416, 429, 431, 502, 503])

interface Hostile {
  target: 'agent' | 'seed'
  method: string
  path: string
  headers: Record<string, string>
  body?: string
}

interface Answer {
  status: number | 'reset' | 'timeout'
  contentType?: string
  allow?: string
  body?: Buffer
}

let work: string
let registry: RunningRegistry
let seed: SeedProcess
let agent: AgentProcess
let image: BuiltImage
let token: string
const dataDirs = () => [join(work, 'seed'), join(work, 'agent')]

async function listTree(dir: string, skip: string[] = []): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name)
      if (skip.includes(p)) continue
      out.push(relative(dir, p))
      if (e.isDirectory()) await walk(p)
    }
  }
  await walk(dir)
  return out.sort()
}

/** Entries whose name carries MARK in the top level of the cwd and the system temp dir. */
async function markedOutside(): Promise<string[]> {
  const out: string[] = []
  for (const d of [process.cwd(), tmpdir(), join(process.cwd(), 'dist')]) {
    for (const name of await readdir(d).catch(() => [] as string[])) if (name.toLowerCase().includes(MARK)) out.push(join(d, name))
  }
  return out
}

/** The bytes a raw client would put on the wire for `s`: node:http writes the path as latin1. */
const raw = (s: string) => Buffer.from(s, 'utf8').toString('latin1').replace(/[\x00-\x20\x7f]/g, (c) => encodeURIComponent(c))

function arbitraries(registryHost: string, digests: string[]) {
  const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n })
  const garbageSegment = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('..', '.', '%2e%2e', '%2E%2E', '.%2e', '%2e.', '%2f', '%2F', '..%2f..%2f', '%5c..%5c', '\\..\\', '%00', '', ';', '~', 'UPPER', '%252e%252e') },
    { weight: 2, arbitrary: fc.constantFrom(`${MARK}`, `${MARK}..`, `..%2f${MARK}`, `%2e%2e%2f%2e%2e%2f${MARK}`, `${MARK}%2f..%2f..`) },
    { weight: 1, arbitrary: fc.integer({ min: 256, max: 4_000 }).map((n) => `${MARK}${'a'.repeat(n)}`) },
    // Raw non-ASCII bytes in a path are mostly refused by Node's parser before our code runs: rarer.
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }).map((s) => `${MARK}${s}`) },
    { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }).map((s) => encodeURIComponent(`${MARK}${s}`)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  )
  const validSegment = fc.constantFrom('team', 'app', 'library', 'alpine', 'a', 'a-b', 'a__b', 'a.b', `${MARK}`, 'docker.io', registryHost)
  const repo = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('team/app', 'library/alpine', `${MARK}/x`, registryHost + '/team/app') },
    { weight: 4, arbitrary: fc.array(fc.oneof(validSegment, garbageSegment), { minLength: 1, maxLength: 6 }).map((s) => s.join('/')) },
  )
  const digest = fc.oneof(
    fc.constantFrom(...digests),
    hex(64).map((h) => `sha256:${h}`),
    hex(128).map((h) => `sha512:${h}`),
    hex(64).map((h) => `SHA256:${h}`),
    hex(64).map((h) => `sha256:${h.toUpperCase()}`),
    hex(63).map((h) => `sha256:${h}`),
    hex(65).map((h) => `sha256:${h}`),
    hex(32).map((h) => `md5:${h}`),
    fc.constantFrom('sha256:', 'sha256', ':', 'sha256:../../etc/passwd', `sha256:${MARK}`, 'sha256:%2e%2e%2f%2e%2e', 'blake3:' + 'a'.repeat(64), 'sha256+b64u:abc'),
    fc.constantFrom(...digests).map((d) => d.slice(0, -1) + '%30'),
  )
  const tag = fc.oneof(fc.constantFrom('v1', 'latest', 'V1', '-x', '.x', 'a'.repeat(128), 'a'.repeat(129), '..', '%2e%2e', `${MARK}`), garbageSegment)
  const ns = fc.oneof(
    fc.constantFrom(registryHost, 'docker.io', '', '..', '%2e%2e', '127.0.0.1:1', '127.0.0.1:99999', 'localhost', '[::1]:5000', 'evil.example:443', `${MARK}.example`, '%2F', 'a/b', '..%2f..', 'http://x'),
    fc.string({ maxLength: 30 }).map(encodeURIComponent),
  )
  const query = fc.oneof(
    { weight: 3, arbitrary: fc.constant('') },
    { weight: 3, arbitrary: ns.map((n) => `?ns=${n}`) },
    { weight: 1, arbitrary: fc.array(ns, { minLength: 2, maxLength: 40 }).map((a) => `?${a.map((n) => `ns=${n}`).join('&')}`) },
    { weight: 1, arbitrary: fc.constantFrom('?', '?ns', '?ns=&ns=', '?n=1&last=5', '?ns=%zz', '?&&&', `?${'x=1&'.repeat(2_000)}`) },
  )
  const kind = fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.constant('manifests'), fc.oneof(tag, digest)).map(([k, r]) => `${k}/${r}`) },
    { weight: 4, arbitrary: fc.tuple(fc.constant('blobs'), digest).map(([k, d]) => `${k}/${d}`) },
    { weight: 1, arbitrary: fc.constantFrom('tags/list', 'blobs/uploads/', 'blobs/uploads/x', 'referrers/sha256:' + '0'.repeat(64), '_catalog', '') },
    { weight: 1, arbitrary: fc.tuple(garbageSegment, fc.oneof(tag, digest)).map(([k, r]) => `${k}/${r}`) },
  )
  const wellFormed = fc
    .tuple(fc.constantFrom('blobs', 'blobs', 'manifests'), fc.constantFrom(...digests), fc.constantFrom('', `?ns=${registryHost}`, '?ns=docker.io'))
    .map(([k, d, q]) => `/v2/team/app/${k}/${k === 'manifests' && d === digests[0] ? 'v1' : d}${q}`)
  const path = fc.oneof(
    { weight: 5, arbitrary: wellFormed },
    { weight: 12, arbitrary: fc.tuple(repo, kind, query).map(([r, k, q]) => `/v2/${r}/${k}${q}`) },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.constantFrom('/', '/v2', '/v2/', '/v2/_catalog', '/healthz', '/metrics', '/v1/admission', '/v1/revocations', '/v1/jwks', '/v1/', '//v2/', '/v2//'), query).map(([p, q]) => p + q),
    },
    { weight: 1, arbitrary: fc.array(garbageSegment, { maxLength: 8 }).map((s) => `/${s.join('/')}`) },
    { weight: 1, arbitrary: fc.constantFrom('*', `/${'a/'.repeat(3_000)}`, '/v2/' + 'x'.repeat(20_000) + '/manifests/v1') },
  )
  const headerValue = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEF0123456789 ,;=/-+*.:"\'\t'), maxLength: 60 })
  const range = fc.oneof(
    fc.constantFrom('bytes=0-', 'bytes=0-0', 'bytes=5-2', 'bytes=-5', 'bytes=-0', 'bytes=0-0,1-1', 'bytes=99999999999999999999-', 'bytes=1-', 'bytes=100000000-', 'bytes= 0-', 'items=0-1', 'bytes=', 'bytes=-', 'bytes=0x10-', 'bytes=1e3-'),
    fc.tuple(fc.nat({ max: 2 ** 40 }), fc.nat({ max: 2 ** 40 })).map(([a, b]) => `bytes=${a}-${b}`),
    headerValue,
  )
  const accept = fc.oneof(
    fc.constantFrom(
      'application/vnd.oci.image.manifest.v1+json',
      'application/vnd.oci.image.index.v1+json',
      'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json;q=0.5',
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
      '*/*',
      'text/html',
      '',
      'application/json;q=abc, */*;q=0',
    ),
    headerValue,
    fc.integer({ min: 1, max: 300 }).map((n) => Array.from({ length: n }, () => 'application/vnd.oci.image.manifest.v1+json').join(', ')),
  )
  /** Each header present with probability 1/`freq`. */
  const maybe = (name: string, value: fc.Arbitrary<string>, freq: number) => fc.oneof({ weight: 1, arbitrary: value.map((v) => [name, v] as const) }, { weight: freq - 1, arbitrary: fc.constant(undefined) })
  const headers = fc
    .tuple(
      maybe('range', range, 2),
      maybe('accept', accept, 2),
      maybe('content-type', fc.constantFrom('application/json', 'application/octet-stream', 'application/vnd.oci.image.manifest.v1+json', 'text/plain; charset=utf-8'), 6),
      maybe('authorization', fc.constantFrom('Bearer', 'Bearer ', 'Bearer x.y.z', 'Basic YTpi', 'bearer eyJhbGciOiJub25lIn0.e30.', 'Negotiate abc'), 4),
      maybe('x-pad', fc.integer({ min: 16 * 1024 + 1, max: 64 * 1024 }).map((n) => 'p'.repeat(n)), 25),
      maybe('x-forwarded-for', fc.constantFrom('127.0.0.1', '10.0.0.1, 127.0.0.1', '::1'), 10),
      maybe('host', fc.constantFrom('localhost', 'evil.example', '', '127.0.0.1:1'), 10),
    )
    .map((entries) => Object.fromEntries(entries.filter((e) => e !== undefined)) as Record<string, string>)
  const method = fc.constantFrom('GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'HEAD', 'HEAD', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS')
  return fc.record({
    method,
    path: path.map(raw),
    headers,
    body: fc.option(fc.string({ maxLength: 200 }), { nil: undefined }),
    admitted: fc.boolean(),
  })
}

function send(process_: PollenProcess, pool: HttpAgent, h: Hostile): Promise<Answer> {
  const { hostname, port } = new URL(process_.url)
  return new Promise((resolve) => {
    let settled = false
    const done = (a: Answer) => {
      if (!settled) resolve(a)
      settled = true
    }
    let req: ReturnType<typeof httpRequest>
    try {
      req = httpRequest({ host: hostname, port, method: h.method, path: h.path, headers: h.headers, agent: pool, signal: AbortSignal.timeout(30_000), insecureHTTPParser: false })
    } catch (err) {
      // node:http refuses to send it at all (e.g. a character it will not put in a path): not a request.
      return done({ status: 'reset', body: Buffer.from(String((err as Error).message)) })
    }
    req.on('error', (err) => done({ status: (err as Error).name === 'AbortError' ? 'timeout' : 'reset' }))
    req.on('response', (res: IncomingMessage) => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      const answer = () => ({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], allow: res.headers.allow, body: Buffer.concat(parts) })
      res.on('end', () => done(answer()))
      res.on('error', () => done(answer()))
    })
    req.end(h.method === 'POST' || h.method === 'PUT' || h.method === 'PATCH' ? h.body : undefined)
  })
}

/** Paths outside the pull API that answer other methods themselves (seed admission and bootstrap, agent status, health). */
const OWN_METHOD_ROUTES = new Set(['/v1/admission', '/v1/bootstrap', '/v1/status', '/healthz', '/readyz'])
/** Request-target bytes Node's parser accepts (it refuses DEL and bytes above 0x7e with a bare 400). */
const PARSEABLE_PATH = /^[\x21-\x7e]*$/

/** Why `a` breaks the properties, or undefined when it does not. */
function violation(h: Hostile, a: Answer): string | undefined {
  if (a.status === 'timeout') return 'no answer within 30 s'
  if (a.status === 'reset') return undefined
  if (!ALLOWED.has(a.status)) return `status ${a.status}`
  // More than 16 KiB of headers: 431, never a bare 400, unless the parser refused the request line first.
  if (h.headers['x-pad'] !== undefined && PARSEABLE_PATH.test(h.path) && a.status !== 431) return `status ${a.status} for > 16 KiB of headers (431 expected)`
  if (a.status === 431 && !isOciErrorJson(a)) return '431 without an OCI error body'
  // A method the pull API does not serve: 405 with Allow (415 is for media types), or an earlier parser refusal.
  if (h.method !== 'GET' && h.method !== 'HEAD' && !OWN_METHOD_ROUTES.has(h.path.split('?')[0]!)) {
    if (a.status !== 405 && a.status !== 431 && !(a.status === 400 && (a.body?.byteLength ?? 0) === 0)) return `status ${a.status} for method ${h.method} (405 expected)`
    if (a.status === 405 && (a.allow !== 'GET, HEAD' || !isOciErrorJson(a, 'UNSUPPORTED'))) return `405 with Allow ${String(a.allow)} and body ${a.body?.toString('utf8').slice(0, 200)}`
  }
  if (a.status === 405 && a.allow === undefined) return '405 without an Allow header'
  if (a.status >= 300 && h.method !== 'HEAD' && /json/i.test(a.contentType ?? '') && (a.body?.byteLength ?? 0) > 0) {
    let parsed: unknown
    try {
      parsed = JSON.parse(a.body!.toString('utf8'))
    } catch {
      return 'JSON error body does not parse'
    }
    const errors = (parsed as { errors?: unknown }).errors
    if (!Array.isArray(errors) || errors.length === 0) return 'JSON error body has no errors array'
    for (const e of errors as Array<{ code?: unknown; message?: unknown }>) {
      if (!isOciErrorCode(e.code)) return `error code ${String(e.code)} is not an OCI code`
      if (typeof e.message !== 'string') return 'error without a message'
    }
  }
  return undefined
}

/** True when `a` carries a JSON body `{errors:[{code,message}, …]}` (with `code` first, if given). */
function isOciErrorJson(a: Answer, code?: string): boolean {
  if (!/json/i.test(a.contentType ?? '')) return false
  try {
    const errors = (JSON.parse(a.body?.toString('utf8') ?? '') as { errors?: Array<{ code?: unknown; message?: unknown }> }).errors
    return Array.isArray(errors) && errors.length > 0 && isOciErrorCode(errors[0]!.code) && typeof errors[0]!.message === 'string' && (code === undefined || errors[0]!.code === code)
  } catch {
    return false
  }
}

async function runAll(items: Hostile[]): Promise<Array<{ h: Hostile; a: Answer }>> {
  const pools = { agent: new HttpAgent({ keepAlive: true, maxSockets: CONCURRENCY }), seed: new HttpAgent({ keepAlive: true, maxSockets: CONCURRENCY }) }
  const results: Array<{ h: Hostile; a: Answer }> = []
  let next = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < items.length) {
        const h = items[next++]!
        results.push({ h, a: await send(h.target === 'agent' ? agent : seed, pools[h.target], h) })
      }
    }),
  )
  pools.agent.destroy()
  pools.seed.destroy()
  return results
}

async function tmpFiles(dataDir: string): Promise<string[]> {
  const found: string[] = []
  for (const p of await listTree(dataDir)) if (/(^|\/)tmp\/./.test(p)) found.push(p)
  return found
}

describeWithBinaries(['docker-registry'], 'hostile HTTP requests against a running agent and seed', () => {
  let before: string[]
  let markedBefore: string[]

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-hostile-http-'))
    registry = await startRegistry({})
    image = await buildImage(join(work, 'img'), { layers: [200_000, 30_000], seed: 'hostile-http' })
    await pushImage(registry.url, 'team/app', 'v1', image)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    agent = await startAgentProcess(['--data', join(work, 'agent'), '--seed', seed.url, '--default-ns', registry.host, ...(await seed.enrollArgs())])
    token = await seed.clientToken()
    await pullImage(agent.url, 'team/app', 'v1', registry.host)
    before = await listTree(work, dataDirs())
    markedBefore = await markedOutside()
  })

  afterAll(async () => {
    await agent?.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it(`answers ${2 * REQUESTS_PER_TARGET} generated requests with legitimate statuses and OCI error bodies, stays up, and writes nowhere else`, { timeout: 600_000 }, async () => {
    const started = performance.now()
    const digests = [image.manifestDigest, image.config.digest, ...image.layers.map((l) => l.digest)]
    const arb = arbitraries(registry.host, digests)
    const generated = fc.sample(arb, { numRuns: 2 * REQUESTS_PER_TARGET, seed: SEED })
    const items: Hostile[] = generated.map((g, i) => {
      const target = i % 2 === 0 ? 'agent' : 'seed'
      const headers = { ...g.headers }
      if (target === 'seed' && g.admitted) headers.authorization = `Bearer ${token}`
      return { target, method: g.method, path: g.path, headers, body: g.body }
    })
    const results = await runAll(items)
    const seconds = (performance.now() - started) / 1000

    const histogram: Record<string, Record<string, number>> = { agent: {}, seed: {} }
    const bad: string[] = []
    for (const { h, a } of results) {
      const key = String(a.status)
      histogram[h.target]![key] = (histogram[h.target]![key] ?? 0) + 1
      const why = violation(h, a)
      if (why !== undefined) bad.push(`${h.target} ${h.method} ${h.path.slice(0, 300)} [${Object.keys(h.headers).join(',')}] → ${why}: ${a.body?.toString('utf8').slice(0, 300) ?? ''}`)
    }
    if (process.env.HOSTILE_DEBUG !== undefined) {
      // The most frequent answers, and a sample of bodiless 400s (mostly Node's own parser refusing the request).
      const answers: Record<string, number> = {}
      for (const { h, a } of results) {
        const k = `${h.target} ${a.status} ${(a.body?.toString('utf8') ?? '').replace(/[0-9a-f]{10,}/g, 'H').slice(0, 120)}`
        answers[k] = (answers[k] ?? 0) + 1
      }
      console.log(Object.entries(answers).sort((x, y) => y[1] - x[1]).slice(0, 20))
      const padded: Record<string, number> = {}
      for (const { h, a } of results) if (h.headers['x-pad'] !== undefined) padded[String(a.status)] = (padded[String(a.status)] ?? 0) + 1
      console.log('answers to requests with > 16 KiB of headers:', padded)
    }
    console.log(`hostile HTTP: ${results.length} requests in ${seconds.toFixed(1)} s (fast-check seed ${SEED}); statuses:`, JSON.stringify(histogram))
    if (bad.length > 0) console.log(`hostile HTTP: ${bad.length} violations (FC_SEED=${SEED} to replay), first ones:\n${bad.slice(0, 20).join('\n')}`)

    expect(results.length).toBe(2 * REQUESTS_PER_TARGET)
    expect(bad.slice(0, 20), `FC_SEED=${SEED}`).toEqual([])
    // The 431 and 405 properties are not vacuous: the sample holds such requests, and some got those answers.
    expect(results.some(({ h, a }) => h.headers['x-pad'] !== undefined && a.status === 431), 'a > 16 KiB header request answered 431').toBe(true)
    expect(results.some(({ h, a }) => h.method === 'DELETE' && a.status === 405), 'a DELETE answered 405').toBe(true)

    // Both processes are still up and healthy.
    for (const p of [agent, seed]) {
      expect(p.child.exitCode, p.output().slice(-2000)).toBeNull()
      const health = await fetch(`${p.opsUrl}/healthz`, { signal: AbortSignal.timeout(5_000) })
      expect(health.status).toBe(200)
    }

    // Quiescence: no fill or temp file left behind, nothing written outside the data dirs.
    const until = Date.now() + 10_000
    let leftovers: string[] = []
    do {
      leftovers = (await Promise.all(dataDirs().map(tmpFiles))).flat()
      if (leftovers.length === 0) break
      await new Promise((r) => setTimeout(r, 200))
    } while (Date.now() < until)
    expect(leftovers).toEqual([])
    for (const d of dataDirs()) expect(await listTree(d), `${d} has the store's temp dir this checks`).toContain(join('content', 'tmp'))
    expect(await listTree(work, dataDirs())).toEqual(before)
    expect(await markedOutside()).toEqual(markedBefore)
  })
})
