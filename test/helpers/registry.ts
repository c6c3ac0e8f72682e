import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { bcryptHash } from './bcrypt.js'
import { freePort } from './free-port.js'
import { exitOf, stopProcess, waitUntilReady } from './child-exit.js'

export interface HtpasswdAuth {
  kind: 'htpasswd'
  /** username -> plaintext password; written bcrypt-hashed (cost 4) to an htpasswd file. */
  users: Record<string, string>
}

/** distribution's `auth: token:` block; see startTokenServer for a matching issuer. */
export interface TokenAuth {
  kind: 'token'
  realm: string
  service: string
  issuer: string
  rootCertBundlePath: string
}

/**
 * Pull-through cache settings. Caveat of distribution 2.8: username/password are only ever
 * sent to an upstream that uses *token* auth. At startup the proxy pings `remoteurl/v2/` and
 * files the credentials under each Bearer realm it sees; a Basic (htpasswd) upstream gets no
 * credentials, so every pull answers 404 MANIFEST_UNKNOWN. The upstream must be up first.
 */
export interface ProxyOptions {
  remoteurl: string
  username?: string
  password?: string
}

export interface RegistryOptions {
  auth?: HtpasswdAuth | TokenAuth
  /** Pull-through cache mode (the registry then refuses pushes). */
  proxy?: ProxyOptions
  /** Executable to run; default `docker-registry` looked up on PATH. */
  binary?: string
  /** distribution log level; default `info` (the access log is written regardless). */
  logLevel?: 'error' | 'warn' | 'info' | 'debug'
  /** How long to wait for `GET /v2/` to answer; default 20 s. */
  readyTimeoutMs?: number
  /** Address to listen on; default 127.0.0.1. It must be reachable from this process for the readiness probe. */
  listenHost?: string
  /** Port to listen on; default a free port on 127.0.0.1 (retried if taken meanwhile). */
  port?: number
  /** Command the registry runs under, e.g. `['ip', 'netns', 'exec', 'ns1']`; default none. */
  prefix?: string[]
}

export interface RunningRegistry {
  /** `http://127.0.0.1:PORT` (or the `listenHost`), no trailing slash. */
  url: string
  /** `127.0.0.1:PORT` (or the `listenHost`), the form used in image references. */
  host: string
  port: number
  /** Fresh temp dir holding config, storage, htpasswd and the log; removed by stop(). */
  dir: string
  /** stdout + stderr of the registry: app log and the combined-format access log. */
  logPath: string
  readLog(): Promise<string>
  /** The registry process id (for CPU and memory figures in benchmarks). */
  pid: number
  /** SIGTERM, SIGKILL after 5 s, then removes `dir`. Idempotent. */
  stop(): Promise<void>
}

const HOST = '127.0.0.1'
const START_ATTEMPTS = 3

/**
 * Starts a docker-registry (distribution 2.8) on 127.0.0.1:<free port> with filesystem
 * storage in a fresh temp dir, and resolves once `GET /v2/` answers 200 or 401.
 * Retries on a new port if the first one was taken meanwhile. On failure the temp dir is
 * removed and the error carries the tail of the registry log.
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<RunningRegistry> {
  let lastError: unknown
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await startOnce(opts)
    } catch (err) {
      lastError = err
      if (!(err instanceof RegistryStartError && err.portInUse)) throw err
    }
  }
  throw lastError
}

class RegistryStartError extends Error {
  constructor(message: string, readonly portInUse: boolean) {
    super(message)
    this.name = 'RegistryStartError'
  }
}

async function startOnce(opts: RegistryOptions): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'pollen-registry-'))
  const port = opts.port ?? (await freePort(HOST))
  const host = `${opts.listenHost ?? HOST}:${port}`
  const url = `http://${host}`
  const logPath = join(dir, 'registry.log')
  const configPath = join(dir, 'config.yml')
  let child: ChildProcess | undefined
  try {
    let htpasswdPath: string | undefined
    if (opts.auth?.kind === 'htpasswd') {
      htpasswdPath = join(dir, 'htpasswd')
      await writeFile(htpasswdPath, htpasswdFile(opts.auth.users), { mode: 0o600 })
    }
    await writeFile(configPath, registryConfig({ opts, dir, host, htpasswdPath }))
    const log = await open(logPath, 'a')
    try {
      const [command, ...prefixArgs] = [...(opts.prefix ?? []), opts.binary ?? 'docker-registry']
      child = spawn(command!, [...prefixArgs, 'serve', configPath], {
        stdio: ['ignore', log.fd, log.fd],
        env: scrubbedEnv(),
      })
    } finally {
      await log.close()
    }
    const exited = exitOf(child)
    await waitUntilReady(
      async () => {
        const res = await request(`${url}/v2/`, { method: 'GET', signal: AbortSignal.timeout(1_000) })
        await res.body.dump()
        return res.statusCode === 200 || res.statusCode === 401 ? undefined : `GET /v2/ answered ${res.statusCode}`
      },
      exited,
      opts.readyTimeoutMs ?? 20_000,
      50,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; log at ${logPath}`)
    })
    const running = child
    let stopping: Promise<void> | undefined
    return {
      url,
      host,
      port,
      dir,
      pid: running.pid!,
      logPath,
      readLog: () => readFile(logPath, 'utf8'),
      stop: () => (stopping ??= stopProcess(running, exited).finally(() => rm(dir, { recursive: true, force: true }))),
    }
  } catch (err) {
    if (child) await stopProcess(child, exitOf(child))
    const log = await readFile(logPath, 'utf8').catch(() => '')
    await rm(dir, { recursive: true, force: true })
    const message = err instanceof Error ? err.message : String(err)
    throw new RegistryStartError(
      `docker-registry did not start on ${host}: ${message}\n--- registry log (tail) ---\n${log.slice(-4000)}`,
      /address already in use/i.test(log),
    )
  }
}

/** Serialises the distribution config. Strings go through JSON.stringify, which is valid YAML. */
function registryConfig(args: { opts: RegistryOptions; dir: string; host: string; htpasswdPath: string | undefined }): string {
  const { opts, dir, host, htpasswdPath } = args
  const q = (value: string): string => JSON.stringify(value)
  const lines = [
    'version: 0.1',
    'log:',
    `  level: ${opts.logLevel ?? 'info'}`,
    '  formatter: text',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${q(join(dir, 'storage'))}`,
    '  cache:',
    '    blobdescriptor: inmemory',
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${q(host)}`,
    `  secret: ${q(randomBytes(16).toString('hex'))}`,
    'health:',
    '  storagedriver:',
    '    enabled: false',
  ]
  const auth = opts.auth
  if (auth?.kind === 'htpasswd') {
    lines.push('auth:', '  htpasswd:', `    realm: ${q('pollen-test')}`, `    path: ${q(htpasswdPath!)}`)
  } else if (auth?.kind === 'token') {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${q(auth.realm)}`,
      `    service: ${q(auth.service)}`,
      `    issuer: ${q(auth.issuer)}`,
      `    rootcertbundle: ${q(auth.rootCertBundlePath)}`,
    )
  }
  if (opts.proxy) {
    lines.push('proxy:', `  remoteurl: ${q(opts.proxy.remoteurl)}`)
    if (opts.proxy.username !== undefined) lines.push(`  username: ${q(opts.proxy.username)}`)
    if (opts.proxy.password !== undefined) lines.push(`  password: ${q(opts.proxy.password)}`)
  }
  return lines.join('\n') + '\n'
}

function htpasswdFile(users: Record<string, string>): string {
  return Object.entries(users)
    .map(([user, password]) => {
      if (user === '' || /[:\s]/.test(user)) throw new Error(`htpasswd user ${JSON.stringify(user)} must be non-empty without ':' or spaces`)
      return `${user}:${bcryptHash(password, 4)}\n`
    })
    .join('')
}

/** The parent's environment minus REGISTRY_* variables, which would override our config. */
function scrubbedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('REGISTRY_')) env[key] = value
  return env
}


