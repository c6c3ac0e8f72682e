import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { signProof } from '../../content/admission/proof.js'

const run = promisify(execFile)

const MAIN = {
  seed: fileURLToPath(new URL('../../dist/seed/main.js', import.meta.url)),
  agent: fileURLToPath(new URL('../../dist/agent/main.js', import.meta.url)),
}
const START_TIMEOUT_MS = 60_000

export interface SeedProcess extends PollenProcess {
  /** The seed's `--data` directory. */
  dataDir: string
  /** Makes a join token with `pollen-seed join-token create` (default: one use, scope `**`) and writes it to a 0600 file; returns the path. */
  joinTokenFile(options?: JoinTokenOptions): Promise<string>
  /** Agent flags that enroll with a fresh join token: `--join-token-file PATH`. */
  enrollArgs(options?: JoinTokenOptions): Promise<string[]>
  /**
   * Enrolls a fresh test identity (its own Ed25519 PeerId, a join token, a proof of key
   * possession) with `POST /v1/admission`; returns its admission token, for clients such
   * as skopeo or curl that talk to the seed directly.
   */
  clientToken(options?: JoinTokenOptions): Promise<string>
}

export interface JoinTokenOptions {
  scope?: string[]
  uses?: number
}
export type AgentProcess = PollenProcess

export interface PollenProcess {
  /** `http://127.0.0.1:PORT` of the registry API. */
  url: string
  /** `127.0.0.1:PORT`, the form used in image references. */
  host: string
  /** `http://127.0.0.1:PORT` of /metrics, /healthz, /readyz. */
  opsUrl: string
  /** Every JSON log line the seed printed so far. */
  logs: Array<Record<string, unknown>>
  /** Raw stdout and stderr so far. */
  output(): string
  /** Reads one metric's value (sum over series matching `labels`) from /metrics. */
  metric(name: string, labels?: Record<string, string>): Promise<number>
  stop(): Promise<void>
  kill(): Promise<void>
  child: ChildProcess
}

/**
 * Runs the built `pollen-seed` (dist/seed/main.js) as a child process on free loopback ports
 * with the given extra flags, and resolves once it logged that it is listening.
 */
export async function startSeedProcess(args: string[], options: SpawnOptions = {}): Promise<SeedProcess> {
  const p2p = args.includes('--p2p-listen') ? [] : ['--p2p-listen', '/ip4/127.0.0.1/tcp/0']
  const listen = args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']
  const dataAt = args.indexOf('--data')
  if (dataAt < 0 || args[dataAt + 1] === undefined) throw new TypeError('startSeedProcess needs --data DIR')
  const dataDir = args[dataAt + 1]!
  const seed = await startPollenProcess('seed', [...listen, ...p2p, '--metrics-listen', '127.0.0.1:0', ...args], options)
  let made = 0
  const createJoinToken = async (options: JoinTokenOptions = {}): Promise<string> => {
    const scopes = (options.scope ?? ['**']).flatMap((s) => ['--scope', s])
    const { stdout } = await run(process.execPath, [MAIN.seed, 'join-token', 'create', '--data', dataDir, '--uses', String(options.uses ?? 1), ...scopes], { timeout: 30_000 })
    return stdout.trim()
  }
  const joinTokenFile = async (options: JoinTokenOptions = {}): Promise<string> => {
    const path = `${dataDir}.join-${process.pid}-${++made}`
    await writeFile(path, `${await createJoinToken(options)}\n`, { mode: 0o600 })
    return path
  }
  return {
    ...seed,
    dataDir,
    joinTokenFile,
    enrollArgs: async (options) => ['--join-token-file', await joinTokenFile(options)],
    async clientToken(options = {}) {
      const joinToken = await createJoinToken({ ...options, uses: 1 })
      const issuerAt = args.indexOf('--issuer')
      const proof = await signProof(await generateKeyPair('Ed25519'), issuerAt < 0 ? 'pollen-seed' : args[issuerAt + 1]!, Math.floor(Date.now() / 1000))
      const res = await fetch(`${seed.url}/v1/admission`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ peerId: proof.peerId, proof: { timestamp: proof.timestamp, signature: proof.signature }, joinToken }),
        signal: AbortSignal.timeout(10_000),
      })
      if (res.status !== 200) throw new Error(`enrollment refused: HTTP ${res.status} ${await res.text()}`)
      return ((await res.json()) as { token: string }).token
    },
  }
}

/**
 * Runs the built `pollen-agent` with the given flags (`--listen` defaults to a free loopback
 * port when not given), and resolves once it logged that it is listening.
 */
export function startAgentProcess(args: string[], options: SpawnOptions = {}): Promise<AgentProcess> {
  const listen = args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']
  const p2p = args.includes('--p2p-listen') ? [] : ['--p2p-listen', '/ip4/127.0.0.1/tcp/0']
  return startPollenProcess('agent', [...listen, ...p2p, '--metrics-listen', '127.0.0.1:0', ...args], options)
}

export interface SpawnOptions {
  /** Command the process runs under, e.g. `['ip', 'netns', 'exec', 'ns1']`; the pid is then the prefix's unless it execs. */
  prefix?: string[]
  /** Node's own flags, before the script, e.g. `['--max-old-space-size=512']`. */
  nodeArgs?: string[]
  /** How long the process may take to log that it listens before it is killed (default START_TIMEOUT_MS). */
  startTimeoutMs?: number
}

/** Runs `pollen-<which>` with exactly `args` and resolves once it logged that it is listening. */
export async function startPollenProcess(which: 'seed' | 'agent', args: string[], options: SpawnOptions = {}): Promise<PollenProcess> {
  const [command, ...prefixArgs] = [...(options.prefix ?? []), process.execPath]
  const child = spawn(command!, [...prefixArgs, ...(options.nodeArgs ?? []), MAIN[which], ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: Array<Record<string, unknown>> = []
  let raw = ''
  child.stderr!.on('data', (d: Buffer) => (raw += d.toString()))
  const lines = createInterface({ input: child.stdout! })
  const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
    lines.on('line', (line) => {
      raw += `${line}\n`
      try {
        const entry = JSON.parse(line) as Record<string, unknown>
        logs.push(entry)
        if (entry.msg === `${which} listening`) resolve(entry)
      } catch {
        /* not a log line */
      }
    })
    child.once('exit', (code) => reject(new Error(`pollen-${which} exited with ${code} before listening:\n${raw}`)))
    const startTimeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS
    setTimeout(() => reject(new Error(`pollen-${which} did not listen within ${startTimeoutMs} ms:\n${raw}`)), startTimeoutMs).unref()
  })
  let ready: Record<string, unknown>
  try {
    ready = await listening
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
  const url = String(ready.url)
  const opsUrl = String(ready.opsUrl)
  return {
    url,
    host: new URL(url).host,
    opsUrl,
    logs,
    child,
    output: () => raw,
    async metric(name, labels = {}) {
      const text = await (await fetch(`${opsUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
      let sum = 0
      for (const line of text.split('\n')) {
        if (!line.startsWith(name)) continue
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line)
        if (m === null || m[1] !== name) continue
        const series = m[2] ?? ''
        if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) sum += Number(m[3])
      }
      return sum
    },
    /** Kills the process with SIGKILL, as a crash would. */
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGKILL')
      await once(child, 'exit')
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await once(child, 'exit')
      clearTimeout(timer)
    },
  }
}
