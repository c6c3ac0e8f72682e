/**
 * Reliability: the agent's disk fills up. Its data dir lives on a small tmpfs; a ballast file
 * beside it leaves too little room for a layer, so the fill runs out of space mid-blob, and then
 * the disk is filled to the last byte. The client (containerd-like: the mirror first, the
 * registry as hosts.toml's fallback server) must get a clean answer and complete its pulls; the
 * store must stay consistent (no partial blob, no temp file, every blob hashes to its name, the
 * LevelDB index matches the files); once the ballast is gone, the agent fills again without a restart.
 */
import { execFile } from 'node:child_process'
import { open, mkdir, mkdtemp, rm, statfs } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildImage, pushImage, type BuiltImage } from './helpers/oci-image.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type SeedProcess } from './helpers/pollen-process.js'
import { seedArgsFor } from './helpers/pollen-stack.js'
import { recordResult, tally, verifiedPull, type PullOutcome } from './helpers/reliability.js'
import { startRegistry, type RunningRegistry } from './helpers/registry.js'
import { describeWithBinaries } from './helpers/requirements.js'
import { checkStore, type StoreCheck } from './helpers/store-check.js'

const run = promisify(execFile)
const MiB = 1024 * 1024
const DISK_MIB = 48
/** Room left for the second image, whose big layer needs more than this. */
const ROOM_MIB = 10

const imageBytes = (image: BuiltImage): number => image.config.size + image.layers.reduce((n, l) => n + l.size, 0)
const freeBytes = async (dir: string): Promise<number> => {
  const s = await statfs(dir)
  return s.bavail * s.bsize
}

/** Appends zeros to `path` until `bytes` more are written or the disk is full; returns the bytes written. */
async function ballast(path: string, bytes: number): Promise<number> {
  const file = await open(path, 'a')
  const chunk = Buffer.alloc(256 * 1024)
  let written = 0
  try {
    while (written < bytes) {
      const { bytesWritten } = await file.write(chunk, 0, Math.min(chunk.byteLength, bytes - written))
      written += bytesWritten
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  } finally {
    await file.close()
  }
  return written
}

/** Waits until the agent has no fill in progress (a fill the client gave up on may still be running out of space). */
async function fillsSettled(agent: AgentProcess): Promise<void> {
  for (let i = 0; i < 120 && (await agent.metric('pollen_agent_inflight_fills')) > 0; i++) await new Promise((r) => setTimeout(r, 500))
  expect(await agent.metric('pollen_agent_inflight_fills')).toBe(0)
  await new Promise((r) => setTimeout(r, 200)) // a failed fill unlinks its temp file as it settles
}

const consistent = (check: StoreCheck): void => {
  expect(check.tempFiles).toEqual([])
  expect(check.badFiles).toEqual([])
  expect(check.indexOnly).toEqual([])
  expect(check.filesOnly).toEqual([])
  expect(check.sizeMismatches).toEqual([])
}

describeWithBinaries(['docker-registry', 'mount', 'umount'], 'an agent whose disk fills up during a fill', () => {
  let work: string
  let disk: string
  let mounted = false
  let registry: RunningRegistry
  let seed: SeedProcess
  let agent: AgentProcess | undefined
  const outcomes: PullOutcome[] = []
  const contentDir = (): string => join(disk, 'agent', 'content')

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pollen-e2e-diskfull-'))
    disk = join(work, 'disk')
    await mkdir(disk)
    await run('mount', ['-t', 'tmpfs', '-o', `size=${DISK_MIB}m,mode=0700`, `pollen-diskfull-${process.pid}`, disk])
    mounted = true
    registry = await startRegistry({})
    seed = await startSeedProcess(seedArgsFor(registry, join(work, 'seed')))
    agent = await startAgentProcess(['--data', join(disk, 'agent'), '--seed', seed.url, '--default-ns', registry.host, '--cache-size', '1GiB', ...(await seed.enrollArgs())])
  }, 120_000)
  afterAll(async () => {
    await agent?.stop().catch(() => {})
    await seed?.stop().catch(() => {})
    await registry?.stop().catch(() => {})
    if (mounted) await run('umount', [disk]).catch(() => run('umount', ['-l', disk]))
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it('answers cleanly while the disk is full, keeps the store consistent, and fills again once space is freed', async () => {
    const small = await buildImage(join(work, 'img-small'), { layers: [2 * MiB, 2 * MiB], seed: 'disk-full/small' })
    const big = await buildImage(join(work, 'img-big'), { layers: [2 * MiB, 24 * MiB], seed: 'disk-full/big' })
    await pushImage(registry.url, 'disk/small', 'v1', small)
    await pushImage(registry.url, 'disk/big', 'v1', big)
    // The same blobs under another name: serving them records the repository in the index (a write while the disk is full).
    await pushImage(registry.url, 'disk/alias', 'v1', small)
    const viaMirror = (repo: string, fallback: boolean): Promise<PullOutcome> =>
      verifiedPull(agent!.url, repo, 'v1', registry.host, { deadlineMs: 60_000, ...(fallback ? { fallback: registry.url } : {}) })

    // 1. Room to spare: the small image is cached.
    outcomes.push(await viaMirror('disk/small', false))
    expect(outcomes.at(-1)!.ok).toBe(true)

    // 2. The disk fills up during the big layer's fill. Cached blobs keep being served meanwhile.
    const ballastPath = join(disk, 'ballast')
    await ballast(ballastPath, (await freeBytes(disk)) - ROOM_MIB * MiB)
    const during = await Promise.all([viaMirror('disk/big', true), viaMirror('disk/small', false)])
    outcomes.push(...during)
    await fillsSettled(agent!)
    const duringFill = await checkStore(contentDir(), { live: true })

    // 3. The disk is full to the last byte: cache hits still work, misses fall back cleanly.
    await ballast(ballastPath, DISK_MIB * MiB)
    const free = await freeBytes(disk)
    const full = await Promise.all([viaMirror('disk/big', true), viaMirror('disk/small', false), viaMirror('disk/alias', true)])
    outcomes.push(...full)
    await fillsSettled(agent!)
    const whileFull = await checkStore(contentDir(), { live: true })
    const fillsFailed = await agent!.metric('pollen_agent_fills_total', { outcome: 'failed' })

    // 4. Space freed: the agent fills the big image itself, no restart, no fallback.
    await rm(ballastPath)
    const recovered = await viaMirror('disk/big', false)
    outcomes.push(recovered, await viaMirror('disk/small', false))
    const status = await fetch(`${agent!.opsUrl}/readyz`, { signal: AbortSignal.timeout(5000) })
    await agent!.stop()
    const afterStop = await checkStore(contentDir())
    const { exitCode, signalCode } = agent!.child
    const agentWarnings = agent!.logs.filter((l) => Number(l.level) >= 40).map((l) => `${String(l.msg)}: ${String(l.err === undefined ? '' : JSON.stringify(l.err)).slice(0, 300)}`)
    agent = undefined

    const mirrorFailures = [...during, ...full].flatMap((o) => Object.entries(o.failures).filter(([k]) => !k.startsWith('fallback')).map(([k, v]) => `${k} ×${v}`))
    const result = tally('disk-full', outcomes, {
      diskMiB: DISK_MIB,
      freeWhileFullBytes: free,
      imageBytes: { small: imageBytes(small), big: imageBytes(big) },
      fillsFailedWhileFull: fillsFailed,
      mirrorAnswersWhileFull: mirrorFailures,
      recoveredWithoutFallback: recovered.ok && recovered.bytesFromFallback === 0,
      storeDuringFill: duringFill,
      storeWhileFull: whileFull,
      storeAfterStop: afterStop,
      agentExit: { exitCode, signalCode },
      agentWarnings,
    })
    await recordResult(result)
    console.log(`disk-full: the mirror's answers while full: ${mirrorFailures.join('; ') || 'none failed'}; fills failed ${fillsFailed}; store after: ${afterStop.files} blobs, ${afterStop.bytes} bytes`)

    expect(result.bytesCorrupted).toBe(0)
    expect(result.bytesLost).toBe(0)
    expect(result.pullsCompleted).toBe(result.pullsAttempted)
    expect(free).toBeLessThan(MiB)
    expect(fillsFailed).toBeGreaterThanOrEqual(1)
    // The mirror's failures were clean OCI answers (a 5xx with an OCI code), not cut-short bodies or resets.
    for (const failure of mirrorFailures) expect(failure).toMatch(/^(manifest|blob): HTTP 5\d\d [A-Z_]+ ×\d+$/)
    expect(recovered.ok).toBe(true)
    expect(recovered.bytesFromFallback).toBe(0)
    expect(status.status).toBe(200)
    expect(exitCode).toBe(0)
    for (const check of [duringFill, whileFull, afterStop]) consistent(check)
    // Everything pulled last is in the store: the small image and the big one.
    expect(afterStop.bytes).toBeGreaterThanOrEqual(imageBytes(small) + imageBytes(big))
  }, 240_000)
})
