import type { PollenError } from '../../protocol/errors.js'
import { RETRY_BASE_DELAY_MS } from './constants.js'

/**
 * Thrown inside one attempt when another attempt may succeed (5xx, 429, connection failure,
 * timeout). `final` is what the caller sees when no attempt is left.
 */
export class RetryableError extends Error {
  constructor(
    readonly final: PollenError,
    /** The upstream's `Retry-After`, in ms, when it sent one. */
    readonly retryAfterMs?: number,
  ) {
    super(final.message, { cause: final })
    this.name = 'RetryableError'
  }
}

/**
 * Parses `Retry-After`: delay-seconds or an HTTP-date. Returns ms to wait (0 for a date in
 * the past), or undefined when absent or unparseable.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  if (typeof value !== 'string') return undefined
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v) * 1000
  if (!/^[A-Za-z]{3}, /.test(v)) return undefined
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/** Exponential backoff with jitter: retry n (0-based) waits between 50 % and 100 % of base·2ⁿ. */
export function backoffDelay(retry: number, baseMs: number = RETRY_BASE_DELAY_MS, random: () => number = Math.random): number {
  const ceiling = baseMs * 2 ** retry
  return Math.round(ceiling / 2 + (random() * ceiling) / 2)
}

/** Resolves after `ms`, or rejects with `signal`'s reason as soon as it aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
