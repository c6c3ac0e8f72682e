/**
 * Throughput on one machine, every figure from this one run, with its limit and the
 * docker-registry baseline beside it (MB = 10^6 bytes; a 1 GiB blob over loopback):
 *   limits    raw TCP; sha256 alone; HTTP (undici) + sha256 from a minimal node server;
 *             an unverified libp2p stream between two createPollenNode nodes
 *   cold      agent → seed → docker-registry (fills both caches; agent figures)
 *   http      docker-registry from its disk (baseline), seed cache hit, agent cache hit
 *   concurrent agent cache hit to 4 curls at once (agent peak RSS)
 *   p2p       agent B fetching from agent A over libp2p, verified and cached, curl reading from B
 * Prints a markdown table and writes bench/results/throughput.json (shape: report.ts).
 *
 *   npm run bench:throughput     SIZE_MIB=1024 RUNS=3 by default
 *   PHASES=http,p2p              only some phases (the others' rows are left out)
 *   PROFILE=1                    CPU profiles of the agents during the cache-hit and p2p rows,
 *                                into bench/results/profiles/ (summarize with profile-summary.ts)
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeBlobFile, pushBlob } from '../../test/helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess } from '../../test/helpers/pollen-process.js'
import { startRegistry } from '../../test/helpers/registry.js'
import { cpuSeconds, peakRss, resetPeakRss } from '../proc-stats.js'
import { httpSha256, libp2pUnverified, rawTcp, sha256Alone } from './limits.js'
import { curl, measureServer, type Sample } from './measure.js'
import { markdownTable, resolveRows, writeJson, type RowSpec } from './report.js'
import { MISS_NOTES, RUN_NOTES } from './notes.js'

const SIZE = Number(process.env.SIZE_MIB ?? 1024) * 1024 * 1024
const RUNS = Number(process.env.RUNS ?? 3)
const PHASES = new Set((process.env.PHASES ?? 'limits,cold,http,concurrent,p2p').split(','))
const RESULTS = fileURLToPath(new URL('../results/', import.meta.url))
const PROFILES = join(RESULTS, 'profiles')

const PRELOAD = fileURLToPath(new URL('./cpu-profile-preload.mjs', import.meta.url))

/** Starts an agent; with PROFILE set it runs with the profiling preload (see cpu-profile-preload.mjs). */
async function agent(args: string[]): Promise<AgentProcess> {
  const saved = { ...process.env }
  if (process.env.PROFILE !== undefined) {
    await mkdir(PROFILES, { recursive: true })
    process.env.NODE_OPTIONS = `${saved.NODE_OPTIONS ?? ''} --import ${PRELOAD}`.trim()
    process.env.POLLEN_CPU_PROFILE_DIR = PROFILES
  }
  try {
    return await startAgentProcess(args)
  } finally {
    process.env.NODE_OPTIONS = saved.NODE_OPTIONS
    if (saved.NODE_OPTIONS === undefined) delete process.env.NODE_OPTIONS
    if (saved.POLLEN_CPU_PROFILE_DIR === undefined) delete process.env.POLLEN_CPU_PROFILE_DIR
  }
}

/** With PROFILE set, profiles the agents `pids` while `body` runs, into PROFILES/<label>-<pid>-<n>.cpuprofile. */
async function profiled<T>(label: string, pids: number[], body: () => Promise<T>): Promise<T> {
  if (process.env.PROFILE === undefined) return body()
  await writeFile(join(PROFILES, 'label'), label)
  for (const pid of pids) process.kill(pid, 'SIGUSR2')
  await new Promise((r) => setTimeout(r, 200))
  try {
    return await body()
  } finally {
    for (const pid of pids) process.kill(pid, 'SIGUSR2')
    await new Promise((r) => setTimeout(r, 1000))
  }
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'pollen-bench-'))
  const stops: Array<() => Promise<void>> = []
  const rows: RowSpec[] = []
  const log = (line: string): void => void process.stdout.write(`${line}\n`)
  try {
    const registry = await startRegistry({})
    stops.unshift(() => registry.stop())
    const seed = await startSeedProcess(['--data', join(work, 'seed'), '--upstream', `${registry.host}=${registry.url}`, '--default-ns', registry.host])
    stops.unshift(() => seed.stop())
    const seedAuth = { authorization: `Bearer ${await seed.clientToken()}` }
    const agentArgs = async (name: string): Promise<string[]> => ['--data', join(work, name), '--seed', seed.url, '--default-ns', registry.host, '--cache-size', `${4 * SIZE}`, ...(await seed.enrollArgs())]
    const a = await agent(await agentArgs('a'))
    stops.unshift(() => a.stop())
    log(`generating and pushing a ${SIZE / 2 ** 20} MiB blob…`)
    const blob = await makeBlobFile(work, SIZE, 'bench')
    await pushBlob(registry.url, 'bench/blob', blob)
    const path = `/v2/bench/blob/blobs/${blob.digest}`

    if (PHASES.has('limits')) {
      log('limits: sha256, raw TCP, HTTP + sha256, unverified libp2p stream…')
      rows.push({ name: 'raw TCP', kind: 'limit', sample: await rawTcp(SIZE), measured: 'receiver' })
      rows.push({ name: 'sha256 alone', kind: 'limit', sample: await sha256Alone(SIZE), measured: 'hasher' })
      rows.push({ name: 'HTTP (undici) + sha256', kind: 'limit', sample: await httpSha256(blob.path, SIZE), measured: 'client', limit: 'raw TCP' })
      rows.push({ name: 'libp2p stream, unverified', kind: 'limit', sample: await libp2pUnverified(blob.path, SIZE), measured: 'receiver', limit: 'raw TCP' })
    }
    if (PHASES.has('cold')) {
      log('cold pull through agent → seed → docker-registry…')
      rows.push({ name: 'cold: agent → seed → docker-registry', kind: 'pollen', sample: await measureServer(`${a.url}${path}`, a.child.pid!, SIZE), measured: 'agent', limit: 'HTTP (undici) + sha256' })
    } else {
      await curl(`${a.url}${path}`, SIZE)
    }
    if (PHASES.has('http')) {
      log('cache hits: docker-registry, seed, agent…')
      rows.push({ name: 'docker-registry from its disk', kind: 'baseline', sample: await measureServer(`${registry.url}${path}`, registry.pid, SIZE, { runs: RUNS }), measured: 'registry', limit: 'raw TCP' })
      rows.push({ name: 'seed cache hit', kind: 'pollen', sample: await measureServer(`${seed.url}${path}`, seed.child.pid!, SIZE, { runs: RUNS, headers: seedAuth }), measured: 'seed', limit: 'raw TCP' })
      rows.push({
        name: 'agent cache hit', kind: 'pollen', sample: await profiled('cache-hit', [a.child.pid!], () => measureServer(`${a.url}${path}`, a.child.pid!, SIZE, { runs: RUNS })), measured: 'agent', limit: 'raw TCP',
        target: { text: '≥ 1.0× docker-registry', metric: 'ratioToBaseline', op: '>=', value: 1.0 }, missNote: MISS_NOTES.cacheHit,
      })
    }
    if (PHASES.has('concurrent')) {
      log('4 concurrent cache-hit transfers…')
      rows.push({
        name: 'agent cache hit, 4 clients at once', kind: 'pollen', sample: await measureServer(`${a.url}${path}`, a.child.pid!, SIZE, { clients: 4 }), measured: 'agent', limit: 'raw TCP',
        target: { text: 'agent RSS ≤ 250 MiB', metric: 'peakRssMiB', op: '<=', value: 250 }, missNote: MISS_NOTES.concurrentRss,
      })
    }
    if (PHASES.has('p2p')) {
      log('agent B fetching from agent A over libp2p…')
      rows.push({
        name: 'peer fetch over libp2p, verified', kind: 'pollen', sample: await peerFetch(a, await agent(await agentArgs('b')), path, stops), measured: 'receiving agent', limit: 'libp2p stream, unverified',
        target: { text: '≥ 85% of unverified libp2p', metric: 'ratioToLimit', op: '>=', value: 0.85 }, missNote: MISS_NOTES.peerFetch,
      })
    }
    // A row whose limit was not measured (PHASES) gets no ratio to it.
    const resolved = resolveRows(rows)
    log(`\n${SIZE / 2 ** 20} MiB blob, one machine (loopback), this run; curl to /dev/null is the HTTP client\n`)
    process.stdout.write(markdownTable(resolved))
    const notes = RUN_NOTES
    for (const n of notes) log(`\n${n}`)
    await writeJson(join(RESULTS, 'throughput.json'), { sizeMiB: SIZE / 2 ** 20, runs: RUNS }, resolved, notes)
    log(`\nwrote ${join(RESULTS, 'throughput.json')}`)
  } finally {
    for (const stop of stops) await stop().catch(() => {})
    await rm(work, { recursive: true, force: true })
  }
}

/** B pulls the blob from A (which holds it) while curl reads it from B; B's CPU and peak RSS. Throws unless the bytes came from the peer. */
async function peerFetch(a: AgentProcess, b: AgentProcess, path: string, stops: Array<() => Promise<void>>): Promise<Sample> {
  stops.unshift(() => b.stop())
  // Let A's provider record reach the DHT.
  await new Promise((r) => setTimeout(r, 1500))
  const pid = b.child.pid!
  await resetPeakRss(pid)
  const cpu0 = await cpuSeconds(pid)
  const aCpu0 = await cpuSeconds(a.child.pid!)
  const mbps = await profiled('peer-fetch', [a.child.pid!, b.child.pid!], () => curl(`${b.url}${path}`, SIZE))
  const sample = { mbps, cpu: (await cpuSeconds(pid)) - cpu0, rssMiB: (await peakRss(pid)) / 2 ** 20 }
  const fromPeer = await b.metric('pollen_agent_blob_bytes_total', { source: 'peer' })
  if (fromPeer < SIZE) throw new Error(`agent B got only ${fromPeer} bytes from its peer`)
  process.stdout.write(`  (sending agent A used ${((await cpuSeconds(a.child.pid!)) - aCpu0).toFixed(2)} CPU s)\n`)
  return sample
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
