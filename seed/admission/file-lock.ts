import { open, rm, stat } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { LOCK_STALE_MS, LOCK_TIMEOUT_MS } from './constants.js'
import { AdmissionLockTimeoutError } from './errors.js'

export interface FileLockInit {
  /** The lock file, created exclusively while held. */
  path: string
  staleMs?: number
  timeoutMs?: number
}

/**
 * Serialises read-modify-write cycles on one state file: callers in this process queue
 * behind each other, and an exclusively created `<file>.lock` keeps out other processes
 * (a `pollen-seed join-token create` or `revoke` run beside the running seed).
 * The cross-process part is advisory; a lock older than `staleMs` is taken over.
 */
export class FileLock {
  readonly #path: string
  readonly #staleMs: number
  readonly #timeoutMs: number
  #tail: Promise<unknown> = Promise.resolve()

  constructor(init: FileLockInit) {
    this.#path = init.path
    this.#staleMs = init.staleMs ?? LOCK_STALE_MS
    this.#timeoutMs = init.timeoutMs ?? LOCK_TIMEOUT_MS
  }

  /** Runs `fn` while holding the lock; rejects with AdmissionLockTimeoutError or `fn`'s error. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(async () => {
      await this.#acquire()
      try {
        return await fn()
      } finally {
        await rm(this.#path, { force: true })
      }
    })
    this.#tail = result.catch(() => undefined)
    return result
  }

  async #acquire(): Promise<void> {
    const deadline = Date.now() + this.#timeoutMs
    for (;;) {
      try {
        const fh = await open(this.#path, 'wx', 0o600)
        await fh.writeFile(`${process.pid}\n`)
        await fh.close()
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const held = await stat(this.#path).catch(() => undefined)
      if (held !== undefined && Date.now() - held.mtimeMs > this.#staleMs) {
        await rm(this.#path, { force: true })
        continue
      }
      if (Date.now() >= deadline) throw new AdmissionLockTimeoutError(this.#path)
      await sleep(5 + Math.floor(Math.random() * 20))
    }
  }
}
