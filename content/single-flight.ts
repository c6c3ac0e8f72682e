/**
 * Collapses concurrent calls with the same key into one: later callers get the first
 * caller's promise until it settles. Owned by a component instance, never global.
 */
export class SingleFlight<T> {
  readonly #inflight = new Map<string, Promise<T>>()

  run(key: string, fn: () => Promise<T>): Promise<T> {
    const existing = this.#inflight.get(key)
    if (existing !== undefined) return existing
    const promise = fn().finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, promise)
    return promise
  }
}
