import { setTimeout as sleep } from 'node:timers/promises'

/**
 * A token bucket shared by every upload: `take(n)` resolves once n bytes may be sent at
 * `bytesPerSecond` (bursts up to one second's worth). A rate of 0 means unlimited.
 */
export class RateLimiter {
  readonly #rate: number
  readonly #now: () => number
  #tokens: number
  #last: number

  constructor(bytesPerSecond: number, now: () => number = () => performance.now()) {
    this.#rate = bytesPerSecond
    this.#now = now
    this.#tokens = bytesPerSecond
    this.#last = now()
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.#rate <= 0) return
    for (;;) {
      const now = this.#now()
      this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#last) / 1000) * this.#rate)
      this.#last = now
      if (this.#tokens >= Math.min(bytes, this.#rate)) {
        this.#tokens -= bytes
        return
      }
      const waitMs = ((Math.min(bytes, this.#rate) - this.#tokens) / this.#rate) * 1000
      await sleep(Math.max(1, Math.ceil(waitMs)), undefined, { signal })
    }
  }
}
