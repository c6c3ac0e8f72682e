#!/usr/bin/env node
import { readFile } from 'node:fs/promises'
import { pino } from 'pino'
import { ConfigError, SEED_HELP, parseSeedArgs } from './config.js'
import { startSeed } from './seed.js'
import { loadDockerConfig } from '../content/registry-client/credentials.js'
import { stopOnSignals } from '../content/process-signals.js'

/** The seed's composition root: the only place that reads argv, env and files. */
async function main(): Promise<void> {
  let config
  try {
    config = parseSeedArgs(process.argv.slice(2))
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pollen-seed: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
  if (config === 'help') {
    process.stdout.write(SEED_HELP)
    return
  }
  const logger = pino({ level: config.logLevel, base: { service: 'pollen-seed' } })
  let credentials = new Map<string, { username: string; password: string }>()
  if (config.credentialsFile !== undefined) {
    try {
      credentials = loadDockerConfig(await readFile(config.credentialsFile, 'utf8'))
    } catch (err) {
      process.stderr.write(`pollen-seed: invalid --credentials: ${(err as Error).message}\n`)
      process.exit(2)
    }
  }
  const seed = await startSeed(config, { logger, credentials })
  stopOnSignals(logger, () => seed.close())
}

main().catch((err: unknown) => {
  process.stderr.write(`pollen-seed: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
