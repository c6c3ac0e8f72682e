/** Human-readable durations and sizes for configuration (`10m`, `20GiB`). No I/O. */

export class UnitParseError extends Error {
  override readonly name = 'UnitParseError'
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Parses `250ms`, `30s`, `10m`, `1h30m`, `2d` (or a bare number of seconds) into milliseconds. Throws UnitParseError. */
export function parseDuration(input: string): number {
  const text = input.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000)
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy
  let total = 0
  let consumed = 0
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] ?? ''] ?? 0)
    consumed = re.lastIndex
  }
  if (text === '' || consumed !== text.length) throw new UnitParseError(`"${input}" is not a duration (examples: 500ms, 30s, 10m, 1h30m)`)
  return Math.round(total)
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
}

/** Parses `1048576`, `512MiB`, `20GiB`, `1.5GB` into bytes. Throws UnitParseError. */
export function parseSize(input: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(input.trim())
  const factor = m === null ? undefined : SIZE_UNITS[(m[2] ?? '').toLowerCase()]
  if (m === null || factor === undefined) throw new UnitParseError(`"${input}" is not a size (examples: 1048576, 512MiB, 20GiB)`)
  const value = Math.floor(Number(m[1]) * factor)
  if (!Number.isSafeInteger(value)) throw new UnitParseError(`"${input}" is too large`)
  return value
}
