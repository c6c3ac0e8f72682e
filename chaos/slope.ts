/** Least-squares slopes of sampled series. No I/O. */

export interface Point {
  x: number
  y: number
}

export interface SlopeFit {
  /** dy/dx; NaN when the points cannot define one (fewer than two distinct x in every series). */
  slope: number
  /** Standard error of the slope; NaN when there are too few points to estimate it. */
  standardError: number
  /** Points used. */
  n: number
}

/** The ordinary least-squares slope of y over x; NaN for fewer than two points or a constant x. */
export function slope(points: readonly Point[]): number {
  return pooledSlope([points]).slope
}

/**
 * One slope shared by several series, each with its own intercept (the "within" estimator):
 * Σ Sxy / Σ Sxx over the series, each centred on its own means. A process that was restarted
 * gives one series per incarnation, so the drop at a restart does not pass for a negative
 * trend. Series with fewer than two points add nothing. Centring keeps large x (epoch
 * milliseconds) exact enough.
 */
export function pooledSlope(series: ReadonlyArray<readonly Point[]>): SlopeFit {
  let sxx = 0
  let sxy = 0
  let n = 0
  let groups = 0
  const used: Array<{ points: readonly Point[]; mx: number; my: number }> = []
  for (const points of series) {
    if (points.length < 2) continue
    const mx = mean(points.map((p) => p.x))
    const my = mean(points.map((p) => p.y))
    for (const p of points) {
      sxx += (p.x - mx) ** 2
      sxy += (p.x - mx) * (p.y - my)
    }
    n += points.length
    groups++
    used.push({ points, mx, my })
  }
  if (!(sxx > 0)) return { slope: Number.NaN, standardError: Number.NaN, n }
  const b = sxy / sxx
  let sse = 0
  for (const { points, mx, my } of used) for (const p of points) sse += (p.y - my - b * (p.x - mx)) ** 2
  const dof = n - groups - 1
  return { slope: b, standardError: dof > 0 ? Math.sqrt(sse / dof / sxx) : Number.NaN, n }
}

function mean(values: number[]): number {
  let sum = 0
  for (const v of values) sum += v
  return sum / values.length
}

/**
 * The lowest y in each bucket of `width` along x, at the bucket's middle. A heap or RSS sampled
 * every few seconds is a GC sawtooth; its troughs are what the process keeps alive, so a leak
 * raises them while a busy minute only raises the peaks. A bucket with fewer than `minShare` of
 * the samples of a typical one (the run's or a life's first or last seconds) holds no trough:
 * left out. Pass 0 for points that are all troughs already (samples right after a major GC).
 */
export function floors(points: readonly Point[], width: number, minShare = 0.5): Point[] {
  const byBucket = new Map<number, { low: number; n: number }>()
  for (const p of points) {
    const bucket = Math.floor(p.x / width)
    const b = byBucket.get(bucket)
    if (b === undefined) byBucket.set(bucket, { low: p.y, n: 1 })
    else {
      b.low = Math.min(b.low, p.y)
      b.n++
    }
  }
  const counts = [...byBucket.values()].map((b) => b.n).sort((x, y) => x - y)
  const typical = counts[Math.floor(counts.length / 2)] ?? 0
  return [...byBucket.entries()]
    .filter(([, b]) => b.n >= typical * minShare)
    .sort(([x], [y]) => x - y)
    .map(([bucket, b]) => ({ x: (bucket + 0.5) * width, y: b.low }))
}

/**
 * The Theil–Sen slope: the median of the slopes between every pair of points with distinct x.
 * Robust: up to about 29 % of the points may be outliers (a minute with no GC trough) without
 * moving it far, where one such point pulls least squares. NaN for fewer than two distinct x.
 */
export function theilSen(points: readonly Point[]): SlopeFit {
  const slopes: number[] = []
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const dx = points[j]!.x - points[i]!.x
      if (dx !== 0) slopes.push((points[j]!.y - points[i]!.y) / dx)
    }
  }
  if (slopes.length === 0) return { slope: Number.NaN, standardError: Number.NaN, n: points.length }
  slopes.sort((a, b) => a - b)
  const mid = slopes.length / 2
  const slope = slopes.length % 2 === 1 ? slopes[Math.floor(mid)]! : (slopes[mid - 1]! + slopes[mid]!) / 2
  return { slope, standardError: Number.NaN, n: points.length }
}
