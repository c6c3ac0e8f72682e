import { join } from 'node:path'
import { freePort } from './free-port.js'
import { startAgentProcess, startPollenProcess, startSeedProcess, type JoinTokenOptions, type PollenProcess } from './pollen-process.js'

/** A seed on fixed loopback ports (API and libp2p), so that a restarted seed has the same address and PeerId. */
export interface FleetSeed {
  /** The running process (replaced by restart()). */
  process: PollenProcess
  url: string
  /** `pollen-seed join-token create` into a 0600 file; returns its path. */
  joinTokenFile(options?: JoinTokenOptions): Promise<string>
  /**
   * Kills the seed (SIGKILL, or SIGTERM with `graceful`) and starts it again on the same data
   * dir and ports; resolves with the ms from the kill until it listened again.
   */
  restart(opts?: { graceful?: boolean }): Promise<number>
  stop(): Promise<void>
}

/** Starts `pollen-seed` with `args` (which must hold `--data`) on two fixed free ports. */
export async function startFleetSeed(args: string[]): Promise<FleetSeed> {
  const api = await freePort()
  const p2p = await freePort()
  const all = ['--listen', `127.0.0.1:${api}`, '--p2p-listen', `/ip4/127.0.0.1/tcp/${p2p}`, ...args]
  const first = await persist(() => startSeedProcess(all))
  const seed: FleetSeed = {
    process: first,
    url: `http://127.0.0.1:${api}`,
    joinTokenFile: (options) => first.joinTokenFile(options),
    async restart(opts = {}) {
      const down = Date.now()
      if (opts.graceful === true) await seed.process.stop()
      else await seed.process.kill()
      seed.process = await restartPollen('seed', all)
      return Date.now() - down
    },
    stop: () => seed.process.stop(),
  }
  return seed
}

/** An agent on fixed loopback ports (mirror and libp2p) and its own data dir, restartable in place. */
export interface FleetAgent {
  index: number
  dataDir: string
  url: string
  process: PollenProcess
  /** Every JSON log line of every process this agent ran as, oldest first. */
  logs(): Array<Record<string, unknown>>
  /** Sends SIGKILL at once (synchronously); resolves once the process exited. */
  kill(): Promise<void>
  /** Starts the agent again with the same flags, data dir and ports (after kill() or stop()). */
  start(): Promise<void>
  stop(): Promise<void>
}

export interface FleetAgentsOptions {
  work: string
  seedUrl: string
  /** Registry host the agents use as `--default-ns`. */
  ns: string
  /** Agent flags that enroll (e.g. `--join-token-file F` with enough uses for every start). */
  enroll: string[]
}

/**
 * Starts `count` agents, two at a time (a busy machine starts eight node processes at once too
 * slowly), each on its own fixed ports in `work/agent-<i>`. When an agent cannot be started,
 * the ones already running are stopped before it throws.
 */
export async function startFleetAgents(count: number, opts: FleetAgentsOptions): Promise<FleetAgent[]> {
  const agents: FleetAgent[] = []
  const make = async (index: number): Promise<FleetAgent> => {
    const [api, p2p] = [await freePort(), await freePort()]
    const dataDir = join(opts.work, `agent-${index}`)
    const args = ['--listen', `127.0.0.1:${api}`, '--p2p-listen', `/ip4/127.0.0.1/tcp/${p2p}`, '--data', dataDir, '--seed', opts.seedUrl, '--default-ns', opts.ns, ...opts.enroll]
    const earlier: PollenProcess[] = []
    const agent: FleetAgent = {
      index,
      dataDir,
      url: `http://127.0.0.1:${api}`,
      process: await persist(() => startAgentProcess(args)),
      logs: () => [...earlier, agent.process].flatMap((p) => p.logs),
      kill: () => agent.process.kill(),
      async start() {
        earlier.push(agent.process)
        agent.process = await restartPollen('agent', args)
      },
      stop: () => agent.process.stop(),
    }
    return agent
  }
  for (let i = 0; i < count; i += 2) {
    const batch = await Promise.allSettled(Array.from({ length: Math.min(2, count - i) }, (_, j) => make(i + j)))
    for (const b of batch) if (b.status === 'fulfilled') agents.push(b.value)
    const failed = batch.find((b) => b.status === 'rejected')
    if (failed !== undefined) {
      await Promise.all(agents.map((a) => a.stop()))
      throw failed.reason
    }
  }
  return agents
}

/**
 * Starts a process, trying up to three times: on a loaded machine a node process sometimes
 * takes longer than the start helper's 20 s to log that it listens (it is killed, and retried).
 */
async function persist<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start()
    } catch (err) {
      if (attempt === 3 || !/did not listen within/.test((err as Error).message)) throw err
      console.warn(`fleet: ${(err as Error).message.split('\n')[0]}; starting it again (attempt ${attempt + 1} of 3)`)
    }
  }
}

/** A restart under test must not be killed again for being slow: on this 2-core machine under load a start has taken 45 s. */
const RESTART_TIMEOUT_MS = 120_000

/**
 * Starts `pollen-<which>` again with `args` (plus `--metrics-listen 127.0.0.1:0`), as
 * startAgentProcess/startSeedProcess do but waiting up to RESTART_TIMEOUT_MS for it to listen.
 */
export function restartPollen(which: 'seed' | 'agent', args: string[]): Promise<PollenProcess> {
  return startPollenProcess(which, ['--metrics-listen', '127.0.0.1:0', ...args], { startTimeoutMs: RESTART_TIMEOUT_MS })
}

/** Polls `check` every 250 ms until it returns true; throws with `what` after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}
