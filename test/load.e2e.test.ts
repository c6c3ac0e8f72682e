import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { Pool } from 'undici'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildImage, makeBlobFile, pushBlob, pushImage, type BlobFile, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, type AgentProcess } from './helpers/pollen-process.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'

// Load on one standalone agent (docker-registry behind it):
// (a) CLIENTS concurrent GETs of one cold 64 MiB blob: every body complete with the right sha256,
//     one fill and one blob's worth of upstream bytes, the agent's RSS bounded (sampled from /proc);
// (b) HEAD_RATE manifest HEADs per second for HEAD_SECONDS, open loop (sent on schedule whatever
//     the answers do): no errors; latency and achieved rate are printed, not asserted.

const MiB = 1024 * 1024
const CLIENTS = Number(process.env.LOAD_CLIENTS ?? 500)
const BLOB_BYTES = 64 * MiB
/** Generous: the fill's temp file and 500 readers of it must not hold anything like 500 blob copies. */
const RSS_LIMIT_BYTES = 512 * MiB
const HEAD_RATE = Number(process.env.LOAD_HEAD_RATE ?? 1_000)
const HEAD_SECONDS = Number(process.env.LOAD_HEAD_SECONDS ?? 30)
const REPO = 'load/app'

/** VmRSS of `pid` in bytes, or undefined once the process is gone. */
async function rssOf(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined)
  const kib = status === undefined ? undefined : /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1]
  return kib === undefined ? undefined : Number(kib) * 1024
}

/**
 * Samples a process's VmRSS every `everyMs` on a worker thread (so that a test busy hashing
 * bodies does not starve the sampling) until stopped; `peak` is the largest sample.
 */
function sampleRss(pid: number, everyMs = 50): { stop(): Promise<{ peak: number; samples: number }> } {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads')
     const { readFileSync } = require('node:fs')
     let peak = 0, samples = 0
     const timer = setInterval(() => {
       try {
         const m = /^VmRSS:\\s+(\\d+)\\s+kB$/m.exec(readFileSync('/proc/' + workerData.pid + '/status', 'utf8'))
         if (m) { peak = Math.max(peak, Number(m[1]) * 1024); samples++ }
       } catch {}
     }, workerData.everyMs)
     parentPort.on('message', () => { clearInterval(timer); parentPort.postMessage({ peak, samples }) })`,
    { eval: true, workerData: { pid, everyMs } },
  )
  return {
    async stop() {
      worker.postMessage('stop')
      const [result] = (await once(worker, 'message')) as [{ peak: number; samples: number }]
      await worker.terminate()
      return result
    },
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`

describeWithBinaries(['docker-registry'], 'one agent under load', () => {
  let work: string
  let registry: RunningRegistry
  let agent: AgentProcess
  let blob: BlobFile
  let image: BuiltImage
  const savedDockerConfig = process.env.DOCKER_CONFIG

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-load-'))
    await mkdir(join(work, 'docker'))
    process.env.DOCKER_CONFIG = join(work, 'docker')
    registry = await startRegistry({})
    blob = await makeBlobFile(work, BLOB_BYTES, 'load-64MiB')
    await pushBlob(registry.url, REPO, blob)
    image = await buildImage(join(work, 'img'), { layers: [4_096], seed: 'load-head' })
    await pushImage(registry.url, REPO, 'v1', image)
    agent = await startAgentProcess(['--data', join(work, 'agent'), '--default-ns', registry.host, '--cache-size', '2GiB'])
  })

  afterAll(async () => {
    await agent?.stop()
    if (savedDockerConfig === undefined) delete process.env.DOCKER_CONFIG
    else process.env.DOCKER_CONFIG = savedDockerConfig
    await registry?.stop()
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it(`serves ${CLIENTS} concurrent cold GETs of one 64 MiB blob with one fill, the right bytes and bounded memory`, { timeout: 600_000 }, async () => {
    const pid = agent.child.pid!
    const rssBefore = (await rssOf(pid))!
    const fillsBefore = await agent.metric('pollen_agent_fills_total')
    const remoteBefore = await agent.metric('pollen_agent_remote_bytes_total')
    const pool = new Pool(agent.url, { connections: CLIENTS, pipelining: 1, headersTimeout: 300_000, bodyTimeout: 300_000, connectTimeout: 60_000 })
    const sampler = sampleRss(pid)
    const started = performance.now()
    const errors: string[] = []
    let complete = 0
    try {
      await Promise.all(
        Array.from({ length: CLIENTS }, async (_, i) => {
          try {
            const res = await pool.request({ path: `/v2/${REPO}/blobs/${blob.digest}`, method: 'GET', signal: AbortSignal.timeout(600_000) })
            if (res.statusCode !== 200) {
              errors.push(`client ${i}: HTTP ${res.statusCode} ${(await res.body.text()).slice(0, 200)}`)
              return
            }
            const hash = createHash('sha256')
            let n = 0
            for await (const chunk of res.body) {
              hash.update(chunk as Buffer)
              n += (chunk as Buffer).byteLength
            }
            const digest = `sha256:${hash.digest('hex')}`
            if (n !== BLOB_BYTES || digest !== blob.digest) errors.push(`client ${i}: ${n} bytes, ${digest}`)
            else complete++
          } catch (err) {
            errors.push(`client ${i}: ${(err as Error).message}`)
          }
        }),
      )
    } finally {
      await pool.destroy()
    }
    const seconds = (performance.now() - started) / 1000
    const { peak, samples } = await sampler.stop()
    const fills = (await agent.metric('pollen_agent_fills_total')) - fillsBefore
    const committed = await agent.metric('pollen_agent_fills_total', { outcome: 'committed' })
    const remoteBytes = (await agent.metric('pollen_agent_remote_bytes_total')) - remoteBefore
    const servedFromFill = await agent.metric('pollen_agent_blob_bytes_total', { source: 'upstream' })
    const servedFromCache = await agent.metric('pollen_agent_blob_bytes_total', { source: 'local' })
    console.log(
      `load (a): ${CLIENTS} concurrent GETs of a cold 64 MiB blob: ${complete} complete and verified, ${errors.length} errors in ${seconds.toFixed(1)} s ` +
        `(${mib((complete * BLOB_BYTES) / seconds)}/s served); fills ${fills} (committed ${committed}), upstream bytes ${remoteBytes} (one blob is ${BLOB_BYTES}); ` +
        `${Math.round(servedFromFill / BLOB_BYTES)} clients served while the fill ran, ${Math.round(servedFromCache / BLOB_BYTES)} from the committed blob; ` +
        `agent RSS before ${mib(rssBefore)}, peak ${mib(peak)} over ${samples} samples (limit asserted: ${mib(RSS_LIMIT_BYTES)})`,
    )
    if (errors.length > 0) console.log(`load (a): first errors:\n${errors.slice(0, 10).join('\n')}`)
    expect(errors.slice(0, 10)).toEqual([])
    expect(complete).toBe(CLIENTS)
    expect(fills).toBe(1)
    expect(committed).toBe(1)
    expect(remoteBytes).toBe(BLOB_BYTES)
    expect(peak, `agent peak RSS ${mib(peak)}`).toBeLessThan(RSS_LIMIT_BYTES)
    expect(agent.child.exitCode).toBeNull()
  })

  it(`answers ${HEAD_RATE} manifest HEADs per second for ${HEAD_SECONDS} s, sent open-loop, without an error`, { timeout: 300_000 }, async () => {
    const path = `/v2/${REPO}/manifests/v1`
    const pool = new Pool(agent.url, { connections: 512, pipelining: 1, headersTimeout: 60_000, bodyTimeout: 60_000 })
    const warm = await pool.request({ path, method: 'GET', headers: { accept: image.mediaType } })
    expect(warm.statusCode).toBe(200)
    await warm.body.dump()
    const total = HEAD_RATE * HEAD_SECONDS
    const latencies: number[] = []
    /** From the moment a request was due, so that a client running late shows up too. */
    const lateLatencies: number[] = []
    const errors: string[] = []
    const inflight: Array<Promise<void>> = []
    const head = async (due: number): Promise<void> => {
      const sent = performance.now()
      try {
        const res = await pool.request({ path, method: 'HEAD', headers: { accept: image.mediaType }, signal: AbortSignal.timeout(60_000) })
        await res.body.dump()
        const now = performance.now()
        if (res.statusCode !== 200 || res.headers['docker-content-digest'] !== image.manifestDigest) errors.push(`HTTP ${res.statusCode} ${String(res.headers['docker-content-digest'])}`)
        latencies.push(now - sent)
        lateLatencies.push(now - due)
      } catch (err) {
        errors.push((err as Error).message)
      }
    }
    const started = performance.now()
    let sentCount = 0
    let maxLagMs = 0
    // Every tick sends whatever is due by now: request i is due at started + i / rate.
    while (sentCount < total) {
      const now = performance.now()
      const due = Math.min(total, Math.floor(((now - started) * HEAD_RATE) / 1000) + 1)
      for (; sentCount < due; sentCount++) {
        const dueAt = started + (sentCount * 1000) / HEAD_RATE
        maxLagMs = Math.max(maxLagMs, now - dueAt)
        inflight.push(head(dueAt))
      }
      await new Promise((r) => setTimeout(r, 2))
    }
    const sendSeconds = (performance.now() - started) / 1000
    await Promise.all(inflight)
    const seconds = (performance.now() - started) / 1000
    await pool.close()
    latencies.sort((a, b) => a - b)
    lateLatencies.sort((a, b) => a - b)
    const f = (ms: number) => `${ms.toFixed(1)} ms`
    console.log(
      `load (b): ${total} manifest HEADs scheduled at ${HEAD_RATE}/s: ${latencies.length} answered, ${errors.length} errors; sent in ${sendSeconds.toFixed(1)} s ` +
        `(${(total / sendSeconds).toFixed(0)}/s), all answered after ${seconds.toFixed(1)} s (achieved ${(latencies.length / seconds).toFixed(0)}/s); ` +
        `latency p50 ${f(percentile(latencies, 50))}, p99 ${f(percentile(latencies, 99))}, max ${f(latencies.at(-1) ?? NaN)}; ` +
        `from the due time (includes client lag): p50 ${f(percentile(lateLatencies, 50))}, p99 ${f(percentile(lateLatencies, 99))}, max ${f(lateLatencies.at(-1) ?? NaN)}; ` +
        `client sent up to ${f(maxLagMs)} late`,
    )
    if (errors.length > 0) console.log(`load (b): first errors:\n${errors.slice(0, 10).join('\n')}`)
    expect(errors.slice(0, 10)).toEqual([])
    expect(latencies.length).toBe(total)
  })
})
