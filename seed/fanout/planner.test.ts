import { describe, expect, it } from 'vitest'
import { FanoutPlanner, type FanoutDecision } from './planner.js'

const D = 'sha256:' + 'a'.repeat(64)
const E = 'sha256:' + 'b'.repeat(64)
const parentOf = (d: FanoutDecision): string | undefined => (d.from === 'peer' ? d.parent : undefined)

describe('FanoutPlanner', () => {
  it('sends the first `direct` agents to the seed and chains every later one behind a fetcher, shallowest first', () => {
    const planner = new FanoutPlanner({ direct: 2, children: 1 })
    const answers = ['a', 'b', 'c', 'd', 'e', 'f'].map((p) => planner.assign(D, p))
    expect(answers.map((a) => a.from)).toEqual(['seed', 'seed', 'peer', 'peer', 'peer', 'peer'])
    // Two chains: a → c → e, b → d → f.
    expect(answers.map(parentOf)).toEqual([undefined, undefined, 'a', 'b', 'c', 'd'])
    expect(answers.map((a) => (a.from === 'peer' ? a.depth : 0))).toEqual([0, 0, 1, 1, 2, 2])
  })

  it('gives a parent up to `children` followers before going deeper', () => {
    const planner = new FanoutPlanner({ direct: 1, children: 3 })
    const parents = ['a', 'b', 'c', 'd', 'e'].map((p) => parentOf(planner.assign(D, p)))
    expect(parents).toEqual([undefined, 'a', 'a', 'a', 'b'])
  })

  it('sends an agent that asks again (its source broke) to the seed, and frees its slot at the old parent', () => {
    const planner = new FanoutPlanner({ direct: 1, children: 1 })
    planner.assign(D, 'a')
    expect(parentOf(planner.assign(D, 'b'))).toBe('a')
    expect(planner.assign(D, 'b')).toEqual({ from: 'seed', reason: 'again' })
    // a has a free slot again; c follows it rather than b (both at depth 0 now, a first).
    expect(parentOf(planner.assign(D, 'c'))).toBe('a')
    expect(parentOf(planner.assign(D, 'd'))).toBe('b')
  })

  it('never names a parent that is offline, and falls back to the seed when no fetcher can take a follower', () => {
    const online = new Set(['a'])
    const planner = new FanoutPlanner({ direct: 1, children: 1 }, { online: (p) => online.has(p) })
    planner.assign(D, 'a')
    expect(parentOf(planner.assign(D, 'b'))).toBe('a')
    // a is full and b is offline: c comes from the seed.
    expect(planner.assign(D, 'c')).toEqual({ from: 'seed', reason: 'no-parent' })
  })

  it('plans each blob on its own and forgets a blob nobody asked for within the ttl', () => {
    let now = 0
    const planner = new FanoutPlanner({ direct: 1, children: 1, ttlMs: 1000 }, { now: () => now })
    planner.assign(D, 'a')
    expect(planner.assign(E, 'b').from).toBe('seed')
    expect(parentOf(planner.assign(D, 'c'))).toBe('a')
    now = 1500
    expect(planner.assign(D, 'x')).toEqual({ from: 'seed', reason: 'first' })
    expect(planner.blobs).toBe(1)
  })

  it('tracks at most maxBlobs blobs, dropping the least recently asked for', () => {
    const planner = new FanoutPlanner({ direct: 1, maxBlobs: 2 })
    planner.assign(D, 'a')
    planner.assign(E, 'a')
    planner.assign(D, 'b')
    planner.assign('sha256:' + 'c'.repeat(64), 'a')
    expect(planner.blobs).toBe(2)
    // D survived (asked for most recently before the third blob), so c follows a chain there.
    expect(planner.assign(D, 'c').from).toBe('peer')
  })

  it('answers "from the seed" to everyone when direct is 0 (fan-out off), and rejects bad bounds', () => {
    const planner = new FanoutPlanner({ direct: 0 })
    expect(planner.assign(D, 'a')).toEqual({ from: 'seed', reason: 'off' })
    expect(planner.assign(D, 'b')).toEqual({ from: 'seed', reason: 'off' })
    expect(() => new FanoutPlanner({ children: 0 })).toThrow(RangeError)
    expect(() => new FanoutPlanner({ direct: 1.5 })).toThrow(RangeError)
  })
})
