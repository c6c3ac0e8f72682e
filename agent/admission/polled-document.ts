import type { Logger } from 'pino'
import { SeedUnavailableError } from './errors.js'
import { seedFailure, seedRequest } from './seed-http.js'
import { readStateFile, writeStateFile } from './state-file.js'

export interface PolledDocumentInit<T> {
  /** The seed endpoint's full URL. */
  url: string
  /** Where the last good copy is kept. */
  statePath: string
  intervalMs: number
  /**
   * When given, an answer's `Cache-Control: max-age` shortens the wait before the next poll
   * (never below this, never above `intervalMs`): the seed says how fresh its answer must be.
   */
  minIntervalMs?: number
  requestTimeoutMs: number
  maxBytes: number
  /**
   * Returns the document for a body (the seed's answer, or the persisted copy), or throws
   * SeedAnswerInvalidError. Must accept what `toJson` produces.
   */
  parse: (body: unknown) => T
  /** The JSON form persisted and compared to detect a change. */
  toJson: (value: T) => unknown
}

export interface PolledDocumentComponents<T> {
  logger: Logger
  now?: () => number
  /** Called when the document changes (loaded from disk or fetched with different content). */
  onChange?: (value: T) => void
}

/**
 * A JSON document the agent polls from the seed and keeps while the seed is down: the last
 * good copy is persisted and loaded at start. A failed fetch keeps the current copy.
 */
export class PolledDocument<T> {
  readonly #init: PolledDocumentInit<T>
  readonly #c: PolledDocumentComponents<T>
  readonly #now: () => number
  readonly #abort = new AbortController()
  #value: T | undefined
  #json: string | undefined
  #fetchedAt: number | undefined
  #lastAttemptAt = -Infinity
  #inflight: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #failing = false
  /** The wait before the next poll: intervalMs, or less when the seed's max-age says so. */
  #nextPollMs: number

  constructor(init: PolledDocumentInit<T>, c: PolledDocumentComponents<T>) {
    this.#init = init
    this.#c = c
    this.#now = c.now ?? Date.now
    this.#nextPollMs = init.intervalMs
  }

  /** The current copy; undefined until one was loaded or fetched. */
  get value(): T | undefined {
    return this.#value
  }

  /** When the current copy was fetched from the seed (ms since the epoch). */
  get fetchedAt(): number | undefined {
    return this.#fetchedAt
  }

  /**
   * Loads the persisted copy, then polls every `intervalMs` (or sooner, see `minIntervalMs`). Awaits the first fetch only when
   * nothing was loaded (so at most `requestTimeoutMs`). Never throws for the seed being down
   * or the state file being unreadable; both are logged.
   */
  async start(): Promise<void> {
    await this.#load()
    if (this.#value === undefined) await this.#pollAndSchedule()
    else void this.#pollAndSchedule()
  }

  /**
   * Fetches the document now (joining a fetch already under way). Rejects with
   * SeedUnavailableError or SeedAnswerInvalidError; the current copy is kept then.
   */
  refresh(): Promise<void> {
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = undefined
    })
    return this.#inflight
  }

  /** Starts a refresh unless one started within `minIntervalMs`. Returns whether it did. Failures are logged. */
  refreshSoon(minIntervalMs: number): boolean {
    if (this.#inflight !== undefined || this.#now() - this.#lastAttemptAt < minIntervalMs) return false
    void this.#poll()
    return true
  }

  /** Stops polling and aborts a fetch under way. */
  async stop(): Promise<void> {
    clearTimeout(this.#timer)
    this.#abort.abort()
    await this.#inflight?.catch(() => {})
  }

  async #pollAndSchedule(): Promise<void> {
    await this.#poll()
    if (this.#abort.signal.aborted) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => void this.#pollAndSchedule(), this.#nextPollMs)
    this.#timer.unref()
  }

  async #poll(): Promise<void> {
    if (this.#abort.signal.aborted) return
    try {
      await this.refresh()
      if (this.#failing) this.#c.logger.info('seed reachable again')
      this.#failing = false
    } catch (err) {
      if (this.#abort.signal.aborted) return
      // The first failure of a run is a warning; repeats every interval would only be noise.
      const level = this.#failing ? 'debug' : 'warn'
      this.#c.logger[level]({ err: (err as Error).message, cachedFrom: this.#fetchedAt }, 'could not fetch from the seed; keeping the cached copy')
      this.#failing = true
    }
  }

  async #fetch(): Promise<void> {
    this.#lastAttemptAt = this.#now()
    const answer = await seedRequest(this.#init.url, {
      method: 'GET',
      timeoutMs: this.#init.requestTimeoutMs,
      signal: this.#abort.signal,
      maxBytes: this.#init.maxBytes,
    })
    if (answer.status !== 200) {
      // A GET is never a verdict on this agent: any failure is the seed being unavailable.
      const failure = seedFailure(answer)
      throw failure instanceof SeedUnavailableError ? failure : new SeedUnavailableError(failure.message)
    }
    const value = this.#init.parse(answer.body)
    if (this.#abort.signal.aborted) return
    const { minIntervalMs } = this.#init
    if (minIntervalMs !== undefined) {
      this.#nextPollMs = answer.maxAgeS === undefined ? this.#init.intervalMs : Math.min(this.#init.intervalMs, Math.max(minIntervalMs, answer.maxAgeS * 1000))
    }
    this.#fetchedAt = this.#now()
    const json = JSON.stringify(this.#init.toJson(value))
    if (json === this.#json) return
    this.#set(value, json)
    try {
      await writeStateFile(this.#init.statePath, { fetchedAt: this.#fetchedAt, document: JSON.parse(json) as unknown })
    } catch (err) {
      this.#c.logger.warn({ err: (err as Error).message, path: this.#init.statePath }, 'could not persist the copy; it stays in memory')
    }
  }

  async #load(): Promise<void> {
    let state
    try {
      state = await readStateFile(this.#init.statePath)
    } catch (err) {
      this.#c.logger.warn({ err: (err as Error).message, path: this.#init.statePath }, 'could not read the persisted copy')
      return
    }
    if (state === undefined) return
    try {
      const value = this.#init.parse(state.document)
      this.#fetchedAt = typeof state.fetchedAt === 'number' ? state.fetchedAt : undefined
      this.#set(value, JSON.stringify(this.#init.toJson(value)))
      this.#c.logger.debug({ fetchedAt: this.#fetchedAt }, 'loaded the persisted copy')
    } catch (err) {
      this.#c.logger.warn({ err: (err as Error).message, path: this.#init.statePath }, 'ignoring an invalid persisted copy')
    }
  }

  #set(value: T, json: string): void {
    this.#value = value
    this.#json = json
    this.#c.onChange?.(value)
  }
}
