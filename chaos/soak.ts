/**
 * The soak itself, shared by `npm run chaos` (chaos/main.ts) and the CI version
 * (test/soak.e2e.test.ts): starts a registry, a seed and N agents, rolls out new image versions
 * until the duration is up, SIGKILLs and restarts an agent now and then, samples every
 * process's RSS and fds, and stops everything. The verdict is report.ts's.
 */
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatDuration, formatSize } from '../protocol/human-units.js'
import { counterDelta, readAgentCounters, type AgentCounters } from './agent-counters.js'
import {
  FAULT_PROBABILITY,
  KILL_DELAY_MAX_MS,
  MAX_SAMPLE_INTERVAL_MS,
  MIN_SAMPLE_INTERVAL_MS,
  PAUSE_MAX_MS,
  SAMPLES_PER_RUN,
  SEED_CACHE_SIZE,
} from './constants.js'
import { Fleet, type AgentSlot, type LogTally } from './fleet.js'
import { MemoryLimits } from './memory-limit.js'
import { ImageSuite, type ImageVersion } from './images.js'
import { ProcSampler, type ProcSample } from './proc-sampler.js'
import { Puller, type PullCounters, type PullFailure } from './pull.js'
import { createRng, type Rng } from '../test/helpers/rng.js'

export interface SoakOptions {
  durationMs: number
  agents: number
  cacheSizeBytes: number
  rngSeed: number
  /** Chance per rollout of killing and restarting one agent (default FAULT_PROBABILITY). */
  faultProbability?: number
  /** Sampling period (default: duration / SAMPLES_PER_RUN, within MIN/MAX_SAMPLE_INTERVAL_MS). */
  sampleIntervalMs?: number
  /** Ends the soak early; it still stops everything and resolves with what it saw. */
  signal?: AbortSignal
  /** Progress lines (default: none). */
  log?: (line: string) => void
  /** Gets a synchronous kill-and-remove-everything function once processes exist, for exit handlers. */
  onStarted?: (killSync: () => void) => void
}

export interface SoakResult {
  options: { durationMs: number; agents: number; cacheSizeBytes: number; rngSeed: number; faultProbability: number; sampleIntervalMs: number }
  /** ISO time the rollouts started; sample times are milliseconds since then. */
  startedAt: string
  /** How long the rollouts actually ran. */
  ranMs: number
  interrupted: boolean
  rollouts: number
  /** Image versions pushed. */
  releases: number
  /** Rollouts in which every agent that pulled evicted at least once. */
  rolloutsEvictingEverywhere: number
  evictions: number
  /** Blob bytes the agents served, by where they came from. */
  bytesBySource: Record<string, number>
  kills: number
  /** Agents that did not come back after a SIGKILL. */
  restartFailures: string[]
  counters: PullCounters
  failures: PullFailure[]
  /** Seconds per image pull through an agent: median, 95th percentile, slowest. */
  pullSeconds: { count: number; p50: number; p95: number; max: number }
  /** By process name: `seed`, `agent 1`, … */
  samples: Record<string, ProcSample[]>
  /** Warn and error log lines by process and message. */
  logTallies: Record<string, LogTally>
  /** How each process was held to its manifest's memory limit, and how often the kernel killed one for outgrowing it (cgroups only). */
  memory: { how: string; limitBytes: Record<string, number>; oomKills: Record<string, number> }
}

/** Runs one soak; rejects only when the harness itself cannot run (registry or processes do not start). */
export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const log = options.log ?? ((): void => {})
  const signal = options.signal ?? new AbortController().signal
  const faultProbability = options.faultProbability ?? FAULT_PROBABILITY
  const sampleIntervalMs = options.sampleIntervalMs ?? Math.min(MAX_SAMPLE_INTERVAL_MS, Math.max(MIN_SAMPLE_INTERVAL_MS, Math.round(options.durationMs / SAMPLES_PER_RUN)))
  const rng = createRng(options.rngSeed)
  const work = await mkdtemp(join(tmpdir(), 'pollen-chaos-'))
  const limits = await MemoryLimits.create(String(process.pid))
  const fleet = new Fleet(work, options.cacheSizeBytes, limits)
  options.onStarted?.(() => {
    fleet.killSync()
    rmSync(work, { recursive: true, force: true })
  })
  let sampler: ProcSampler | undefined
  try {
    log(`starting a docker-registry, a seed (cache ${SEED_CACHE_SIZE}) and ${options.agents} agents (cache ${formatSize(options.cacheSizeBytes)} each) in ${work}`)
    log(`memory limits: ${limits.describe()}`)
    await fleet.start(options.agents)
    const startedAt = Date.now()
    sampler = new ProcSampler([fleet.seedWatch(), ...fleet.agents], startedAt)
    sampler.start(sampleIntervalMs)
    const suite = new ImageSuite(fleet.registry!.url, join(work, 'images'), `chaos-${options.rngSeed}`)
    const puller = new Puller(fleet.registry!.host, startedAt, signal)
    const state: LoopState = { rollouts: 0, releases: 0, rolloutsEvictingEverywhere: 0, evictions: 0, bytesBySource: {}, restartFailures: [] }
    log(`rolling out for ${formatDuration(options.durationMs)}: seed-rng ${options.rngSeed}, fault probability ${faultProbability}, sampling every ${formatDuration(sampleIntervalMs)}`)
    let lastProgress = startedAt
    while (Date.now() - startedAt < options.durationMs && !signal.aborted) {
      await rollout({ fleet, suite, puller, rng, signal, faultProbability, state, log })
      if (Date.now() - lastProgress >= 30_000) {
        lastProgress = Date.now()
        const c = puller.counters
        log(`${formatDuration(lastProgress - startedAt)}: ${state.rollouts} rollouts, ${c.requests} requests, ${c.failures} failed, ${formatSize(c.bytesVerified)} verified, ${fleet.agents.reduce((n, a) => n + a.kills, 0)} kills`)
      }
      await sleep(rng.next() * PAUSE_MAX_MS, signal)
    }
    const ranMs = Date.now() - startedAt
    sampler.stop()
    await fleet.stop()
    return {
      options: { durationMs: options.durationMs, agents: options.agents, cacheSizeBytes: options.cacheSizeBytes, rngSeed: options.rngSeed, faultProbability, sampleIntervalMs },
      startedAt: new Date(startedAt).toISOString(),
      ranMs,
      interrupted: signal.aborted,
      ...state,
      kills: fleet.agents.reduce((n, a) => n + a.kills, 0),
      counters: puller.counters,
      failures: puller.failures,
      pullSeconds: quantiles(puller.pullSeconds),
      samples: Object.fromEntries(sampler.samples),
      logTallies: { seed: fleet.seedLogTally, ...Object.fromEntries(fleet.agents.map((a) => [a.name, a.logTally])) },
      memory: await limits.summary(),
    }
  } finally {
    sampler?.stop()
    await fleet.stop()
    await limits.close()
    await rm(work, { recursive: true, force: true })
  }
}

interface LoopState {
  rollouts: number
  releases: number
  rolloutsEvictingEverywhere: number
  evictions: number
  bytesBySource: Record<string, number>
  restartFailures: string[]
}

interface RolloutContext {
  fleet: Fleet
  suite: ImageSuite
  puller: Puller
  rng: Rng
  signal: AbortSignal
  faultProbability: number
  state: LoopState
  log: (line: string) => void
}

/**
 * One rollout: releases new versions (every image the first time, then each with chance 1/2,
 * at least one), then a canary agent pulls every image's newest tag, then the other live
 * agents at once. With `faultProbability`, one agent (never the first, the witness) sits this rollout out and is SIGKILLed
 * at a random moment during it (peers may be fetching from it), then restarted.
 */
async function rollout(ctx: RolloutContext): Promise<void> {
  const { fleet, suite, puller, rng, signal, state } = ctx
  const first = state.rollouts === 0
  state.rollouts++
  const bump = suite.repos.map((_, i) => first || rng.next() < 0.5)
  if (!bump.includes(true)) bump[rng.int(bump.length)] = true
  for (const [i, yes] of bump.entries()) {
    if (!yes) continue
    await suite.release(i)
    state.releases++
  }
  const images = suite.current()
  const live = fleet.agents.filter((a) => a.up)
  // The first agent is never killed: it is the witness whose whole life the slopes judge.
  const victim = !first && live.length >= 3 && rng.next() < ctx.faultProbability ? rng.pick(live.filter((a) => a !== fleet.agents[0])) : undefined
  const pullers = live.filter((a) => a !== victim)
  if (pullers.length === 0) return
  const canary = rng.pick(pullers)
  const before = await Promise.all(pullers.map((a) => countersOf(a)))
  const killing = victim === undefined ? undefined : sleep(rng.next() * KILL_DELAY_MAX_MS, signal).then(() => (signal.aborted ? undefined : fleet.kill(victim)))
  await pullAll(puller, canary, images)
  await Promise.all(pullers.filter((a) => a !== canary).map((a) => pullAll(puller, a, images)))
  await killing
  const after = await Promise.all(pullers.map((a) => countersOf(a)))
  let everywhere = true
  for (const [i, b] of before.entries()) {
    const a = after[i]
    if (a === undefined || b === undefined) {
      everywhere = false
      continue
    }
    const d = counterDelta(b, a)
    if (d.evictions <= 0) everywhere = false
    state.evictions += Math.max(0, d.evictions)
    for (const [source, n] of Object.entries(d.bytesBySource)) state.bytesBySource[source] = (state.bytesBySource[source] ?? 0) + Math.max(0, n)
  }
  if (everywhere) state.rolloutsEvictingEverywhere++
  if (victim !== undefined && !signal.aborted) {
    try {
      await fleet.restart(victim)
    } catch (err) {
      state.restartFailures.push((err as Error).message)
      ctx.log(`FAULT: ${(err as Error).message.split('\n')[0]}`)
    }
  }
}

async function pullAll(puller: Puller, slot: AgentSlot, images: ImageVersion[]): Promise<void> {
  const process = slot.process
  const dispatcher = slot.dispatcher
  if (process === undefined || dispatcher === undefined) return
  for (const image of images) await puller.pull(slot.name, process.url, dispatcher, image)
}

/** The agent's counters, or undefined when it does not answer /metrics. */
async function countersOf(slot: AgentSlot): Promise<AgentCounters | undefined> {
  const opsUrl = slot.process?.opsUrl
  return opsUrl === undefined ? undefined : readAgentCounters(opsUrl).catch(() => undefined)
}

function quantiles(values: number[]): SoakResult['pullSeconds'] {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
  return { count: sorted.length, p50: at(0.5), p95: at(0.95), max: sorted.at(-1) ?? 0 }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
