import { RangeNotSatisfiableError } from './errors.js'

/** An inclusive byte range within a blob of known size. */
export interface ByteRange {
  start: number
  /** Inclusive. */
  end: number
}

/**
 * Parses an HTTP `Range` header for a blob of `size` bytes. Returns undefined when there is
 * no header, it names another unit, or it asks for several ranges (the whole blob is then
 * served, as RFC 9110 allows). Throws RangeNotSatisfiableError for a malformed `bytes=`
 * range and for one past the end.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined || header === '') return undefined
  const text = header.trim()
  if (!/^bytes=/i.test(text) || text.includes(',')) return undefined
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/i.exec(text)
  if (m === null || (m[1] === '' && m[2] === '')) throw new RangeNotSatisfiableError(header.slice(0, 100), size)
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
