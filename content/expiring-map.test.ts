import { describe, expect, it } from 'vitest'
import { ExpiringMap } from './expiring-map.js'

describe('ExpiringMap', () => {
  it('returns a value until its time is up, then forgets it', () => {
    let now = 1_000
    const map = new ExpiringMap<string>({ ttlMs: 100, maxEntries: 10 }, () => now)
    map.set('a', 'x')
    now += 99
    expect(map.get('a')).toBe('x')
    expect(map.has('a')).toBe(true)
    now += 1
    expect(map.get('a')).toBeUndefined()
    expect(map.size).toBe(0)
  })

  it('counts an entry’s time from its last set, and honours a ttl given to set()', () => {
    let now = 0
    const map = new ExpiringMap<number>({ ttlMs: 100, maxEntries: 10 }, () => now)
    map.set('a', 1)
    now = 80
    map.set('a', 2)
    map.set('short', 3, 10)
    now = 150
    expect(map.get('a')).toBe(2)
    expect(map.get('short')).toBeUndefined()
  })

  it('holds at most maxEntries however many fresh keys arrive, dropping the least recently set', () => {
    const map = new ExpiringMap<true>({ ttlMs: 60_000, maxEntries: 3 }, () => 0)
    for (let i = 0; i < 10_000; i++) map.set(`digest-${i}`, true)
    expect(map.size).toBe(3)
    expect([...map.entries()].map(([k]) => k)).toEqual(['digest-9997', 'digest-9998', 'digest-9999'])
    map.set('digest-9997', true)
    map.set('new', true)
    expect([...map.entries()].map(([k]) => k)).toEqual(['digest-9999', 'digest-9997', 'new'])
  })

  it('drops expired entries when new ones are set, and lists only live ones', () => {
    let now = 0
    const map = new ExpiringMap<true>({ ttlMs: 10, maxEntries: 100 }, () => now)
    for (let i = 0; i < 50; i++) map.set(`old-${i}`, true)
    now = 20
    expect([...map.entries()]).toEqual([])
    map.set('fresh', true)
    expect(map.size).toBe(1)
  })

  it('rejects a negative ttl and a maxEntries that is not a positive integer', () => {
    expect(() => new ExpiringMap({ ttlMs: -1, maxEntries: 1 })).toThrow(RangeError)
    expect(() => new ExpiringMap({ ttlMs: 1, maxEntries: 0 })).toThrow(RangeError)
    expect(() => new ExpiringMap({ ttlMs: 1, maxEntries: 1.5 })).toThrow(RangeError)
  })
})
