import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ContentStore } from '../content/store.js'
import { DigestVerifier } from '../protocol/digest-verifier.js'
import { startContainerd, type RunningContainerd } from './helpers/containerd.js'
import { startFaultyProxy, type FaultyProxy } from './helpers/faulty-proxy.js'
import { freePort } from './helpers/free-port.js'
import { buildImage, makeBlobFile, pushBlob, pushImage, type BlobFile, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { configureContainerd, seedArgsFor } from './helpers/pollen-stack.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const MiB = 1024 * 1024

/** A raw request: node:http sends the path exactly as given. */
async function raw(base: string, path: string, headers: Record<string, string> = {}, method = 'GET') {
  const { hostname, port } = new URL(base)
  const req = httpRequest({ host: hostname, port, method, path, headers, signal: AbortSignal.timeout(120_000) })
  req.end()
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  const hash = createHash('sha256')
  const parts: Buffer[] = []
  let bytes = 0
  for await (const chunk of res) {
    hash.update(chunk as Buffer)
    bytes += (chunk as Buffer).byteLength
    if (bytes <= MiB) parts.push(chunk as Buffer)
  }
  const body = Buffer.concat(parts)
  return { status: res.statusCode ?? 0, headers: res.headers, bytes, digest: `sha256:${hash.digest('hex')}`, json: () => JSON.parse(body.toString()) as { errors: Array<{ code: string }> } }
}

describeWithBinaries(['containerd', 'ctr', 'docker-registry'], 'agent under faults', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let proxy: FaultyProxy
  let agent: AgentProcess
  let image: BuiltImage
  let big: BlobFile
  /** Every agent started, so that a failed test leaves none running. */
  const started: AgentProcess[] = []
  const startAgent = async (args: string[]): Promise<AgentProcess> => {
    const a = await startAgentProcess([...args, ...(await seed.enrollArgs())])
    started.push(a)
    return a
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-faults-'))
    registry = await startRegistry({})
    image = await buildImage(join(work, 'img'), { layers: [64 * MiB, 100_000], seed: 'faults', layerFormat: 'tar+gzip' })
    await pushImage(registry.url, 'team/big', 'v1', image)
    big = await makeBlobFile(work, 64 * MiB, 'crash')
    await pushBlob(registry.url, 'team/crash', big)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
  })
  afterAll(async () => {
    for (const a of started) await a.stop()
    await proxy?.stop()
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('(d) resumes from the byte it reached when the seed dies at byte N of a 64 MiB blob, and containerd never notices', async () => {
    const cutAt = 20 * MiB + 12345
    proxy = await startFaultyProxy({ target: seed.url, cutAfterBytes: cutAt, cuts: 2, matches: (req) => (req.url ?? '').includes(`/blobs/${image.layers[0]!.digest}`) })
    const port = await freePort()
    agent = await startAgent(['--listen', `127.0.0.1:${port}`, '--data', join(work, 'agent-d'), '--seed', proxy.url])
    const hostsDir = join(work, 'certs.d')
    await configureContainerd(['--hosts-dir', hostsDir, '--registry', registry.host, '--listen', `127.0.0.1:${port}`])
    let ctd: RunningContainerd | undefined
    try {
      ctd = await startContainerd()
      await ctd.pull(`${registry.host}/team/big:v1`, { hostsDir, timeoutMs: 120_000 })
      expect(await ctd.contentDigests()).toContain(image.layers[0]!.digest)
    } finally {
      await ctd?.stop()
    }
    expect(proxy.cutsDone()).toBe(2)
    // Blob GETs only: the agent also asks the seed where to fetch the layer from (/v1/fanout/<digest>).
    const blobRequests = proxy.requests.filter((r) => r.url.includes(`/blobs/${image.layers[0]!.digest}`))
    // Each resume starts at the byte the agent had received (a cut may lose the last unflushed chunk).
    expect(blobRequests).toHaveLength(3)
    expect(blobRequests[0]!.range).toBeUndefined()
    const starts = blobRequests.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r.range ?? '')?.[1]))
    expect(starts[0]).toBeGreaterThan(cutAt - MiB)
    expect(starts[0]).toBeLessThanOrEqual(cutAt)
    expect(starts[1]! - starts[0]!).toBeGreaterThan(cutAt - MiB)
    expect(starts[1]! - starts[0]!).toBeLessThanOrEqual(cutAt)
    expect(await agent.metric('pollen_agent_fills_total', { outcome: 'failed' })).toBe(0)
    expect(await agent.metric('pollen_agent_remote_bytes_total')).toBeLessThan(image.layers[0]!.size + image.layers[1]!.size + image.config.size + 2 * MiB)
    await agent.stop()
    await proxy.stop()
  })

  it('answers bad input with the right OCI error and stays up', async () => {
    agent = await startAgent(['--data', join(work, 'agent-bad'), '--seed', seed.url, '--default-ns', registry.host])
    const D = image.layers[1]!.digest
    const cases: Array<[string, Record<string, string>, number, string]> = [
      [`/v2/../../etc/blobs/${D}`, {}, 400, 'NAME_INVALID'],
      [`/v2/team/%2e%2e/blobs/${D}`, {}, 400, 'NAME_INVALID'],
      [`/v2/team//big/blobs/${D}`, {}, 400, 'NAME_INVALID'],
      [`/v2/${'a'.repeat(300)}/blobs/${D}`, {}, 400, 'NAME_INVALID'],
      [`/v2/team/big/blobs/sha256:${'A'.repeat(64)}`, {}, 400, 'DIGEST_INVALID'],
      [`/v2/team/big/blobs/sha384:${'a'.repeat(96)}`, {}, 400, 'DIGEST_INVALID'],
      [`/v2/team/big/blobs/${D}`, { Range: 'bytes=zz-' }, 416, 'RANGE_INVALID'],
      [`/v2/team/big/blobs/${D}`, { Range: `bytes=${image.layers[1]!.size}-` }, 416, 'RANGE_INVALID'],
      [`/v2/team/big/manifests/v1?ns=..%2f..`, {}, 400, 'NAME_INVALID'],
      [`/v2/team/big/manifests/nope`, {}, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/team/big/blobs/sha256:${'0'.repeat(64)}`, {}, 404, 'BLOB_UNKNOWN'],
    ]
    for (const [path, headers, status, code] of cases) {
      const res = await raw(agent.url, path, headers)
      expect({ path, status: res.status, code: res.json().errors[0]?.code }).toEqual({ path, status, code })
    }
    const ranged = await raw(agent.url, `/v2/team/big/blobs/${D}`, { Range: 'bytes=0-' })
    expect(ranged.status).toBe(206)
    expect(ranged.headers['content-range']).toBe(`bytes 0-${image.layers[1]!.size - 1}/${image.layers[1]!.size}`)
    const suffix = await raw(agent.url, `/v2/team/big/blobs/${D}`, { Range: 'bytes=-100' })
    expect(suffix.status).toBe(206)
    expect(suffix.bytes).toBe(100)
    expect((await raw(agent.url, '/v2/')).status).toBe(200)
    expect(agent.child.exitCode).toBeNull()
    await agent.stop()
  })

  it('serves no partial blob after being killed mid-fill, and its index agrees with its files after restart', async () => {
    proxy = await startFaultyProxy({ target: seed.url, bytesPerSecond: 16 * MiB })
    const dataDir = join(work, 'agent-crash')
    agent = await startAgent(['--data', dataDir, '--seed', proxy.url, '--default-ns', registry.host])
    const path = `/v2/team/crash/blobs/${big.digest}`
    const pulling = raw(agent.url, path).catch(() => undefined)
    const tmp = join(dataDir, 'content', 'tmp')
    for (let i = 0; i < 100 && (await readdir(tmp).catch(() => [])).length === 0; i++) await new Promise((r) => setTimeout(r, 50))
    await new Promise((r) => setTimeout(r, 1000))
    expect(await readdir(tmp)).toHaveLength(1)
    await agent.kill()
    await pulling
    await proxy.stop()

    agent = await startAgent(['--data', dataDir, '--seed', seed.url, '--default-ns', registry.host])
    expect(await readdir(tmp)).toEqual([])
    const head = await raw(agent.url, path, {}, 'HEAD')
    expect(head.status).toBe(200)
    const full = await raw(agent.url, path)
    expect(full.digest).toBe(big.digest)
    await agent.stop()

    const store = await ContentStore.open({ dir: join(dataDir, 'content') }, { logger: pino({ level: 'silent' }) })
    try {
      let blobs = 0
      for await (const [digest, record] of store.entries()) {
        const verifier = new DigestVerifier(digest, record.size)
        for await (const chunk of await store.createReadStream(digest)) verifier.update(chunk as Buffer)
        expect(() => verifier.verify()).not.toThrow()
        blobs++
      }
      expect(blobs).toBe(1)
      expect(await readdir(tmp)).toEqual([])
    } finally {
      await store.close()
    }
  })
})

