import { describe, expect, it } from 'vitest'
import { formatDuration, formatRate, formatSize, percent } from './human-units.js'

describe('formatSize', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [3.2 * 2 ** 30, '3.2 GiB'],
    [10 * 2 ** 30, '10 GiB'],
    [1023.7 * 1024, '1.0 MiB'],
    [512 * 2 ** 20, '512 MiB'],
    [2 ** 50 * 3, '3.0 PiB'],
  ])('shows %d bytes as %s', (bytes, text) => expect(formatSize(bytes)).toBe(text))
})

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [850, '850ms'],
    [4_260, '4.2s'],
    [45_000, '45s'],
    [7 * 60_000 + 12_000, '7m12s'],
    [60_000, '1m00s'],
    [2 * 3_600_000 + 5 * 60_000 + 59_000, '2h05m'],
    [3 * 86_400_000 + 4 * 3_600_000, '3d04h'],
    [-(7 * 60_000 + 12_000), '7m12s'],
  ])('shows %d ms as %s', (ms, text) => expect(formatDuration(ms)).toBe(text))
})

describe('formatRate and percent', () => {
  it('shows decimal megabytes per second', () => {
    expect(formatRate(12_345_678, 1000)).toBe('12.3 MB/s')
    expect(formatRate(5_000_000, 500)).toBe('10.0 MB/s')
    expect(formatRate(100, 0)).toBe('0.0 MB/s')
  })

  it('rounds percentages down and calls an empty whole 0%', () => {
    expect(percent(3.2, 10)).toBe(32)
    expect(percent(999, 1000)).toBe(99)
    expect(percent(5, 0)).toBe(0)
  })
})
