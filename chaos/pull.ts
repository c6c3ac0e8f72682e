/**
 * The soak's client: pulls images through an agent the way containerd does (manifest by tag,
 * then config and layers a few at a time), checks every manifest and blob against its sha256
 * while the bytes stream, and counts requests, failures and bytes. A failure is recorded and
 * the pull goes on with the next blob; nothing is retried.
 */
import { createHash } from 'node:crypto'
import { Agent, request, type Dispatcher } from 'undici'
import { BLOB_TIMEOUT_MS, MANIFEST_TIMEOUT_MS, PULL_PARALLELISM } from './constants.js'
import type { ImageVersion } from './images.js'

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
/** Failures kept with their details (all are counted). */
const MAX_FAILURE_DETAILS = 50

export interface PullCounters {
  requests: number
  manifestRequests: number
  blobRequests: number
  failures: number
  /** Bytes of manifest and blob bodies received. */
  bytesReceived: number
  /** Bytes of bodies whose sha256 (and size) matched what was pushed. */
  bytesVerified: number
}

export interface PullFailure {
  /** Milliseconds since the soak started. */
  atMs: number
  agent: string
  url: string
  error: string
}

export class Puller {
  readonly counters: PullCounters = { requests: 0, manifestRequests: 0, blobRequests: 0, failures: 0, bytesReceived: 0, bytesVerified: 0 }
  readonly failures: PullFailure[] = []
  /** Seconds each image pull took (manifest and all blobs), in order. */
  readonly pullSeconds: number[] = []
  readonly #startedAt: number
  readonly #ns: string
  readonly #signal: AbortSignal

  /** `ns` is the registry host the images live on; `signal` ends every pull (aborted requests are not failures). */
  constructor(ns: string, startedAt: number, signal: AbortSignal) {
    this.#ns = ns
    this.#startedAt = startedAt
    this.#signal = signal
  }

  /** Pulls `image` through the agent at `agentUrl` over `dispatcher`. Never throws; failures are counted. */
  async pull(agent: string, agentUrl: string, dispatcher: Dispatcher, image: ImageVersion): Promise<void> {
    const started = performance.now()
    await this.#pull(agent, agentUrl, dispatcher, image)
    if (!this.#signal.aborted) this.pullSeconds.push((performance.now() - started) / 1000)
  }

  async #pull(agent: string, agentUrl: string, dispatcher: Dispatcher, image: ImageVersion): Promise<void> {
    const q = `?ns=${encodeURIComponent(this.#ns)}`
    const manifestUrl = `${agentUrl}/v2/${image.repo}/manifests/${image.tag}${q}`
    const manifest = await this.#request(agent, manifestUrl, dispatcher, MANIFEST_TIMEOUT_MS, 'manifest', async (res, received) => {
      const body = Buffer.from(await res.body.arrayBuffer())
      received.bytes += body.length
      const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`
      if (digest !== image.manifestDigest) throw new Error(`manifest hashes to ${digest}, pushed ${image.manifestDigest}`)
      const header = res.headers['docker-content-digest']
      if (header !== undefined && header !== digest) throw new Error(`Docker-Content-Digest ${String(header)} but the body hashes to ${digest}`)
      received.verified = true
      return JSON.parse(body.toString('utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> }
    })
    if (manifest === undefined) return
    const queue = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]
    await Promise.all(
      Array.from({ length: PULL_PARALLELISM }, async () => {
        for (let digest = queue.shift(); digest !== undefined; digest = queue.shift()) {
          const expected = image.blobs.get(digest)
          const url = `${agentUrl}/v2/${image.repo}/blobs/${digest}${q}`
          await this.#request(agent, url, dispatcher, BLOB_TIMEOUT_MS, 'blob', async (res, received) => {
            const hash = createHash('sha256')
            for await (const chunk of res.body) {
              hash.update(chunk as Buffer)
              received.bytes += (chunk as Buffer).byteLength
            }
            const got = `sha256:${hash.digest('hex')}`
            if (got !== digest) throw new Error(`${received.bytes} bytes hashing to ${got}`)
            if (received.bytes !== expected) throw new Error(`${received.bytes} bytes, pushed ${expected ?? 'no such blob'}`)
            received.verified = true
          })
        }
      }),
    )
  }

  /**
   * One GET: hands a 200 to `read` (which tallies the body bytes it received and marks them
   * verified), records any other answer or error as a failure. The request and its bytes are
   * counted once it is done, and not at all when the soak aborted it.
   */
  async #request<T>(
    agent: string,
    url: string,
    dispatcher: Dispatcher,
    timeoutMs: number,
    kind: 'manifest' | 'blob',
    read: (res: Dispatcher.ResponseData, received: { bytes: number; verified: boolean }) => Promise<T>,
  ): Promise<T | undefined> {
    if (this.#signal.aborted) return undefined
    const received = { bytes: 0, verified: false }
    const count = (): void => {
      this.counters.requests++
      if (kind === 'manifest') this.counters.manifestRequests++
      else this.counters.blobRequests++
      this.counters.bytesReceived += received.bytes
      if (received.verified) this.counters.bytesVerified += received.bytes
    }
    try {
      const res = await request(url, {
        dispatcher,
        headers: kind === 'manifest' ? { accept: ACCEPT } : {},
        signal: AbortSignal.any([this.#signal, AbortSignal.timeout(timeoutMs)]),
      })
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode} ${(await res.body.text()).slice(0, 300)}`)
      const value = await read(res, received)
      count()
      return value
    } catch (err) {
      if (this.#signal.aborted) return undefined
      count()
      this.counters.failures++
      if (this.failures.length < MAX_FAILURE_DETAILS) {
        this.failures.push({ atMs: Date.now() - this.#startedAt, agent, url, error: describe(err) })
      }
      return undefined
    }
  }
}

/** A keep-alive connection pool for one agent incarnation (closed when it is killed). */
export function agentDispatcher(): Agent {
  return new Agent({ keepAliveTimeout: 10_000, connections: 8 })
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : ''
  return `${err.name}: ${err.message}${cause}`
}
