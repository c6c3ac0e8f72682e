/**
 * Peer-to-peer throughput: agent B reads a 1 GiB blob from agent A over libp2p (TCP, Noise,
 * Yamux), verifying its sha256 as it goes and writing it to its cache, while curl reads it
 * from B. Printed beside, in the same run: sha256 alone over the same bytes in memory-sized
 * chunks from disk, and plain HTTP + sha256 (this process fetching the blob from agent A's
 * HTTP cache with undici and hashing it). MB/s is 10^6 bytes/s; CPU seconds and peak RSS are
 * per process.
 *
 *   npm run bench:p2p            (SIZE_MIB=1024 by default)
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
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
const mbps = (bytes: number, seconds: number): string => (bytes / 1e6 / seconds).toFixed(0)
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0)
const selfCpu = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'pollen-bench-p2p-'))
  const stops: Array<() => Promise<void>> = []
  try {
    const registry = await startRegistry({})
    stops.unshift(() => registry.stop())
    const seed = await startSeedProcess(['--data', join(work, 'seed'), '--upstream', `${registry.host}=${registry.url}`, '--default-ns', registry.host])
    stops.unshift(() => seed.stop())
    const a = await startAgentProcess(['--data', join(work, 'a'), '--seed', seed.url, '--default-ns', registry.host, '--cache-size', `${4 * SIZE}`, ...(await seed.enrollArgs())])
    stops.unshift(() => a.stop())
    const b = await startAgentProcess(['--data', join(work, 'b'), '--seed', seed.url, '--default-ns', registry.host, '--cache-size', `${4 * SIZE}`, ...(await seed.enrollArgs())])
    stops.unshift(() => b.stop())
    process.stdout.write(`generating and pushing a ${mib(SIZE)} MiB blob…\n`)
    const blob = await makeBlobFile(work, SIZE, 'p2p-bench')
    await pushBlob(registry.url, 'bench/p2p', blob)
    const path = `/v2/bench/p2p/blobs/${blob.digest}`
    await run('curl', ['-sS', '--fail', '-o', '/dev/null', `${a.url}${path}`])
    await new Promise((r) => setTimeout(r, 1500))

    // 1. sha256 alone, reading the blob file.
    let t = performance.now()
    let c = selfCpu()
    const hash = createHash('sha256')
    for await (const chunk of createReadStream(blob.path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer)
    if (`sha256:${hash.digest('hex')}` !== blob.digest) throw new Error('file hash mismatch')
    const shaRow = { mbps: mbps(SIZE, (performance.now() - t) / 1000), cpu: selfCpu() - c }

    // 2. plain HTTP + sha256: undici from agent A's cache, hashed here.
    t = performance.now()
    c = selfCpu()
    const res = await request(`${a.url}${path}`, { signal: AbortSignal.timeout(600_000) })
    const h2 = createHash('sha256')
    for await (const chunk of res.body) h2.update(chunk as Buffer)
    if (`sha256:${h2.digest('hex')}` !== blob.digest) throw new Error('http hash mismatch')
    const httpSeconds = (performance.now() - t) / 1000
    const httpRow = { mbps: mbps(SIZE, httpSeconds), cpu: selfCpu() - c }

    // 3. B pulls from A over libp2p (verified while streaming), curl reads from B.
    await resetPeakRss(a.child.pid!)
    await resetPeakRss(b.child.pid!)
    const a0 = await cpuSeconds(a.child.pid!)
    const b0 = await cpuSeconds(b.child.pid!)
    const seedBefore = await seed.metric('pollen_seed_served_bytes_total')
    t = performance.now()
    await run('curl', ['-sS', '--fail', '-o', '/dev/null', `${b.url}${path}`])
    const p2pSeconds = (performance.now() - t) / 1000
    const fromPeer = await b.metric('pollen_agent_blob_bytes_total', { source: 'peer' })
    const seedServed = (await seed.metric('pollen_seed_served_bytes_total')) - seedBefore
    const aCpu = (await cpuSeconds(a.child.pid!)) - a0
    const bCpu = (await cpuSeconds(b.child.pid!)) - b0

    process.stdout.write(`\n${mib(SIZE)} MiB blob on one machine (loopback), same run\n\n`)
    process.stdout.write('| path | MB/s | CPU s | peak RSS MiB |\n|---|---|---|---|\n')
    process.stdout.write(`| sha256 alone (node:crypto, reading the file) | ${shaRow.mbps} | ${shaRow.cpu.toFixed(2)} (this process) | – |\n`)
    process.stdout.write(`| HTTP (undici) + sha256, from agent A's cache | ${httpRow.mbps} | ${httpRow.cpu.toFixed(2)} (client) | – |\n`)
    process.stdout.write(`| libp2p A → B, verified and cached by B, served to curl | ${mbps(SIZE, p2pSeconds)} | A ${aCpu.toFixed(2)}, B ${bCpu.toFixed(2)} | A ${mib(await peakRss(a.child.pid!))}, B ${mib(await peakRss(b.child.pid!))} |\n`)
    process.stdout.write(`\nB received ${mib(fromPeer)} MiB from peers; the seed served ${mib(seedServed)} MiB meanwhile.\n`)
    process.stdout.write(`libp2p vs HTTP+sha256: ${(Number(mbps(SIZE, p2pSeconds)) / Number(httpRow.mbps)).toFixed(2)}×\n`)
  } finally {
    for (const stop of stops) await stop().catch(() => {})
    await rm(work, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
