import { createHash } from 'node:crypto'
import { request } from 'undici'

export interface PullResult {
  manifestDigest: string
  blobs: number
  bytes: number
  seconds: number
}

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ')

/**
 * Pulls an image through a mirror the way containerd does: resolves the tag, fetches the
 * manifest, then every blob (config and layers, up to `parallel` at once), checking each
 * blob's sha256 against its digest. Throws on any HTTP error or mismatch.
 */
export async function pullImage(mirror: string, repo: string, tag: string, ns: string, parallel = 3): Promise<PullResult> {
  const started = performance.now()
  const q = `?ns=${encodeURIComponent(ns)}`
  const res = await request(`${mirror}/v2/${repo}/manifests/${tag}${q}`, { headers: { accept: ACCEPT }, signal: AbortSignal.timeout(120_000) })
  if (res.statusCode !== 200) throw new Error(`manifest ${repo}:${tag}: HTTP ${res.statusCode} ${await res.body.text()}`)
  const manifest = (await res.body.json()) as { config: { digest: string }; layers: Array<{ digest: string; size: number }> }
  const digests = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]
  let bytes = 0
  const queue = [...digests]
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
        const n = await fetchBlob(mirror, repo, d, q)
        bytes += n
      }
    }),
  )
  return { manifestDigest: String(res.headers['docker-content-digest']), blobs: digests.length, bytes, seconds: (performance.now() - started) / 1000 }
}

/** GETs one blob and checks its sha256; returns its size. */
export async function fetchBlob(mirror: string, repo: string, digest: string, query = ''): Promise<number> {
  try {
    return await fetchBlobOnce(mirror, repo, digest, query)
  } catch (err) {
    throw new Error(`GET ${mirror}/v2/${repo}/blobs/${digest}${query}: ${(err as Error).message}`, { cause: err })
  }
}

async function fetchBlobOnce(mirror: string, repo: string, digest: string, query: string): Promise<number> {
  const res = await request(`${mirror}/v2/${repo}/blobs/${digest}${query}`, { signal: AbortSignal.timeout(300_000) })
  if (res.statusCode !== 200) throw new Error(`blob ${digest}: HTTP ${res.statusCode} ${await res.body.text()}`)
  const hash = createHash('sha256')
  let n = 0
  for await (const chunk of res.body) {
    hash.update(chunk as Buffer)
    n += (chunk as Buffer).byteLength
  }
  if (`sha256:${hash.digest('hex')}` !== digest) throw new Error(`blob ${digest}: wrong bytes`)
  return n
}
