/**
 * Throughput of the seed serving a cached 1 GiB blob, beside docker-registry serving the
 * same blob from its own disk, measured in the same run. Prints MB/s (10^6 bytes/s),
 * server CPU seconds and server peak RSS for each, median of RUNS downloads.
 *
 *   npm run bench             (SIZE_MIB=1024 RUNS=3 by default)
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { makeBlobFile, pushBlob } from '../test/helpers/oci-image.js'
import { startRegistry } from '../test/helpers/registry.js'
import { startSeedProcess } from '../test/helpers/pollen-process.js'
import { cpuSeconds, peakRss, resetPeakRss } from './proc-stats.js'

const SIZE = Number(process.env.SIZE_MIB ?? 1024) * 1024 * 1024
const RUNS = Number(process.env.RUNS ?? 3)
const HASH = process.env.HASH !== '0'

interface Sample {
  mbps: number
  cpu: number
  rss: number
}

async function download(url: string, expected: string): Promise<number> {
  const started = performance.now()
  const res = await request(url, { signal: AbortSignal.timeout(600_000) })
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}`)
  const hash = HASH ? createHash('sha256') : undefined
  let bytes = 0
  for await (const chunk of res.body) {
    bytes += (chunk as Buffer).byteLength
    hash?.update(chunk as Buffer)
  }
  const seconds = (performance.now() - started) / 1000
  if (bytes !== SIZE) throw new Error(`${url}: got ${bytes} bytes`)
  if (hash !== undefined && `sha256:${hash.digest('hex')}` !== expected) throw new Error(`${url}: wrong bytes`)
  return SIZE / 1e6 / seconds
}

async function measure(url: string, pid: number, expected: string): Promise<Sample> {
  const samples: Sample[] = []
  for (let i = 0; i < RUNS; i++) {
    await resetPeakRss(pid)
    const cpu0 = await cpuSeconds(pid)
    const mbps = await download(url, expected)
    samples.push({ mbps, cpu: (await cpuSeconds(pid)) - cpu0, rss: await peakRss(pid) })
  }
  samples.sort((a, b) => a.mbps - b.mbps)
  return samples[Math.floor(samples.length / 2)]!
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'pollen-bench-'))
  const registry = await startRegistry({})
  const seed = await startSeedProcess(['--data', join(work, 'seed'), '--upstream', `${registry.host}=${registry.url}`, '--default-ns', registry.host, '--log-level', 'info'])
  try {
    process.stdout.write(`generating and pushing a ${SIZE / 2 ** 20} MiB blob…\n`)
    const blob = await makeBlobFile(work, SIZE, 'bench')
    await pushBlob(registry.url, 'bench/blob', blob)
    const registryPid = registry.pid
    const seedPid = seed.child.pid!
    const path = `/v2/bench/blob/blobs/${blob.digest}`

    const coldStart = performance.now()
    const cold = await download(`${seed.url}${path}`, blob.digest)
    process.stdout.write(`cold pull through the seed (fills its cache): ${cold.toFixed(0)} MB/s in ${((performance.now() - coldStart) / 1000).toFixed(1)} s\n`)

    const baseline = await measure(`${registry.url}${path}`, registryPid, blob.digest)
    const pollen = await measure(`${seed.url}${path}`, seedPid, blob.digest)
    const rows: Array<[string, Sample]> = [
      ['docker-registry, from its disk (baseline)', baseline],
      ['pollen-seed, from its cache', pollen],
    ]
    process.stdout.write(`\n${SIZE / 2 ** 20} MiB blob over loopback HTTP, median of ${RUNS}; client ${HASH ? 'hashes' : 'discards'} the bytes\n`)
    process.stdout.write(`| server | MB/s | server CPU s | server peak RSS MiB | vs baseline |\n|---|---|---|---|---|\n`)
    for (const [name, s] of rows) {
      process.stdout.write(`| ${name} | ${s.mbps.toFixed(0)} | ${s.cpu.toFixed(2)} | ${(s.rss / 2 ** 20).toFixed(0)} | ${(s.mbps / baseline.mbps).toFixed(2)}× |\n`)
    }
  } finally {
    await seed.stop()
    await registry.stop()
    await rm(work, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
