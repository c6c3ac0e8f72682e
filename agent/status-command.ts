import { parseArgs } from 'node:util'
import { request } from 'undici'
import { ConfigError } from '../protocol/config-values.js'
import { DEFAULT_LISTEN, STATUS_TIMEOUT_MS } from './constants.js'
import { MIRROR_TOKEN_HEADER, parseMirrorToken } from './mirror-token.js'
import { formatStatus, type Readiness, type StatusInput } from './status-format.js'
import { STATUS_PATH } from './status-report.js'

/** `pollen-agent status …`, parsed. */
export interface StatusArgs {
  /** The agent's mirror URL (origin): where /v1/status and /readyz are asked. */
  url: string
  json: boolean
  /** The agent's --mirror-token-file, for an agent that listens beyond loopback. */
  mirrorTokenFile?: string
}

export interface StatusIo {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
  /** The token of --mirror-token-file, read by main. */
  mirrorToken?: string
  now?: () => number
  timeoutMs?: number
}

/** Exit codes of `pollen-agent status`. */
export const STATUS_EXIT = { healthy: 0, notReady: 1, badArguments: 2, unreachable: 3 } as const

export const STATUS_HELP = `Usage: pollen-agent status [--url URL] [--json] [--mirror-token-file FILE]

Shows a running agent's state: mode, PeerId, seed reachability, admission token expiry,
cache usage, peers, readiness and the last errors it logged (from its GET ${STATUS_PATH}
and /readyz).

Options:
  --url URL                   The agent's --listen address (default http://${DEFAULT_LISTEN}), or its
                              --metrics-listen address.
  --json                      Print the agent's ${STATUS_PATH} answer as JSON instead.
  --mirror-token-file FILE    The agent's mirror token, needed when it listens beyond loopback.
  -h, --help                  Show this help.

Exit status: 0 ready, 1 the agent answers but is not ready, 2 bad arguments, 3 the agent
cannot be reached.
`

export interface StatusCommandIo {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
  /** Reads a file's text (the --mirror-token-file); main passes fs.readFile. */
  readFile: (path: string) => Promise<string>
}

/**
 * `pollen-agent status ARGS…` from start to end: parses `argv` (after `status`), reads the
 * mirror token file, asks the agent and prints. Resolves the exit code (STATUS_EXIT).
 */
export async function statusCommand(argv: string[], io: StatusCommandIo): Promise<number> {
  let args: StatusArgs | 'help'
  let mirrorToken: string | undefined
  try {
    args = parseStatusArgs(argv)
    if (args === 'help') {
      io.stdout.write(STATUS_HELP)
      return STATUS_EXIT.healthy
    }
    if (args.mirrorTokenFile !== undefined) {
      const file = args.mirrorTokenFile
      mirrorToken = parseMirrorToken(await io.readFile(file).catch((err: Error) => Promise.reject(new ConfigError('mirror-token-file', err.message))))
    }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    io.stderr.write(`pollen-agent status: ${err.message}\n`)
    return STATUS_EXIT.badArguments
  }
  return runStatus(args, { stdout: io.stdout, stderr: io.stderr, ...(mirrorToken === undefined ? {} : { mirrorToken }) })
}

/** Parses `pollen-agent status …` (argv after `status`). Throws ConfigError naming the bad flag. */
export function parseStatusArgs(argv: string[]): StatusArgs | 'help' {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { url: { type: 'string' }, json: { type: 'boolean' }, 'mirror-token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }))
  } catch (err) {
    throw new ConfigError('arguments', (err as Error).message)
  }
  if (values.help === true) return 'help'
  return {
    url: urlFlag(values.url ?? `http://${DEFAULT_LISTEN}`),
    json: values.json === true,
    ...(values['mirror-token-file'] === undefined ? {} : { mirrorTokenFile: values['mirror-token-file'] }),
  }
}

/**
 * Asks the agent at `args.url` for its status and readiness and prints them. Resolves the
 * exit code (STATUS_EXIT): healthy when /readyz answers 200, not ready when it answers
 * otherwise, unreachable (one line on stderr) when the status cannot be read at all.
 */
export async function runStatus(args: StatusArgs, io: StatusIo): Promise<number> {
  const headers = io.mirrorToken === undefined ? {} : { [MIRROR_TOKEN_HEADER.toLowerCase()]: io.mirrorToken }
  const timeoutMs = io.timeoutMs ?? STATUS_TIMEOUT_MS
  const [status, readiness] = await Promise.allSettled([getJson(`${args.url}${STATUS_PATH}`, headers, timeoutMs), readinessOf(args.url, headers, timeoutMs)])
  if (status.status === 'rejected') {
    io.stderr.write(`pollen-agent status: ${(status.reason as Error).message}\n`)
    return STATUS_EXIT.unreachable
  }
  const ready = readiness.status === 'fulfilled' ? readiness.value : undefined
  if (args.json) io.stdout.write(`${JSON.stringify(status.value.body, null, 2)}\n`)
  else io.stdout.write(formatStatus(status.value.body as StatusInput, ready, args.url, (io.now ?? Date.now)()))
  return ready?.ready === true ? STATUS_EXIT.healthy : STATUS_EXIT.notReady
}

/** GETs JSON; throws an Error whose message is one line saying why the status cannot be read. */
async function getJson(url: string, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  const origin = new URL(url).origin
  let res
  try {
    res = await request(url, { headers: { accept: 'application/json', ...headers }, signal: AbortSignal.timeout(timeoutMs), headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
  } catch (err) {
    throw new Error(unreachable(origin, err), { cause: err })
  }
  const text = await res.body.text().catch(() => '')
  if (res.statusCode === 403) throw new Error(`the agent at ${origin} refused the status request (HTTP 403): give its --mirror-token-file`)
  if (res.statusCode === 404) throw new Error(`the agent at ${origin} does not serve ${STATUS_PATH} (HTTP 404): is this a pollen-agent of this version?`)
  try {
    const body: unknown = JSON.parse(text)
    if (res.statusCode === 200 || res.statusCode === 503) return { status: res.statusCode, body }
  } catch {
    /* said below */
  }
  throw new Error(`the agent at ${origin} answered ${new URL(url).pathname} with HTTP ${res.statusCode}${text === '' ? '' : `: ${text.slice(0, 200).replace(/\s+/g, ' ')}`}`)
}

/** The agent's /readyz as ready-or-not with the failed checks; throws as getJson. */
async function readinessOf(url: string, headers: Record<string, string>, timeoutMs: number): Promise<Readiness> {
  const { status, body } = await getJson(`${url}/readyz`, headers, timeoutMs)
  const checks = (body as { checks?: Array<{ name?: unknown; ok?: unknown; detail?: unknown }> }).checks ?? []
  const failed = checks.filter((c) => c.ok !== true).map((c) => `${String(c.name ?? 'check')}${typeof c.detail === 'string' ? `: ${c.detail}` : ''}`)
  return { ready: status === 200, failed }
}

function unreachable(origin: string, err: unknown): string {
  const e = err as Error & { code?: string; cause?: { code?: string } }
  const code = e.code ?? e.cause?.code
  if (code === 'ECONNREFUSED') return `cannot reach the agent at ${origin}: connection refused (is it running? is --url its --listen address?)`
  if (e.name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return `cannot reach the agent at ${origin}: no answer in time`
  return `cannot reach the agent at ${origin}: ${e.message}`
}

function urlFlag(value: string): string {
  let url: URL
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`)
  } catch {
    throw new ConfigError('url', `"${value.slice(0, 100)}" is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('url', `"${value.slice(0, 100)}" must be http:// or https://`)
  if (url.username !== '' || url.password !== '') throw new ConfigError('url', 'the URL must not carry credentials')
  return url.origin
}
