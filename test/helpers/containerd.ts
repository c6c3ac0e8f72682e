import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { exitOf, stopProcess, waitUntilReady } from './child-exit.js'

export interface ContainerdOptions {
  /** Parent of the daemon's fresh temp dir; default `/tmp` (the socket path must stay < 100 bytes). */
  dir?: string
  /** Snapshotter used to unpack pulls; default `native` (works without overlay mounts). */
  snapshotter?: string
  /** How long to wait for `ctr version` to answer; default 20 s. */
  readyTimeoutMs?: number
}

export interface CtrOptions {
  /** Kill ctr after this long; default 60 s. */
  timeoutMs?: number
}

export interface PullOptions extends CtrOptions {
  /** Passed as `--hosts-dir`: containerd reads `<hostsDir>/<registry host>/hosts.toml`. */
  hostsDir: string
  allPlatforms?: boolean
  /** e.g. `linux/arm64`; default the host's platform. */
  platform?: string
}

export interface RunningContainerd {
  /** The daemon's grpc unix socket. */
  address: string
  /** Fresh temp dir with config, root, state, sockets and the log; removed by stop(). */
  dir: string
  /** The daemon's stdout + stderr. */
  logPath: string
  namespace: string
  snapshotter: string
  pid: number
  readLog(): Promise<string>
  /** Runs `ctr --address SOCK -n pollen-test ...args`; rejects with a CtrError (carrying stderr) on non-zero exit or timeout. */
  ctr(args: string[], opts?: CtrOptions): Promise<{ stdout: string; stderr: string }>
  /** `ctr images pull --hosts-dir DIR --snapshotter S [--all-platforms | --platform P] REF` (never --plain-http); resolves to ctr's stdout. */
  pull(ref: string, opts: PullOptions): Promise<string>
  /** `ctr images rm --sync REF`. */
  removeImage(ref: string): Promise<void>
  /**
   * Removes every image, every blob in the content store and every snapshot, so the next pull
   * must fetch all bytes again. Throws if some content survives.
   */
  removeAllContent(): Promise<void>
  /** `ctr content ls -q`: the digests in the content store. */
  contentDigests(): Promise<string[]>
  /** SIGTERM, SIGKILL after 5 s, unmounts anything left under `dir`, then removes `dir`. Idempotent. */
  stop(): Promise<void>
}

export class CtrError extends Error {
  override readonly name = 'CtrError'
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message)
  }
}

const NAMESPACE = 'pollen-test'
const SOCKET_PATH_LIMIT = 100
const CTR_TIMEOUT_MS = 60_000
/** Plugins that cannot work (or must not run) in a private, unprivileged-ish test daemon. */
const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.internal.v1.opt',
  'io.containerd.internal.v1.tracing',
  'io.containerd.tracing.processor.v1.otlp',
]

/**
 * Starts a private containerd (own root, state, sockets, config; no CRI) as a child process and
 * resolves once `ctr version` answers. On failure the temp dir is removed and the error
 * carries the tail of the daemon log.
 */
export async function startContainerd(opts: ContainerdOptions = {}): Promise<RunningContainerd> {
  const dir = await mkdtemp(join(opts.dir ?? '/tmp', 'pollen-ctd-'))
  const address = join(dir, 'c.sock')
  const logPath = join(dir, 'containerd.log')
  const snapshotter = opts.snapshotter ?? 'native'
  let child: ChildProcess | undefined
  try {
    if (Buffer.byteLength(address) >= SOCKET_PATH_LIMIT) throw new Error(`socket path ${address} is too long for a unix socket`)
    const configPath = join(dir, 'config.toml')
    await mkdir(join(dir, 'tmp'))
    await writeFile(configPath, containerdConfig(dir, address))
    const log = await open(logPath, 'a')
    try {
      child = spawn('containerd', ['--config', configPath], { stdio: ['ignore', log.fd, log.fd], env: scrubbedEnv() })
    } finally {
      await log.close()
    }
    const exited = exitOf(child)
    const ctr = (args: string[], o: CtrOptions = {}) => runCtr(address, args, o.timeoutMs ?? CTR_TIMEOUT_MS)
    await waitUntilReady(
      async () => {
        await ctr(['version'], { timeoutMs: 2_000 })
        return undefined
      },
      exited,
      opts.readyTimeoutMs ?? 20_000,
      100,
    )
    const running = child
    let stopping: Promise<void> | undefined
    const handle: RunningContainerd = {
      address,
      dir,
      logPath,
      namespace: NAMESPACE,
      snapshotter,
      pid: running.pid!,
      readLog: () => readFile(logPath, 'utf8'),
      ctr,
      pull: async (ref, o) => {
        const args = ['images', 'pull', '--hosts-dir', o.hostsDir, '--snapshotter', snapshotter]
        if (o.allPlatforms === true) args.push('--all-platforms')
        if (o.platform !== undefined) args.push('--platform', o.platform)
        return (await ctr([...args, ref], o)).stdout
      },
      removeImage: async (ref) => void (await ctr(['images', 'rm', '--sync', ref])),
      removeAllContent: () => removeAllContent(ctr, snapshotter),
      contentDigests: () => listContent(ctr),
      stop: () => (stopping ??= stopProcess(running, exited).finally(() => removeDir(dir))),
    }
    return handle
  } catch (err) {
    if (child) await stopProcess(child, exitOf(child))
    const log = await readFile(logPath, 'utf8').catch(() => '')
    await removeDir(dir)
    const message = err instanceof Error ? err.message : String(err)
    throw new Error(`containerd did not start in ${dir}: ${message}\n--- containerd log (tail) ---\n${log.slice(-4000)}`)
  }
}

export interface HostsTomlOptions {
  /** Upstream used after every mirror failed; omitted means containerd's default `https://<registryHost>`. */
  server?: string
  /** Tried in order before the server. */
  mirrors: Array<{ url: string; capabilities: string[] }>
}

/**
 * Writes `<hostsDir>/<registryHost>/hosts.toml` (test-side only; the product has its own
 * writer) and resolves to its path. `registryHost` is the ref's host, e.g. `127.0.0.1:5055`.
 */
export async function writeHostsToml(hostsDir: string, registryHost: string, opts: HostsTomlOptions): Promise<string> {
  const q = (value: string): string => JSON.stringify(value)
  const lines: string[] = []
  if (opts.server !== undefined) lines.push(`server = ${q(opts.server)}`, '')
  for (const mirror of opts.mirrors) {
    lines.push(`[host.${q(mirror.url)}]`, `  capabilities = [${mirror.capabilities.map(q).join(', ')}]`, '')
  }
  const hostDir = join(hostsDir, registryHost)
  await mkdir(hostDir, { recursive: true })
  const path = join(hostDir, 'hosts.toml')
  await writeFile(path, lines.join('\n'))
  return path
}

function containerdConfig(dir: string, address: string): string {
  const q = (value: string): string => JSON.stringify(value)
  return [
    'version = 2',
    `root = ${q(join(dir, 'root'))}`,
    `state = ${q(join(dir, 'state'))}`,
    `temp = ${q(join(dir, 'tmp'))}`,
    `disabled_plugins = [${DISABLED_PLUGINS.map(q).join(', ')}]`,
    '',
    '[grpc]',
    `  address = ${q(address)}`,
    '  tcp_address = ""',
    '',
    '[ttrpc]',
    `  address = ${q(`${address}.ttrpc`)}`,
    '',
    '[debug]',
    '  address = ""',
    '  level = "info"',
    '',
    '[metrics]',
    '  address = ""',
    '',
  ].join('\n')
}

async function removeAllContent(ctr: RunningContainerd['ctr'], snapshotter: string): Promise<void> {
  for (const ref of lines((await ctr(['images', 'ls', '-q'])).stdout)) await ctr(['images', 'rm', '--sync', ref])
  const leftover = await listContent(ctr)
  if (leftover.length > 0) await ctr(['content', 'rm', ...leftover])
  await removeAllSnapshots(ctr, snapshotter)
  const survivors = await listContent(ctr)
  if (survivors.length > 0) throw new Error(`content survived removal: ${survivors.join(', ')}`)
}

/** Removes snapshots leaves first (a parent cannot go before its children); bounded rounds. */
async function removeAllSnapshots(ctr: RunningContainerd['ctr'], snapshotter: string): Promise<void> {
  for (let round = 0; round < 100; round++) {
    const rows = lines((await ctr(['snapshots', '--snapshotter', snapshotter, 'ls'])).stdout)
      .slice(1)
      .map((row) => row.split(/\s+/))
    if (rows.length === 0) return
    const parents = new Set(rows.map((row) => row[1]))
    const leaves = rows.map((row) => row[0]!).filter((key) => !parents.has(key))
    await ctr(['snapshots', '--snapshotter', snapshotter, 'rm', ...leaves])
  }
  throw new Error('snapshots survived 100 rounds of removal')
}

async function listContent(ctr: RunningContainerd['ctr']): Promise<string[]> {
  return lines((await ctr(['content', 'ls', '-q'])).stdout)
}

function lines(text: string): string[] {
  return text.split('\n').map((line) => line.trim()).filter((line) => line !== '')
}

function runCtr(address: string, args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  const argv = ['--address', address, '--namespace', NAMESPACE, ...args]
  return new Promise((resolve, reject) => {
    execFile('ctr', argv, { env: scrubbedEnv(), timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr })
      const why = err.killed ? `timed out after ${timeoutMs} ms` : `failed (${err.code ?? err.signal ?? err.message})`
      reject(new CtrError(`ctr ${args.join(' ')} ${why}: ${stderr.trim() || err.message}`, stdout, stderr))
    })
  })
}

/** The parent's environment minus CONTAINERD_* and proxy variables, which would redirect ctr. */
function scrubbedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('CONTAINERD_') && !/^(https?|all|no)_proxy$/i.test(key)) env[key] = value
  }
  return env
}


/** Unmounts (deepest first, lazily if busy) every mount point under `dir`, then removes it. */
async function removeDir(dir: string): Promise<void> {
  for (const point of await mountPointsUnder(dir)) {
    await umount(point).catch(() => umount(point, ['-l'])).catch(() => undefined)
  }
  await rm(dir, { recursive: true, force: true })
}

async function mountPointsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  return info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point !== undefined)
    .map((point) => point.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((point) => point === dir || point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length)
}

function umount(point: string, flags: string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('umount', [...flags, point], { timeout: 10_000 }, (err) => (err ? reject(err) : resolve()))
  })
}
