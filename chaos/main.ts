/**
 * `npm run chaos -- [--duration 30m] [--agents 4] [--cache-size 24MiB] [--seed-rng N]`: the
 * soak (see flags.ts for what it does and when it fails). Needs docker-registry and a build in
 * dist/ (npm run chaos builds first). Prints the verdict, writes chaos/results/soak-<time>.json,
 * and stops every process and removes every temp dir, also on failure and SIGINT/SIGTERM.
 */
import { accessSync, constants, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseChaosFlags, USAGE, type ChaosFlags } from './flags.js'
import { formatReport, judge } from './report.js'
import { runSoak } from './soak.js'

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url))
const say = (line = ''): void => void process.stdout.write(`${line}\n`)

async function main(argv: string[]): Promise<number> {
  let flags: ChaosFlags | 'help'
  try {
    flags = parseChaosFlags(argv)
  } catch (err) {
    process.stderr.write(`chaos: ${(err as Error).message}\n\n${USAGE}\n`)
    return 2
  }
  if (flags === 'help') {
    say(USAGE)
    return 0
  }
  if (!onPath('docker-registry')) {
    process.stderr.write('chaos: docker-registry is not installed (apt-get install -y docker-registry)\n')
    return 1
  }
  if (!existsSync(fileURLToPath(new URL('../dist/agent/main.js', import.meta.url)))) {
    process.stderr.write('chaos: dist/ is missing; run "npm run chaos" (it builds first) or "npm run build"\n')
    return 1
  }
  const abort = new AbortController()
  let killSync: (() => void) | undefined
  let exitCode: number | undefined
  // The first SIGINT/SIGTERM stops the soak gracefully (report and cleanup still run); a second one forces it.
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.on(signal, () => {
      if (exitCode !== undefined) {
        process.stderr.write(`\nchaos: ${signal} again, killing everything now\n`)
        killSync?.()
        process.exit(code)
      }
      exitCode = code
      process.stderr.write(`\nchaos: ${signal}, stopping the soak and cleaning up…\n`)
      abort.abort()
    })
  }
  // The last resort for any other way out: synchronous.
  process.on('exit', () => killSync?.())
  process.stdout.on('error', () => {})

  const result = await runSoak({
    durationMs: flags.durationMs,
    agents: flags.agents,
    cacheSizeBytes: flags.cacheSizeBytes,
    rngSeed: flags.rngSeed,
    signal: abort.signal,
    log: (line) => say(`chaos: ${line}`),
    onStarted: (fn) => (killSync = fn),
  })
  killSync = undefined
  const verdict = judge(result)
  say(formatReport(result, verdict))
  mkdirSync(RESULTS_DIR, { recursive: true })
  const path = join(RESULTS_DIR, `soak-${result.startedAt.replace(/[:.]/g, '-')}.json`)
  writeFileSync(path, `${JSON.stringify({ ...result, verdict }, null, 2)}\n`)
  say(`Results: ${path}`)
  return exitCode ?? (verdict.pass ? 0 : 1)
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  },
)
