/**
 * The processes a soak runs: a docker-registry (the upstream), a seed in front of it, and N
 * enrolled agents, each with its own data dir and fixed ports so that a killed agent comes
 * back at the same addresses with the same store and identity, as a rebooted node would.
 */
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Agent } from 'undici'
import { freePort } from '../test/helpers/free-port.js'
import { startAgentProcess, startSeedProcess, type AgentProcess, type PollenProcess, type SeedProcess } from '../test/helpers/pollen-process.js'
import { seedArgsFor } from '../test/helpers/pollen-stack.js'
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js'
import { parseSize } from '../protocol/units.js'
import { AGENT_MEMORY_LIMIT, SEED_CACHE_SIZE, SEED_MEMORY_LIMIT } from './constants.js'
import type { MemoryLimits } from './memory-limit.js'
import type { Watched } from './proc-sampler.js'
import { agentDispatcher } from './pull.js'

const RESTART_ATTEMPTS = 3
/** How long to wait at start for every agent to be connected to another agent besides the seed. */
const PEER_WAIT_MS = 15_000

/** Warning and error log lines of a process, by message, over all its incarnations. */
export type LogTally = Record<string, { level: number; count: number }>

export class AgentSlot implements Watched {
  process: AgentProcess | undefined
  dispatcher: Agent | undefined
  #incarnation = -1
  kills = 0
  readonly logTally: LogTally = {}

  constructor(
    readonly name: string,
    readonly dataDir: string,
    readonly listenPort: number,
    readonly p2pPort: number,
  ) {}

  get up(): boolean {
    return this.process !== undefined
  }

  pid(): number | undefined {
    return this.process?.child.pid
  }

  incarnation(): number {
    return this.#incarnation
  }

  opsUrl(): string | undefined {
    return this.process?.opsUrl
  }

  /** Called by the fleet when a new process took this slot. */
  started(process: AgentProcess): void {
    this.process = process
    this.dispatcher = agentDispatcher()
    this.#incarnation++
  }
}

export class Fleet {
  readonly agents: AgentSlot[] = []
  registry: RunningRegistry | undefined
  seed: SeedProcess | undefined
  readonly seedLogTally: LogTally = {}
  readonly #work: string
  readonly #cacheSizeBytes: number
  readonly #limits: MemoryLimits
  #stopping: Promise<void> | undefined

  /**
   * `work` is an existing scratch directory the fleet's data dirs go under (the caller removes
   * it); `limits` puts each process under its manifest's memory limit (the caller closes it).
   */
  constructor(work: string, cacheSizeBytes: number, limits: MemoryLimits) {
    this.#work = work
    this.#cacheSizeBytes = cacheSizeBytes
    this.#limits = limits
  }

  /** Starts the registry, the seed and `agents` agents; throws (leaving what started for stop()) on failure. */
  async start(agents: number): Promise<void> {
    this.registry = await startRegistry({ logLevel: 'warn' })
    const seedArgs = seedArgsFor(this.registry, join(this.#work, 'seed'), undefined, ['--cache-size', SEED_CACHE_SIZE])
    this.seed = await startSeedProcess(seedArgs, await this.#limits.spawnOptions('seed', parseSize(SEED_MEMORY_LIMIT)))
    for (let i = 0; i < agents; i++) {
      const slot = new AgentSlot(`agent ${i + 1}`, join(this.#work, `agent-${i + 1}`), await freePort(), await freePort())
      this.agents.push(slot)
      slot.started(await this.#startAgent(slot))
    }
    await this.#waitForPeers()
  }

  /** The seed as a watched process. */
  seedWatch(): Watched {
    return { name: 'seed', pid: () => this.seed?.child.pid, incarnation: () => 0, opsUrl: () => this.seed?.opsUrl }
  }

  /** SIGKILLs the agent (a crash: no shutdown, temp files and all left behind). */
  async kill(slot: AgentSlot): Promise<void> {
    const process = slot.process
    if (process === undefined) return
    slot.process = undefined
    slot.kills++
    await process.kill()
    tally(slot.logTally, process)
    await slot.dispatcher?.destroy().catch(() => undefined)
    slot.dispatcher = undefined
  }

  /** Starts the agent again on its data dir and ports; throws when RESTART_ATTEMPTS starts all failed. */
  async restart(slot: AgentSlot): Promise<void> {
    let last: unknown
    for (let attempt = 0; attempt < RESTART_ATTEMPTS; attempt++) {
      try {
        slot.started(await this.#startAgent(slot))
        return
      } catch (err) {
        last = err
        await new Promise((r) => setTimeout(r, 1_000))
      }
    }
    throw new Error(`${slot.name} did not come back after its SIGKILL: ${(last as Error).message}`)
  }

  /** Stops every process (SIGTERM, then SIGKILL) and removes the registry's storage. Idempotent. */
  stop(): Promise<void> {
    return (this.#stopping ??= (async () => {
      await Promise.allSettled(
        this.agents.map(async (slot) => {
          const process = slot.process
          slot.process = undefined
          if (process !== undefined) {
            await process.stop()
            tally(slot.logTally, process)
          }
          await slot.dispatcher?.destroy().catch(() => undefined)
        }),
      )
      if (this.seed !== undefined) {
        await this.seed.stop().catch(() => undefined)
        tally(this.seedLogTally, this.seed)
      }
      await this.registry?.stop().catch(() => undefined)
    })())
  }

  /** Last resort for a synchronous exit path: SIGKILLs whatever still runs and removes the registry's storage. */
  killSync(): void {
    const children = [...this.agents.map((a) => a.process?.child), this.seed?.child]
    for (const child of children) if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    if (this.registry !== undefined) {
      try {
        process.kill(this.registry.pid, 'SIGKILL')
      } catch {
        /* already gone */
      }
      rmSync(this.registry.dir, { recursive: true, force: true })
    }
  }

  /** The slot's agent on its data dir and ports, under the agent's memory limit. */
  async #startAgent(slot: AgentSlot): Promise<AgentProcess> {
    return startAgentProcess(await this.#agentArgs(slot), await this.#limits.spawnOptions(slot.name, parseSize(AGENT_MEMORY_LIMIT)))
  }

  async #agentArgs(slot: AgentSlot): Promise<string[]> {
    const seed = this.seed!
    return [
      '--data', slot.dataDir,
      '--listen', `127.0.0.1:${slot.listenPort}`,
      '--p2p-listen', `/ip4/127.0.0.1/tcp/${slot.p2pPort}`,
      '--seed', seed.url,
      '--default-ns', this.registry!.host,
      '--cache-size', String(this.#cacheSizeBytes),
      ...(await seed.enrollArgs()),
    ]
  }

  async #waitForPeers(): Promise<void> {
    const deadline = Date.now() + PEER_WAIT_MS
    while (Date.now() < deadline) {
      const peers = await Promise.all(this.agents.map((a) => a.process!.metric('pollen_agent_peers').catch(() => 0)))
      if (peers.every((n) => n >= 2)) return
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

/** Adds a process's warn (40) and error (50+) log lines to `into`, by message. */
function tally(into: LogTally, process: PollenProcess): void {
  for (const entry of process.logs) {
    const level = typeof entry.level === 'number' ? entry.level : 0
    if (level < 40) continue
    const msg = String(entry.msg ?? '(no msg)')
    const seen = (into[msg] ??= { level, count: 0 })
    seen.count++
    seen.level = Math.max(seen.level, level)
  }
}
