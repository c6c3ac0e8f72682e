import { describe, expect, it } from 'vitest'
import { MIN_SEND_CHUNK_BYTES, SEND_BUFFERS, SEND_CHUNK_BYTES } from './constants.js'
import { SendBudget } from './file-response.js'

const MiB = 1024 * 1024

describe('SendBudget (buffer memory shared by concurrent cache-hit responses)', () => {
  it('gives a lone response full-size chunks, and a small blob chunks of its own size', () => {
    const budget = new SendBudget(48 * MiB)
    const big = budget.acquire(1024 * MiB)
    expect(big.chunkBytes).toBe(SEND_CHUNK_BYTES)
    expect(budget.acquire(1000).chunkBytes).toBe(1000)
    big.release()
  })

  it('holds about the budget plus the minimum per response under 500 concurrent responses, and gets it all back', () => {
    const budget = new SendBudget(48 * MiB)
    const shares = Array.from({ length: 500 }, () => budget.acquire(64 * MiB))
    expect(shares.filter((s) => s.chunkBytes === SEND_CHUNK_BYTES).length).toBe(4)
    expect(Math.min(...shares.map((s) => s.chunkBytes))).toBe(MIN_SEND_CHUNK_BYTES)
    expect(budget.held).toBeLessThanOrEqual(48 * MiB + 500 * SEND_BUFFERS * MIN_SEND_CHUNK_BYTES)
    console.log(`500 concurrent cache-hit responses hold ${(budget.held / MiB).toFixed(0)} MiB of buffers (budget 48 MiB)`)
    for (const s of shares) {
      s.release()
      s.release()
    }
    expect(budget.held).toBe(0)
    expect(budget.acquire(64 * MiB).chunkBytes).toBe(SEND_CHUNK_BYTES)
  })
})
