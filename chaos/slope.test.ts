import { describe, expect, it } from 'vitest'
import { floors, pooledSlope, slope, theilSen, type Point } from './slope.js'

const line = (xs: number[], m: number, c: number): Point[] => xs.map((x) => ({ x, y: m * x + c }))

describe('slope', () => {
  it('recovers the slope of points on a line', () => {
    expect(slope(line([0, 1, 2, 3, 4], 2.5, -7))).toBeCloseTo(2.5, 12)
    expect(slope(line([3, -1, 10], -0.25, 4))).toBeCloseTo(-0.25, 12)
  })

  it('is zero for a flat series and NaN when x does not vary or there are fewer than two points', () => {
    expect(slope(line([1, 2, 3], 0, 42))).toBe(0)
    expect(slope([{ x: 5, y: 1 }, { x: 5, y: 9 }])).toBeNaN()
    expect(slope([{ x: 1, y: 1 }])).toBeNaN()
    expect(slope([])).toBeNaN()
  })

  it('matches the textbook least-squares answer for noisy points', () => {
    // x = 1..5, y = 2, 4, 5, 4, 5: Sxy = 6, Sxx = 10.
    expect(slope([2, 4, 5, 4, 5].map((y, i) => ({ x: i + 1, y })))).toBeCloseTo(0.6, 12)
  })

  it('stays exact for epoch-millisecond x values', () => {
    const t0 = 1_764_300_000_000
    const points = Array.from({ length: 200 }, (_, i) => ({ x: t0 + i * 5_000, y: 100 + i * 0.01 }))
    expect(slope(points) * 5_000).toBeCloseTo(0.01, 9)
  })

  it('ignores symmetric noise around a flat level', () => {
    const points = Array.from({ length: 100 }, (_, i) => ({ x: i, y: 50 + (i % 2 === 0 ? 3 : -3) }))
    expect(Math.abs(slope(points))).toBeLessThan(0.01)
  })
})

describe('pooledSlope', () => {
  it('shares one slope between series with different intercepts, so a restart is not a downward trend', () => {
    // A process growing 1 unit per x that restarts at x = 10 (from 60 back to 20).
    const before = line([0, 2, 4, 6, 8, 10], 1, 50)
    const after = line([12, 14, 16, 18, 20], 1, 8)
    expect(slope([...before, ...after])).toBeLessThan(0)
    const fit = pooledSlope([before, after])
    expect(fit.slope).toBeCloseTo(1, 12)
    expect(fit.n).toBe(11)
    expect(fit.standardError).toBeCloseTo(0, 9)
  })

  it('skips series with fewer than two points and reports NaN when nothing is left', () => {
    expect(pooledSlope([line([1, 2, 3], 3, 0), [{ x: 9, y: 1000 }]]).slope).toBeCloseTo(3, 12)
    expect(pooledSlope([[{ x: 1, y: 1 }], []]).slope).toBeNaN()
    expect(pooledSlope([]).slope).toBeNaN()
  })

  it('gives a standard error that shrinks with more samples', () => {
    const noisy = (n: number): Point[] => Array.from({ length: n }, (_, i) => ({ x: i / n, y: (i * 7919) % 13 }))
    const small = pooledSlope([noisy(20)])
    const large = pooledSlope([noisy(2_000)])
    expect(small.standardError).toBeGreaterThan(large.standardError)
    expect(Number.isFinite(large.standardError)).toBe(true)
  })
})

describe('floors', () => {
  it('keeps the lowest point of each bucket, so a GC sawtooth over a flat floor has no slope', () => {
    const sawtooth = Array.from({ length: 600 }, (_, i) => ({ x: i, y: 100 + (i % 37) * 3 }))
    const lows = floors(sawtooth, 60)
    expect(lows).toHaveLength(10)
    expect(lows.every((p) => p.y === 100)).toBe(true)
    expect(lows[0]!.x).toBe(30)
    expect(slope(lows)).toBe(0)
  })

  it('follows a floor that rises under the sawtooth, as a leak does', () => {
    const leaking = Array.from({ length: 600 }, (_, i) => ({ x: i, y: 100 + i * 0.5 + (i % 37) * 3 }))
    expect(slope(floors(leaking, 60))).toBeCloseTo(0.5, 1)
  })
  it('leaves out a bucket with too few samples to hold a trough, such as the run’s last seconds', () => {
    const points = Array.from({ length: 600 }, (_, i) => ({ x: i, y: 100 + (i % 37) * 3 }))
    points.push({ x: 600, y: 400 })
    const lows = floors(points, 60)
    expect(lows).toHaveLength(10)
    expect(slope(lows)).toBe(0)
  })
})

describe('theilSen', () => {
  it('recovers the slope of points on a line', () => {
    expect(theilSen(line([0, 1, 2, 3, 4, 5], 1.5, 3)).slope).toBeCloseTo(1.5, 12)
  })

  it('is not pulled by two high points at the end, where least squares is', () => {
    const flat = line([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], 0, 170)
    flat[10]!.y = 222
    flat[11]!.y = 208
    expect(Math.abs(theilSen(flat).slope)).toBeLessThan(0.01)
    expect(slope(flat)).toBeGreaterThan(1)
  })

  it('is NaN without two distinct x', () => {
    expect(theilSen([{ x: 1, y: 1 }]).slope).toBeNaN()
    expect(theilSen([{ x: 1, y: 1 }, { x: 1, y: 5 }]).slope).toBeNaN()
  })
})
