import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildImage, buildIndex, pushImage, pushIndex, type BuiltImage, type BuiltIndex } from './helpers/oci-image.js'
import { startSeedProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

const SEED_MAIN = fileURLToPath(new URL('../dist/seed/main.js', import.meta.url))
const MiB = 1024 * 1024

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs `pollen-seed ARGS…` with pipes (not a TTY); resolves its exit code and output. */
function seedCli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SEED_MAIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}

const blobsOf = (image: BuiltImage) => [image.config, ...image.layers]

describeWithBinaries(['docker-registry'], 'pollen-seed preheat against a running seed and a real docker-registry', () => {
  let work: string
  let registry: RunningRegistry
  let seed: SeedProcess
  let image: BuiltImage
  let index: BuiltIndex

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-preheat-'))
    registry = await startRegistry({})
    image = await buildImage(join(work, 'app'), { layers: [100_000, MiB, 2 * MiB + 3], seed: 'preheat-app' })
    await pushImage(registry.url, 'team/app', 'v1', image)
    const amd = await buildImage(join(work, 'amd'), { layers: [300_000, 40_000], seed: 'preheat-amd' })
    const arm = await buildImage(join(work, 'arm'), { layers: [310_000], seed: 'preheat-arm', platform: { os: 'linux', architecture: 'arm64' } })
    index = buildIndex([
      { image: amd, platform: amd.platform },
      { image: arm, platform: arm.platform },
    ])
    await pushIndex(registry.url, 'team/multi', 'latest', index)
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
  })
  afterAll(async () => {
    await seed?.stop()
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('fills the seed cache with an image and every platform of an index, printing one plain line per blob', async () => {
    const blobs = [...blobsOf(image), ...index.children.flatMap((c) => blobsOf(c.image))]
    const bytes = blobs.reduce((n, b) => n + b.size, 0)
    const upstreamBefore = await seed.metric('pollen_seed_upstream_bytes_total')
    const run = await seedCli(['preheat', '--data', seed.dataDir, '--seed', seed.url, `${registry.host}/team/app:v1`, `${registry.host}/team/multi:latest`])
    expect(run, run.stderr).toMatchObject({ code: 0, stderr: '' })
    const lines = run.stdout.trimEnd().split('\n')
    for (const line of lines.slice(0, -1)) {
      expect(line).toMatch(new RegExp(`^${registry.host.replace(/\./g, '\\.')}/team/(app:v1|multi:latest): (\\d+ blobs?, .+ to preheat|blob sha256:[0-9a-f]{12} .+ in .+ \\(\\d+/\\d+\\)|preheated \\d+ blobs?, .+ in .+ \\(.+ MB/s\\))$`))
    }
    expect(lines.filter((l) => l.includes(': blob sha256:'))).toHaveLength(blobs.length)
    expect(lines).toContain(`${registry.host}/team/app:v1: 4 blobs, ${(blobsOf(image).reduce((n, b) => n + b.size, 0) / MiB).toFixed(1)} MiB to preheat`)
    expect(lines.at(-1)).toMatch(new RegExp(`^preheated 2 of 2 images: ${blobs.length} blobs, .+ in .+ \\(.+ MB/s\\)$`))
    expect((await seed.metric('pollen_seed_upstream_bytes_total')) - upstreamBefore).toBeGreaterThanOrEqual(bytes)

    const audit = await readFile(join(seed.dataDir, 'admission', 'audit.log'), 'utf8')
    expect(audit).toContain('"subject":"pollen-seed preheat"')
    expect(audit).not.toMatch(/eyJ[A-Za-z0-9_-]{4,}\./)
  })

  it('exits 1 naming a missing image, and still preheats the others', async () => {
    const run = await seedCli(['preheat', '--data', seed.dataDir, '--seed', seed.url, `${registry.host}/team/missing:v1`, `${registry.host}/team/app:v1`])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`pollen-seed: preheat failed for ${registry.host}/team/missing:v1: manifest ${registry.host}/team/missing:v1: HTTP 404`)
    expect(run.stdout).toContain(`${registry.host}/team/app:v1: preheated 4 blobs`)
    expect(run.stdout.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`^preheated 1 of 2 images: .*; failed: ${registry.host.replace(/\./g, '\\.')}/team/missing:v1$`))
  })

  it('exits 2 for bad arguments and 1 when the seed cannot be reached', async () => {
    const bad = await seedCli(['preheat', '--data', seed.dataDir, 'Not/A/Valid:Image:'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/^pollen-seed: .*is not an image reference/)
    const down = await seedCli(['preheat', '--data', seed.dataDir, '--seed', 'http://127.0.0.1:9', `${registry.host}/team/app:v1`])
    expect(down.code).toBe(1)
    expect(down.stderr).toContain('cannot reach the seed at http://127.0.0.1:9')
  })

  it('leaves every blob in the seed cache: served with the upstream stopped', async () => {
    await registry.stop()
    const token = await seed.clientToken()
    for (const blob of [...blobsOf(image), ...index.children.flatMap((c) => blobsOf(c.image))]) {
      const repo = blobsOf(image).includes(blob) ? 'team/app' : 'team/multi'
      const res = await fetch(`${seed.url}/v2/${repo}/blobs/${blob.digest}?ns=${registry.host}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) })
      expect(res.status, blob.digest).toBe(200)
      expect(Buffer.from(await res.arrayBuffer()).byteLength).toBe(blob.size)
    }
  })
})
