/** Link rates in bits per second, written the way tc writes them: `100mbit`, `1gbit`, `500kbit`. */

const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9 }

/** Parses `<number>[k|m|g]bit` (decimal); throws a RangeError naming the flag when it is not one. */
export function parseRate(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)bit$/i.exec(text.trim())
  if (m === null) throw new RangeError(`--${flag}: "${text}" is not a rate like 100mbit or 1gbit`)
  const bps = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!
  if (!(bps >= 1e5)) throw new RangeError(`--${flag}: ${text} is below 100kbit`)
  return Math.round(bps)
}

/** `100 Mbit/s`, `1 Gbit/s`. */
export function formatRate(bps: number): string {
  if (bps >= 1e9 && bps % 1e8 === 0) return `${bps / 1e9} Gbit/s`
  if (bps >= 1e6) return `${+(bps / 1e6).toFixed(1)} Mbit/s`
  return `${+(bps / 1e3).toFixed(1)} kbit/s`
}
