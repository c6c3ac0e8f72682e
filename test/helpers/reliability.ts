/**
 * The reliability scenarios' client and tally: pulls an image through a mirror the way
 * containerd does (manifest, then every blob, each sha256-checked while it streams) and,
 * like containerd under kubelet's back-off, retries a request that failed (an HTTP error, a
 * refused connection, a response cut short) until a deadline. Bytes that arrived whole but
 * hash to something else are counted as corrupted, never retried away.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ')

export interface PullOptions {
  /** Give up retrying after this long (default 120 s). */
  deadlineMs?: number
  /** Back-off doubles from 500 ms up to this (default 4 s). */
  maxBackoffMs?: number
  /** Blobs fetched at once (default 3, containerd's default). */
  parallel?: number
  /** Per-request deadline (default 90 s). */
  requestTimeoutMs?: number
  /**
   * The registry itself (`http://host:port`), tried right after a failed mirror request the
   * way containerd tries the next host of hosts.toml (the `server`).
   */
  fallback?: string
}

export interface PullOutcome {
  mirror: string
  reference: string
  ok: boolean
  blobs: number
  /** Bytes of blobs (and the manifest) whose sha256 matched their digest. */
  bytesVerified: number
  /** Bytes that arrived whole (full length) but hashed to another digest. */
  bytesCorrupted: number
  /** Bytes of the blobs (or manifest) the pull never got right before its deadline. */
  bytesLost: number
  /** Of bytesVerified, those that came from the fallback registry rather than the mirror. */
  bytesFromFallback: number
  /** Requests repeated after a failure (a fallback attempt is not a retry). */
  retries: number
  /** The distinct failures seen (status and OCI code, or the error), with counts. */
  failures: Record<string, number>
  seconds: number
}

interface Blob {
  digest: string
  size: number
}

/**
 * Pulls `repo` at `reference` (a tag or a digest) through `mirror`, retrying each failed
 * request with back-off until `deadlineMs`. Never throws: the outcome says what happened.
 */
export async function verifiedPull(mirror: string, repo: string, reference: string, ns: string, options: PullOptions = {}): Promise<PullOutcome> {
  const started = performance.now()
  const deadline = Date.now() + (options.deadlineMs ?? 120_000)
  const timeoutMs = options.requestTimeoutMs ?? 90_000
  const q = `?ns=${encodeURIComponent(ns)}`
  const outcome: PullOutcome = { mirror, reference: `${repo}:${reference}`, ok: false, blobs: 0, bytesVerified: 0, bytesCorrupted: 0, bytesLost: 0, bytesFromFallback: 0, retries: 0, failures: {}, seconds: 0 }
  const failed = (what: string): void => void (outcome.failures[what] = (outcome.failures[what] ?? 0) + 1)
  const backoff = async (attempt: number): Promise<boolean> => {
    const wait = Math.min(500 * 2 ** attempt, options.maxBackoffMs ?? 4000)
    if (Date.now() + wait > deadline) return false
    await new Promise((r) => setTimeout(r, wait))
    outcome.retries++
    return true
  }

  let manifest!: { config: Blob; layers: Blob[] }
  const hosts = [{ base: mirror, query: q, name: '' }, ...(options.fallback === undefined ? [] : [{ base: options.fallback, query: '', name: 'fallback ' }])]
  retrying: for (let attempt = 0; ; attempt++) {
    for (const host of hosts) {
      const got = await getManifest(`${host.base}/v2/${repo}/manifests/${reference}${host.query}`, reference, timeoutMs)
      if (got.kind === 'ok') {
        outcome.bytesVerified += got.bytes
        if (host.name !== '') outcome.bytesFromFallback += got.bytes
        manifest = got.manifest
        break retrying
      }
      if (got.kind === 'corrupted') outcome.bytesCorrupted += got.bytes
      failed(`${host.name}manifest: ${got.why}`)
    }
    if (!(await backoff(attempt))) return finish(outcome, started)
  }
  const blobs = [manifest.config, ...manifest.layers]
  outcome.blobs = blobs.length
  const queue = [...blobs]
  let allOk = true
  await Promise.all(
    Array.from({ length: options.parallel ?? 3 }, async () => {
      for (let blob = queue.shift(); blob !== undefined; blob = queue.shift()) {
        fetching: for (let attempt = 0; ; attempt++) {
          for (const host of hosts) {
            const got = await getBlob(`${host.base}/v2/${repo}/blobs/${blob.digest}${host.query}`, blob, timeoutMs)
            if (got.kind === 'ok') {
              outcome.bytesVerified += blob.size
              if (host.name !== '') outcome.bytesFromFallback += blob.size
              break fetching
            }
            if (got.kind === 'corrupted') outcome.bytesCorrupted += got.bytes
            failed(`${host.name}blob: ${got.why}`)
          }
          if (!(await backoff(attempt))) {
            outcome.bytesLost += blob.size
            allOk = false
            break
          }
        }
      }
    }),
  )
  outcome.ok = allOk
  return finish(outcome, started)
}

function finish(outcome: PullOutcome, started: number): PullOutcome {
  outcome.seconds = Math.round((performance.now() - started) / 100) / 10
  return outcome
}

type Got<T> = ({ kind: 'ok'; bytes: number } & T) | { kind: 'failed'; why: string } | { kind: 'corrupted'; why: string; bytes: number }

async function getManifest(url: string, reference: string, timeoutMs: number): Promise<Got<{ manifest: { config: Blob; layers: Blob[] } }>> {
  try {
    const res = await request(url, { headers: { accept: ACCEPT }, signal: AbortSignal.timeout(timeoutMs) })
    if (res.statusCode !== 200) return { kind: 'failed', why: await httpFailure(res.statusCode, res.body) }
    const bytes = Buffer.from(await res.body.arrayBuffer())
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`
    const claimed = String(res.headers['docker-content-digest'] ?? '')
    const expected = reference.startsWith('sha256:') ? reference : claimed
    if (digest !== expected) return { kind: 'corrupted', why: `manifest hashes to ${digest}, expected ${expected}`, bytes: bytes.byteLength }
    return { kind: 'ok', bytes: bytes.byteLength, manifest: JSON.parse(bytes.toString('utf8')) as { config: Blob; layers: Blob[] } }
  } catch (err) {
    return { kind: 'failed', why: errorName(err) }
  }
}

async function getBlob(url: string, blob: Blob, timeoutMs: number): Promise<Got<object>> {
  let n = 0
  try {
    const res = await request(url, { signal: AbortSignal.timeout(timeoutMs) })
    if (res.statusCode !== 200) return { kind: 'failed', why: await httpFailure(res.statusCode, res.body) }
    const hash = createHash('sha256')
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer)
      n += (chunk as Buffer).byteLength
    }
    const digest = `sha256:${hash.digest('hex')}`
    if (n === blob.size && digest === blob.digest) return { kind: 'ok', bytes: n }
    // Whole (or over-long) but wrong: corruption. Short: a response cut short, which a client retries.
    if (n >= blob.size) return { kind: 'corrupted', why: `blob ${blob.digest.slice(0, 19)} ${n} bytes hash to ${digest.slice(0, 19)}`, bytes: n }
    return { kind: 'failed', why: `cut short` }
  } catch (err) {
    if (n > 0) return { kind: 'failed', why: `cut short (${errorName(err)})` }
    return { kind: 'failed', why: errorName(err) }
  }
}

async function httpFailure(status: number, body: { text(): Promise<string> }): Promise<string> {
  const text = await body.text().catch(() => '')
  try {
    const code = (JSON.parse(text) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code
    return `HTTP ${status} ${code ?? 'non-OCI body'}`
  } catch {
    return `HTTP ${status} non-OCI body`
  }
}

function errorName(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string }
  return e.code ?? e.name ?? String(e.message ?? err).slice(0, 80)
}

/** The totals over several pulls, as written to test/results/reliability-<scenario>.json. */
export interface ScenarioResult {
  scenario: string
  at: string
  pullsAttempted: number
  pullsCompleted: number
  bytesVerified: number
  bytesCorrupted: number
  bytesLost: number
  bytesFromFallback: number
  retries: number
  failures: Record<string, number>
  /** Anything else worth keeping (where bytes came from, the store's state, …). */
  notes?: Record<string, unknown>
}

/** Sums pull outcomes into one scenario result. */
export function tally(scenario: string, outcomes: PullOutcome[], notes?: Record<string, unknown>): ScenarioResult {
  const failures: Record<string, number> = {}
  for (const o of outcomes) for (const [k, v] of Object.entries(o.failures)) failures[k] = (failures[k] ?? 0) + v
  return {
    scenario,
    at: new Date().toISOString(),
    pullsAttempted: outcomes.length,
    pullsCompleted: outcomes.filter((o) => o.ok).length,
    bytesVerified: outcomes.reduce((n, o) => n + o.bytesVerified, 0),
    bytesCorrupted: outcomes.reduce((n, o) => n + o.bytesCorrupted, 0),
    bytesLost: outcomes.reduce((n, o) => n + o.bytesLost, 0),
    bytesFromFallback: outcomes.reduce((n, o) => n + o.bytesFromFallback, 0),
    retries: outcomes.reduce((n, o) => n + o.retries, 0),
    failures,
    ...(notes === undefined ? {} : { notes }),
  }
}

const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url))

/** Prints the result as one line and appends it to test/results/reliability-<scenario>.json (a JSON array). */
export async function recordResult(result: ScenarioResult): Promise<void> {
  const MiB = 1024 * 1024
  const failures = Object.entries(result.failures).map(([k, v]) => `${k} ×${v}`).join('; ')
  console.log(
    `RESULT reliability-${result.scenario}: pulls attempted ${result.pullsAttempted}, completed ${result.pullsCompleted}, ` +
      `bytes verified ${result.bytesVerified} (${(result.bytesVerified / MiB).toFixed(1)} MiB), corrupted ${result.bytesCorrupted}, lost ${result.bytesLost}, ` +
      `${result.bytesFromFallback > 0 ? `of which from the registry as fallback ${result.bytesFromFallback}, ` : ''}` +
      `retries ${result.retries}${failures === '' ? '' : ` (${failures})`}`,
  )
  const path = `${RESULTS_DIR}reliability-${result.scenario}.json`
  await mkdir(dirname(path), { recursive: true })
  let previous: ScenarioResult[] = []
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown
    if (Array.isArray(parsed)) previous = parsed as ScenarioResult[]
  } catch {
    /* first run, or an unreadable file: start over */
  }
  await writeFile(path, `${JSON.stringify([...previous, result], null, 2)}\n`)
}
