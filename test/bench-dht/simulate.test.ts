import { describe, expect, it } from 'vitest'
import { simulateLookups } from '../../bench/dht/simulate.js'

const kad = { k: 20, alpha: 10, disjointPaths: 20, prefixLength: 6 }

describe('simulateLookups (the DHT projection model)', () => {
  it('finds every record in one hop when every table holds every node', () => {
    const r = simulateLookups({ ...kad, nodes: 64, lookups: 20 })
    expect(r.found).toBe(20)
    expect(r.hopsComplete.p99).toBe(1)
    expect(r.messagesComplete.mean).toBeLessThanOrEqual(63)
  })

  it('needs more hops and messages once the fleet outgrows a table of 2^6 × K peers, and still finds the records', () => {
    const r = simulateLookups({ ...kad, nodes: 10_000, lookups: 5 })
    expect(r.found).toBe(5)
    expect(r.hopsComplete.p50).toBeGreaterThan(1)
    expect(r.messagesComplete.mean).toBeGreaterThan(20)
  })
})
