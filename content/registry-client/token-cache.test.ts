import { describe, expect, it } from 'vitest'
import { TokenCache, tokenKey, type IssuedToken } from './token-cache.js'

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => void (t += ms) }
}

describe('TokenCache', () => {
  it('keeps a token until shortly before it expires', async () => {
    const c = clock()
    const cache = new TokenCache({ safetyMarginMs: 10_000 }, { now: c.now })
    const key = tokenKey('r', 's', 'repository:a:pull')
    expect(await cache.obtain(key, async () => ({ token: 't1', lifetimeMs: 60_000 }))).toBe('t1')
    c.advance(53_999)
    expect(cache.get(key)).toBe('t1')
    c.advance(1)
    expect(cache.get(key)).toBeUndefined()
  })

  it('keys tokens by registry, service and scope', async () => {
    const cache = new TokenCache()
    await cache.obtain(tokenKey('r', 's', 'repository:a:pull'), async () => ({ token: 'a', lifetimeMs: 60_000 }))
    expect(cache.get(tokenKey('r', 's', 'repository:b:pull'))).toBeUndefined()
    expect(cache.get(tokenKey('r2', 's', 'repository:a:pull'))).toBeUndefined()
    expect(cache.get(tokenKey('r', 's2', 'repository:a:pull'))).toBeUndefined()
    expect(cache.get(tokenKey('r', 's', 'repository:a:pull'))).toBe('a')
  })

  it('shares one issue call between concurrent callers of a key', async () => {
    const cache = new TokenCache()
    let calls = 0
    let release!: (t: IssuedToken) => void
    const issue = (): Promise<IssuedToken> => {
      calls++
      return new Promise((resolve) => (release = resolve))
    }
    const waiting = Promise.all([1, 2, 3].map(() => cache.obtain('k', issue)))
    release({ token: 'shared', lifetimeMs: 60_000 })
    expect(await waiting).toEqual(['shared', 'shared', 'shared'])
    expect(calls).toBe(1)
  })

  it('does not cache a token whose lifetime is used up by the margin, nor a failed issue', async () => {
    const cache = new TokenCache()
    await cache.obtain('k', async () => ({ token: 'brief', lifetimeMs: 0 }))
    expect(cache.get('k')).toBeUndefined()
    await expect(cache.obtain('k', async () => Promise.reject(new Error('down')))).rejects.toThrow('down')
    expect(await cache.obtain('k', async () => ({ token: 'next', lifetimeMs: 60_000 }))).toBe('next')
  })

  it('lets one waiter give up with its abort reason while the shared request goes on', async () => {
    const cache = new TokenCache()
    let release!: (t: IssuedToken) => void
    const issue = (): Promise<IssuedToken> => new Promise((resolve) => (release = resolve))
    const ac = new AbortController()
    const first = cache.obtain('k', issue, ac.signal)
    const second = cache.obtain('k', issue)
    const reason = new Error('client went away')
    ac.abort(reason)
    await expect(first).rejects.toBe(reason)
    release({ token: 't', lifetimeMs: 60_000 })
    expect(await second).toBe('t')
  })

  it('forgets a rejected token only if it is still the cached one', async () => {
    const cache = new TokenCache()
    await cache.obtain('k', async () => ({ token: 'new', lifetimeMs: 60_000 }))
    cache.invalidate('k', 'old')
    expect(cache.get('k')).toBe('new')
    cache.invalidate('k', 'new')
    expect(cache.get('k')).toBeUndefined()
  })
})
