import type { Logger } from 'pino'
import { request } from 'undici'
import { scrubSecrets } from '../content/log-options.js'
import { SEED_PROBE_INTERVAL_MS, SEED_PROBE_TIMEOUT_MS } from './constants.js'

export interface SeedReachabilityInit {
  /** The seed's base URL; `GET <url>/healthz` is the probe. */
  seedUrl: string
  intervalMs?: number
  /** Deadline of one probe. */
  timeoutMs?: number
}

export interface SeedReachabilityComponents {
  logger: Logger
  now?: () => number
  /** One probe: resolves with the HTTP status, rejects when no answer came. Default: GET /healthz with undici. */
  probe?: (signal: AbortSignal) => Promise<number>
  /** Called when reachability changes (and after the first probe). */
  onChange?: (reachable: boolean) => void
}

/**
 * Whether the agent's seed answers, from a probe every `intervalMs` (`GET /healthz`, answered
 * by the seed before any admission check). Any HTTP answer counts as reachable. The result
 * drives pollen_agent_seed_up, the `mode` of /readyz (`cache-only` while unreachable) and /v1/status.
 */
export class SeedReachability {
  readonly #url: string
  readonly #intervalMs: number
  readonly #timeoutMs: number
  readonly #c: SeedReachabilityComponents
  readonly #now: () => number
  readonly #stopped = new AbortController()
  #timer: NodeJS.Timeout | undefined
  #reachable: boolean | undefined
  #checkedAt: number | undefined
  #lastError: { time: number; message: string } | undefined
  #probing: Promise<void> | undefined

  constructor(init: SeedReachabilityInit, c: SeedReachabilityComponents) {
    this.#url = `${init.seedUrl.replace(/\/+$/, '')}/healthz`
    this.#intervalMs = init.intervalMs ?? SEED_PROBE_INTERVAL_MS
    this.#timeoutMs = init.timeoutMs ?? SEED_PROBE_TIMEOUT_MS
    if (!(this.#intervalMs > 0 && this.#timeoutMs > 0)) throw new RangeError('seed probe interval and timeout must be positive')
    this.#c = c
    this.#now = c.now ?? Date.now
  }

  /** True when the last probe got an answer; false before the first probe ended or after a failed one. */
  get reachable(): boolean {
    return this.#reachable === true
  }

  /** True once a probe ended and the seed did not answer it. */
  get unreachable(): boolean {
    return this.#reachable === false
  }

  /** When the last probe ended (ms since the epoch). */
  get checkedAt(): number | undefined {
    return this.#checkedAt
  }

  /** The last failed probe; kept after the seed answers again. */
  get lastError(): { time: number; message: string } | undefined {
    return this.#lastError
  }

  /** Probes once (resolves when that probe ended, within the probe deadline) and then every intervalMs. */
  async start(): Promise<void> {
    this.#timer = setInterval(() => void this.check(), this.#intervalMs)
    this.#timer.unref()
    await this.check()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#stopped.abort()
  }

  /** Runs one probe now (or joins the one under way). Never rejects. */
  check(): Promise<void> {
    this.#probing ??= this.#probe().finally(() => {
      this.#probing = undefined
    })
    return this.#probing
  }

  async #probe(): Promise<void> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), this.#stopped.signal])
    let failure: string | undefined
    try {
      await (this.#c.probe ?? this.#get.bind(this))(signal)
    } catch (err) {
      failure = signal.aborted ? `no answer within ${this.#timeoutMs} ms` : describe(err)
    }
    if (this.#stopped.signal.aborted) return
    const now = this.#now()
    const was = this.#reachable
    this.#checkedAt = now
    this.#reachable = failure === undefined
    if (failure !== undefined) this.#lastError = { time: now, message: scrubSecrets(`seed ${new URL(this.#url).host} unreachable: ${failure}`) }
    if (was === this.#reachable) return
    if (failure !== undefined) this.#c.logger.warn({ err: failure }, 'the seed does not answer; serving cached and peer content only')
    else if (was === false) this.#c.logger.info('the seed answers again')
    this.#c.onChange?.(this.#reachable)
  }

  async #get(signal: AbortSignal): Promise<number> {
    const res = await request(this.#url, { method: 'GET', signal })
    await res.body.dump()
    return res.statusCode
  }
}

function describe(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null
  const code = typeof e?.code === 'string' && /^[A-Z_]{1,40}$/.test(e.code) ? e.code : undefined
  const message = typeof e?.message === 'string' ? e.message.slice(0, 200) : String(err)
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message
}
