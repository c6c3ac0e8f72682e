import type { Logger } from 'pino'

/**
 * On the first SIGINT or SIGTERM, runs `close` and exits 0 (1 if closing failed). A second
 * signal while closing is ignored. Only a composition root (main.ts) calls this.
 */
export function stopOnSignals(logger: Logger, close: () => Promise<void>): void {
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
}
