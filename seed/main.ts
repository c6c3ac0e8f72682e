#!/usr/bin/env node
import { readFile } from 'node:fs/promises'
import { pino } from 'pino'
import { MAX_TOKEN_LIFETIME_S } from '../protocol/admission.js'
import { openAdmission } from './admission/admission.js'
import { OidcVerifier } from './admission/oidc.js'
import { runCommand } from './commands.js'
import { ConfigError, SEED_HELP, parseSeedCommand, servesSeed, type SeedCommand, type SeedConfig } from './config.js'
import { keyLabel } from '../protocol/config-sources.js'
import { readConfigSources } from '../content/config-file.js'
import { loadDockerConfig } from '../content/registry-client/credentials.js'
import { stopOnSignals } from '../content/process-signals.js'
import { LOG_OPTIONS } from '../content/log-options.js'

/** The seed's composition root: the only place that reads argv, env and files. */
async function main(argv: string[]): Promise<void> {
  let command: SeedCommand
  try {
    // The config file and POLLEN_* variables apply to running the seed; the commands take flags only.
    command = parseSeedCommand(argv, servesSeed(argv) ? await readConfigSources(argv, process.env) : {})
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pollen-seed: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
  if (command === 'help') {
    process.stdout.write(SEED_HELP)
    return
  }
  if (command.kind !== 'serve') {
    // stdout carries only the command's output (a join token, a table); logs go to stderr.
    const logger = pino({ level: 'warn', base: { service: 'pollen-seed' }, ...LOG_OPTIONS }, pino.destination(2))
    if (command.kind === 'preheat') {
      const { runPreheat } = await import('./preheat-command.js')
      process.exitCode = await runPreheat(command, { stdout: process.stdout, stderr: process.stderr, logger })
      return
    }
    process.exitCode = await runCommand(command, { stdout: process.stdout, stderr: process.stderr, logger })
    return
  }
  await serve(command.config)
}

async function serve(config: SeedConfig): Promise<void> {
  const logger = pino({ level: config.logLevel, base: { service: 'pollen-seed' }, ...LOG_OPTIONS })
  for (const line of config.configWarnings ?? []) logger.warn(line)
  let credentials = new Map<string, { username: string; password: string }>()
  if (config.credentialsFile !== undefined) {
    try {
      credentials = loadDockerConfig(await readFile(config.credentialsFile, 'utf8'))
    } catch (err) {
      process.stderr.write(`pollen-seed: invalid ${keyLabel(config.origins, 'credentials')}: ${(err as Error).message}\n`)
      process.exit(2)
    }
  }
  let oidc: OidcVerifier | undefined
  if (config.oidc !== undefined) {
    oidc = new OidcVerifier(config.oidc, { logger: logger.child({ component: 'oidc' }) })
    try {
      await oidc.load()
    } catch (err) {
      process.stderr.write(`pollen-seed: invalid ${keyLabel(config.origins, 'oidc-jwks')}: ${(err as Error).message}\n`)
      process.exit(2)
    }
    const { issuer, audience, jwks, scope, subjects } = config.oidc
    logger.info({ issuer, audience, jwks, scope, subjects }, 'OIDC enrollment enabled')
  }
  const admission = await openAdmission(
    { dataDir: config.dataDir, keyRotationMs: config.keyRotationMs, maxTokenLifetimeMs: MAX_TOKEN_LIFETIME_S * 1000 },
    { logger: logger.child({ component: 'admission' }) },
  )
  // Loaded here so that help, flag errors and the admin commands need not load libp2p.
  const { startSeed } = await import('./seed.js')
  let seed
  try {
    // From here on the seed owns `admission` and closes it in close().
    seed = await startSeed(config, { logger, credentials, admission, oidc })
  } catch (err) {
    await admission.close()
    throw err
  }
  stopOnSignals(logger, () => seed.close())
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`pollen-seed: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
