import { RangeNotSatisfiableError } from './errors.js'

/** An inclusive byte range within a blob of known size. */
export interface ByteRange {
  start: number
  /** Inclusive. */
  end: number
}

/**
 * Parses an HTTP `Range` header for a blob of `size` bytes. Returns undefined when there
 * is no header, or it is not a single `bytes=` range (the whole blob is then served, as
 * RFC 9110 allows). Throws RangeNotSatisfiableError for a range past the end.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined || header === '') return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (m === null || (m[1] === '' && m[2] === '')) return undefined
  const [first, last] = [m[1] ?? '', m[2] ?? '']
  if (first === '') {
    const suffix = Number(last)
    if (suffix === 0) throw new RangeNotSatisfiableError(header, size)
    return { start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(first)
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
  if (!Number.isSafeInteger(start) || start >= size || end < start) throw new RangeNotSatisfiableError(header, size)
  return { start, end }
}

/** The `Content-Range` value for a range of a blob of `size` bytes. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`
}
