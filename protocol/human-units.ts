/** Sizes, durations and rates for people to read (`3.2 GiB`, `7m12s`, `12.3 MB/s`). No I/O. */

const IEC_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const

/**
 * `512 B`, `1.5 KiB`, `3.2 GiB`, `10 GiB`: binary units, one decimal below 10, none above.
 * Negative or non-finite input is shown as given (`-1 B`, `NaN B`).
 */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 1024) return `${Number.isFinite(bytes) ? Math.round(bytes) : bytes} B`
  let value = bytes
  let unit = 0
  while (unit < IEC_UNITS.length - 1 && value >= 1024) {
    value /= 1024
    unit++
  }
  let text = value < 10 ? value.toFixed(1) : Math.round(value).toString()
  // 1023.7 KiB rounds to 1024: say 1.0 MiB instead.
  if (Number(text) >= 1024 && unit < IEC_UNITS.length - 1) {
    unit++
    text = (Number(text) / 1024).toFixed(1)
  }
  return `${text} ${IEC_UNITS[unit]}`
}

/**
 * A duration's magnitude, two units at most: `850ms`, `4.2s`, `45s`, `7m12s`, `2h05m`, `3d04h`.
 * The sign is the caller's to say ("expired 3m ago").
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms)
  const abs = Math.abs(ms)
  if (abs < 1000) return `${Math.round(abs)}ms`
  if (abs < 10_000) return `${(Math.floor(abs / 100) / 10).toFixed(1)}s`
  const s = Math.floor(abs / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`
  return `${Math.floor(s / 86_400)}d${pad(Math.floor(s / 3600) % 24)}h`
}

/** Decimal megabytes per second with one decimal, `12.3 MB/s`; `0.0 MB/s` when no time has passed. */
export function formatRate(bytes: number, ms: number): string {
  if (!(ms > 0)) return '0.0 MB/s'
  return `${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`
}

/** `part` as a whole percentage of `whole` (0 for an empty whole). */
export function percent(part: number, whole: number): number {
  return whole > 0 ? Math.floor((100 * part) / whole) : 0
}

function pad(n: number): string {
  return n.toString().padStart(2, '0')
}
