#!/usr/bin/env node
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { loadDockerConfig, type UpstreamCredentials } from '../content/registry-client/credentials.js'
import { ConfigError } from '../protocol/config-values.js'
import { keyLabel, type ConfigSources } from '../protocol/config-sources.js'
import { readConfigSources } from '../content/config-file.js'
import { readOidcTokenFile } from './admission/oidc-token-file.js'
import { startAgent } from './agent.js'
import { AGENT_HELP, parseAgentArgs, parseConfigureArgs, type AgentConfig } from './config.js'
import { mirrorUrl, writeHostsFiles } from './containerd-hosts.js'
import { parseMirrorToken } from './mirror-token.js'
import { seedRemote, standaloneRemote } from './remote.js'
import { stopOnSignals } from '../content/process-signals.js'
import { LOG_OPTIONS } from '../content/log-options.js'

/** The agent's composition root: the only place that reads argv, env and files. */
async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'status') {
    const { statusCommand } = await import('./status-command.js')
    process.exitCode = await statusCommand(argv.slice(1), { stdout: process.stdout, stderr: process.stderr, readFile: (path) => readFile(path, 'utf8') })
    return
  }
  if (argv[0] === 'configure-containerd') {
    const sources = await readSourcesOrExit(argv.slice(1))
    const config = parseOrExit(() => parseConfigureArgs(argv.slice(1), sources))
    if (config === 'help') return void process.stdout.write(AGENT_HELP)
    for (const line of config.agent.configWarnings ?? []) process.stderr.write(`pollen-agent: warning: ${line}\n`)
    const mirrorToken = await readMirrorTokenOrExit(config.agent)
    const results = await writeHostsFiles(config.hostsDir, config.all ? ['_default'] : config.registries, mirrorUrl(config.agent.listen), { mirrorToken })
    for (const r of results) process.stdout.write(`${r.action} ${r.path}${r.backup === undefined ? '' : ` (previous file kept as ${r.backup})`}\n`)
    return
  }
  const sources = await readSourcesOrExit(argv)
  const config = parseOrExit(() => parseAgentArgs(argv, sources))
  if (config === 'help') return void process.stdout.write(AGENT_HELP)
  const logger = pino({ level: config.logLevel, base: { service: 'pollen-agent' }, ...LOG_OPTIONS })
  for (const line of config.configWarnings ?? []) logger.warn(line)
  const credentials = config.seed === undefined ? await standaloneCredentials(logger) : new Map<string, UpstreamCredentials>()
  let joinToken = process.env.POLLEN_JOIN_TOKEN?.trim()
  if (config.joinTokenFile !== undefined) {
    try {
      joinToken = (await readFile(config.joinTokenFile, 'utf8')).trim()
    } catch (err) {
      process.stderr.write(`pollen-agent: invalid ${keyLabel(config.origins, 'join-token-file')}: ${(err as Error).message}\n`)
      process.exit(2)
    }
  }
  // Checked once here; the file is read again at every enrollment.
  if (config.oidcTokenFile !== undefined) {
    try {
      await readOidcTokenFile(config.oidcTokenFile)
    } catch (err) {
      process.stderr.write(`pollen-agent: invalid ${keyLabel(config.origins, 'oidc-token-file')}: ${(err as Error).message}\n`)
      process.exit(2)
    }
  }
  const mirrorToken = await readMirrorTokenOrExit(config)
  const agent = await startAgent(config, {
    logger,
    mirrorToken,
    joinToken: joinToken === '' ? undefined : joinToken,
    remote: (metrics, bearer) => remoteFor(config, credentials, logger, metrics.remoteRequests, metrics.remoteBytes, bearer),
  })
  stopOnSignals(logger, () => agent.close())
}

/** The token of `--mirror-token-file`, checked; exits with code 2 when it is unreadable or unfit. */
async function readMirrorTokenOrExit(config: AgentConfig): Promise<string | undefined> {
  if (config.mirrorTokenFile === undefined) return undefined
  try {
    return parseMirrorToken(await readFile(config.mirrorTokenFile, 'utf8'))
  } catch (err) {
    process.stderr.write(`pollen-agent: invalid ${keyLabel(config.origins, 'mirror-token-file')}: ${(err as Error).message}\n`)
    process.exit(2)
  }
}

function remoteFor(
  config: AgentConfig,
  credentials: ReadonlyMap<string, UpstreamCredentials>,
  logger: Logger,
  requests: { inc(labels: { code: string }): void },
  bytes: { inc(n: number): void },
  bearer: () => string | undefined,
) {
  const c = {
    logger: logger.child({ component: config.seed === undefined ? 'upstream' : 'seed-client' }),
    metrics: { request: (_r: string, code: string) => requests.inc({ code }), bytes: (_r: string, n: number) => bytes.inc(n) },
    bearer,
  }
  return config.seed === undefined ? standaloneRemote(credentials, c) : seedRemote(config.seed, c)
}

/** Standalone mode's credentials: the Docker client's config.json, when there is one. */
async function standaloneCredentials(logger: Logger): Promise<Map<string, UpstreamCredentials>> {
  const path = join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json')
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch {
    logger.info({ path }, 'standalone mode: no Docker credentials file; pulling anonymously')
    return new Map()
  }
  try {
    const credentials = loadDockerConfig(text)
    logger.info({ path, registries: [...credentials.keys()] }, 'standalone mode: using Docker credentials')
    return credentials
  } catch (err) {
    logger.warn({ path, err: (err as Error).message }, 'standalone mode: ignoring unreadable Docker credentials file')
    return new Map()
  }
}

/** The environment and the --config file (POLLEN_CONFIG) for `argv`; exits with code 2 when the file cannot be read. */
async function readSourcesOrExit(argv: string[]): Promise<ConfigSources> {
  try {
    return await readConfigSources(argv, process.env)
  } catch (err) {
    return parseOrExit(() => {
      throw err
    })
  }
}

function parseOrExit<T>(parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pollen-agent: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`pollen-agent: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
