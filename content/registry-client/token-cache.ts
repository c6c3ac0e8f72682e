import { raceAbort } from '../abort.js'
import { TOKEN_SAFETY_MARGIN_MS } from './constants.js'

/** A bearer token as issued by a token endpoint. */
export interface IssuedToken {
  token: string
  /** Lifetime from issue, in ms. */
  lifetimeMs: number
}

export interface TokenCacheInit {
  /** Dropped this long before expiry (capped at 10 % of the lifetime). Default TOKEN_SAFETY_MARGIN_MS. */
  safetyMarginMs?: number
}

export interface TokenCacheComponents {
  now?: () => number
}

/** The cache key of a token: one per registry, token service and scope. */
export function tokenKey(registry: string, service: string, scope: string): string {
  return JSON.stringify([registry, service, scope])
}

/**
 * Bearer tokens by key until shortly before they expire, with single-flight issue: concurrent
 * `obtain` calls for one key share one token request. Owned by one UpstreamRegistry.
 */
export class TokenCache {
  readonly #margin: number
  readonly #now: () => number
  readonly #tokens = new Map<string, { token: string; expiresAt: number }>()
  readonly #inflight = new Map<string, Promise<string>>()

  constructor(init: TokenCacheInit = {}, components: TokenCacheComponents = {}) {
    this.#margin = init.safetyMarginMs ?? TOKEN_SAFETY_MARGIN_MS
    this.#now = components.now ?? Date.now
  }

  /** The cached token for `key`, or undefined when there is none or it is about to expire. */
  get(key: string): string | undefined {
    const entry = this.#tokens.get(key)
    if (entry === undefined) return undefined
    if (this.#now() < entry.expiresAt) return entry.token
    this.#tokens.delete(key)
    return undefined
  }

  /** Forgets `key`'s token when it is still `token` (the upstream rejected it). */
  invalidate(key: string, token: string): void {
    if (this.#tokens.get(key)?.token === token) this.#tokens.delete(key)
  }

  /**
   * Returns the cached token for `key`, or the one `issue` returns; concurrent callers of one
   * key share one `issue` call. `signal` only stops this caller's wait (rejecting with its
   * reason), never the shared request. Rejects with `issue`'s error.
   */
  async obtain(key: string, issue: () => Promise<IssuedToken>, signal?: AbortSignal): Promise<string> {
    const cached = this.get(key)
    if (cached !== undefined) return cached
    let pending = this.#inflight.get(key)
    if (pending === undefined) {
      pending = issue()
        .then(({ token, lifetimeMs }) => {
          const ttl = lifetimeMs - Math.min(this.#margin, lifetimeMs / 10)
          if (ttl > 0) this.#tokens.set(key, { token, expiresAt: this.#now() + ttl })
          return token
        })
        .finally(() => this.#inflight.delete(key))
      this.#inflight.set(key, pending)
    }
    return signal === undefined ? pending : raceAbort(pending, signal)
  }

  /** Tokens held now, for redacting them from anything the upstream echoes. */
  tokens(): string[] {
    return [...this.#tokens.values()].map((e) => e.token)
  }
}
