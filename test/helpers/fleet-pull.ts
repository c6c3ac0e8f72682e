import { createHash } from 'node:crypto'
import { request } from 'undici'

/** What a pull must deliver: the manifest's digest and every blob (config and layers). */
export interface ExpectedImage {
  manifestDigest: string
  manifestSize: number
  blobs: Array<{ digest: string; size: number }>
}

export interface FleetPullOptions {
  ns: string
  repo: string
  tag: string
  /** Attempts per manifest or blob after the first, as containerd retries a failed fetch; default 3. */
  retries?: number
  /** Wait before retry n (0-based); default 1 s · 2ⁿ. */
  retryDelayMs?: (retry: number) => number
  /** Blobs fetched at once; default 3 (containerd's default). */
  parallel?: number
  /** Aborted when the node the pull runs on dies: the pull ends as `interrupted`. */
  signal?: AbortSignal
  /** Aborted when the pull has taken too long: it ends as `failed`, what did not arrive counted lost. */
  deadline?: AbortSignal
  /** Called with the size of every body chunk received (manifest and blobs). */
  onBytes?: (n: number) => void
}

export interface PullOutcome {
  status: 'completed' | 'failed' | 'interrupted'
  /** Bytes whose sha256 matched their digest (manifest and blobs). */
  bytesVerified: number
  /** Bytes delivered as a whole body (200, full length) whose sha256 did not match. */
  bytesCorrupted: number
  /** Bytes of the image never delivered verified, when the pull failed. */
  bytesLost: number
  /** Fetches repeated after a failed one. */
  retries: number
  /** One line per failed fetch. */
  errors: string[]
  seconds: number
}

class Interrupted extends Error {}
class DeadlinePassed extends Error {}

/**
 * Pulls an image through a mirror the way containerd does (tag → manifest → blobs, `parallel`
 * at once), hashing every body as it streams and checking it against its digest and size.
 * A failed fetch is repeated up to `retries` times; every repeat and every failure is counted.
 * Never throws for a fault: the outcome says what arrived.
 */
export async function fleetPull(mirror: string, image: ExpectedImage, opts: FleetPullOptions): Promise<PullOutcome> {
  const started = performance.now()
  const out: PullOutcome = { status: 'completed', bytesVerified: 0, bytesCorrupted: 0, bytesLost: 0, retries: 0, errors: [], seconds: 0 }
  const q = `?ns=${encodeURIComponent(opts.ns)}`
  const fetchVerified = async (path: string, digest: string, size: number, accept?: string): Promise<boolean> => {
    const retries = opts.retries ?? 3
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        out.retries++
        await sleep((opts.retryDelayMs ?? ((n) => 1000 * 2 ** n))(attempt - 1), opts.signal, opts.deadline)
      }
      const result = await fetchOnce(`${mirror}${path}${q}`, digest, size, accept, opts)
      if (result === 'ok') {
        out.bytesVerified += size
        return true
      }
      if (result.corrupted) out.bytesCorrupted += result.corrupted
      out.errors.push(`${path}: ${result.error}`)
    }
    out.bytesLost += size
    return false
  }
  try {
    const manifestOk = await fetchVerified(`/v2/${opts.repo}/manifests/${opts.tag}`, image.manifestDigest, image.manifestSize, MANIFEST_ACCEPT)
    if (!manifestOk) {
      out.bytesLost += image.blobs.reduce((n, b) => n + b.size, 0)
    } else {
      const queue = [...image.blobs]
      await Promise.all(
        Array.from({ length: opts.parallel ?? 3 }, async () => {
          for (let b = queue.shift(); b !== undefined; b = queue.shift()) await fetchVerified(`/v2/${opts.repo}/blobs/${b.digest}`, b.digest, b.size)
        }),
      )
    }
    out.status = out.bytesLost === 0 ? 'completed' : 'failed'
  } catch (err) {
    if (err instanceof DeadlinePassed) {
      out.status = 'failed'
      out.errors.push('the pull did not finish before its deadline')
      out.bytesLost = image.manifestSize + image.blobs.reduce((n, b) => n + b.size, 0) - out.bytesVerified
    } else if (err instanceof Interrupted) {
      out.status = 'interrupted'
      out.bytesLost = 0
    } else {
      throw err
    }
  }
  out.seconds = (performance.now() - started) / 1000
  return out
}

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ')

/** One GET, streamed through sha256. Throws Interrupted when opts.signal aborts. */
async function fetchOnce(url: string, digest: string, size: number, accept: string | undefined, opts: FleetPullOptions): Promise<'ok' | { error: string; corrupted?: number }> {
  const signal = AbortSignal.any([AbortSignal.timeout(120_000), ...[opts.signal, opts.deadline].filter((s) => s !== undefined)])
  let n = 0
  try {
    const res = await request(url, { headers: accept === undefined ? {} : { accept }, signal })
    if (res.statusCode !== 200) return { error: `HTTP ${res.statusCode} ${(await res.body.text()).slice(0, 200)}` }
    const hash = createHash('sha256')
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer)
      n += (chunk as Buffer).byteLength
      opts.onBytes?.((chunk as Buffer).byteLength)
    }
    const got = `sha256:${hash.digest('hex')}`
    if (n === size && got === digest) return 'ok'
    if (n === size) return { error: `wrong bytes: sha256 ${got}`, corrupted: n }
    return { error: `body of ${n} bytes, expected ${size}`, corrupted: n > size ? n : 0 }
  } catch (err) {
    if (opts.signal?.aborted === true) throw new Interrupted()
    if (opts.deadline?.aborted === true) throw new DeadlinePassed()
    return { error: `${(err as Error).message} after ${n} bytes` }
  }
}

/** Waits `ms`; rejects with Interrupted when `signal` aborts, DeadlinePassed when `deadline` does. */
function sleep(ms: number, signal?: AbortSignal, deadline?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      if (signal?.aborted === true) reject(new Interrupted())
      else if (deadline?.aborted === true) reject(new DeadlinePassed())
      else return false
      return true
    }
    if (check()) return
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      deadline?.removeEventListener('abort', onAbort)
    }
    const timer = setTimeout(() => {
      done()
      resolve()
    }, ms)
    const onAbort = (): void => {
      done()
      check()
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    deadline?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Sums pull outcomes into one scenario row's pull figures. */
export function tally(outcomes: PullOutcome[]) {
  return {
    pullsAttempted: outcomes.length,
    pullsCompleted: outcomes.filter((o) => o.status === 'completed').length,
    pullsInterrupted: outcomes.filter((o) => o.status === 'interrupted').length,
    pullsFailed: outcomes.filter((o) => o.status === 'failed').length,
    clientRetries: outcomes.reduce((n, o) => n + o.retries, 0),
    bytesVerified: outcomes.reduce((n, o) => n + o.bytesVerified, 0),
    bytesCorrupted: outcomes.reduce((n, o) => n + o.bytesCorrupted, 0),
    bytesLost: outcomes.reduce((n, o) => n + o.bytesLost, 0),
    slowestSeconds: Math.max(0, ...outcomes.map((o) => o.seconds)),
  }
}
