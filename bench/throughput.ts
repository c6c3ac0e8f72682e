/**
 * Serving throughput of a 1 GiB blob over loopback HTTP, every figure measured in this run:
 *   - docker-registry serving it from its own disk (the baseline),
 *   - the seed serving it from its cache,
 *   - an agent cache hit,
 *   - a cold pull through agent → seed → upstream (one run; it fills both caches).
 * The client is curl writing to /dev/null, so the server is what is measured; each server's
 * bytes are also checked once against the digest. Prints MB/s (10^6 B/s), server CPU seconds
 * and server peak RSS, the median of RUNS downloads, and each figure's ratio to the baseline.
 *
 *   npm run bench            (SIZE_MIB=1024 RUNS=3 by default)
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { request } from 'undici'
import { makeBlobFile, pushBlob } from '../test/helpers/oci-image.js'
import { startAgentProcess, startSeedProcess } from '../test/helpers/pollen-process.js'
import { startRegistry } from '../test/helpers/registry.js'
import { cpuSeconds, peakRss, resetPeakRss } from './proc-stats.js'

const run = promisify(execFile)
const SIZE = Number(process.env.SIZE_MIB ?? 1024) * 1024 * 1024
const RUNS = Number(process.env.RUNS ?? 3)

interface Sample {
  mbps: number
  cpu: number
  rss: number
}

/** Clients of the seed present an admission token, by origin. */
const tokens = new Map<string, string>()
const authHeader = (url: string): Record<string, string> => {
  const token = tokens.get(new URL(url).origin)
  return token === undefined ? {} : { authorization: `Bearer ${token}` }
}

async function curl(url: string): Promise<number> {
  const headers = Object.entries(authHeader(url)).flatMap(([k, v]) => ['-H', `${k}: ${v}`])
  const { stdout } = await run('curl', ['-sS', '--fail', '--max-time', '600', ...headers, '-o', '/dev/null', '-w', '%{size_download} %{speed_download}', url])
  const [bytes, speed] = stdout.trim().split(' ').map(Number)
  if (bytes !== SIZE) throw new Error(`${url}: got ${bytes} bytes, expected ${SIZE}`)
  return speed! / 1e6
}

async function verify(url: string, expected: string): Promise<void> {
  const res = await request(url, { headers: authHeader(url), signal: AbortSignal.timeout(600_000) })
  const hash = createHash('sha256')
  for await (const chunk of res.body) hash.update(chunk as Buffer)
  if (`sha256:${hash.digest('hex')}` !== expected) throw new Error(`${url}: wrong bytes`)
}

async function measure(url: string, pid: number, runs = RUNS): Promise<Sample> {
  const samples: Sample[] = []
  for (let i = 0; i < runs; i++) {
    await resetPeakRss(pid)
    const cpu0 = await cpuSeconds(pid)
    const mbps = await curl(url)
    samples.push({ mbps, cpu: (await cpuSeconds(pid)) - cpu0, rss: await peakRss(pid) })
  }
  samples.sort((a, b) => a.mbps - b.mbps)
  return samples[Math.floor(samples.length / 2)]!
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'pollen-bench-'))
  const stops: Array<() => Promise<void>> = []
  try {
    const registry = await startRegistry({})
    stops.unshift(() => registry.stop())
    const seed = await startSeedProcess(['--data', join(work, 'seed'), '--upstream', `${registry.host}=${registry.url}`, '--default-ns', registry.host])
    stops.unshift(() => seed.stop())
    tokens.set(new URL(seed.url).origin, await seed.clientToken())
    const agent = await startAgentProcess(['--data', join(work, 'agent'), '--seed', seed.url, '--default-ns', registry.host, '--cache-size', `${4 * SIZE}`, ...(await seed.enrollArgs())])
    stops.unshift(() => agent.stop())
    process.stdout.write(`generating and pushing a ${SIZE / 2 ** 20} MiB blob…\n`)
    const blob = await makeBlobFile(work, SIZE, 'bench')
    await pushBlob(registry.url, 'bench/blob', blob)
    const path = `/v2/bench/blob/blobs/${blob.digest}`

    const cold = await measure(`${agent.url}${path}`, agent.child.pid!, 1)
    const baseline = await measure(`${registry.url}${path}`, registry.pid)
    const seedHit = await measure(`${seed.url}${path}`, seed.child.pid!)
    const agentHit = await measure(`${agent.url}${path}`, agent.child.pid!)
    for (const base of [registry.url, seed.url, agent.url]) await verify(`${base}${path}`, blob.digest)

    const rows: Array<[string, Sample, number]> = [
      ['docker-registry from its disk (baseline)', baseline, RUNS],
      ['pollen-seed from its cache', seedHit, RUNS],
      ['pollen-agent cache hit', agentHit, RUNS],
      ['cold: agent → seed → docker-registry (agent figures)', cold, 1],
    ]
    process.stdout.write(`\n${SIZE / 2 ** 20} MiB blob over loopback HTTP; client: curl to /dev/null; median of the runs shown\n\n`)
    process.stdout.write('| path | runs | MB/s | server CPU s | server peak RSS MiB | MB/s vs baseline | CPU vs baseline |\n|---|---|---|---|---|---|---|\n')
    for (const [name, s, runs] of rows) {
      process.stdout.write(
        `| ${name} | ${runs} | ${s.mbps.toFixed(0)} | ${s.cpu.toFixed(2)} | ${(s.rss / 2 ** 20).toFixed(0)} | ${(s.mbps / baseline.mbps).toFixed(2)}× | ${(s.cpu / Math.max(baseline.cpu, 0.01)).toFixed(1)}× |\n`,
      )
    }
    process.stdout.write('\nEvery server\'s bytes were checked against the blob digest once after the timed runs.\n')
  } finally {
    for (const stop of stops) await stop().catch(() => {})
    await rm(work, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
