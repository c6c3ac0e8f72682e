import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach } from 'vitest'
import { startAdmissionSeed, type AdmissionSeed } from './admission-seed.js'

/** What each test of a file gets from useAdmissionSeed; read it inside tests and hooks only. */
export interface AdmissionFixture {
  /** This test's temp dir (the seed's state is in `<dir>/seed`). */
  readonly dir: string
  readonly seed: AdmissionSeed
  /** Run after each test, last pushed first, before the seed closes and the dir is removed. */
  readonly cleanups: Array<() => Promise<void>>
}

/**
 * Registers hooks that give every test of the calling file a fresh temp dir named `<tmpPrefix>…`
 * with a loopback admission seed, and after the test run its cleanups, close the seed and remove
 * the dir. Reading `seed` outside a test throws.
 */
export function useAdmissionSeed(tmpPrefix: string): AdmissionFixture {
  let dir = ''
  let seed: AdmissionSeed | undefined
  const cleanups: Array<() => Promise<void>> = []
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), tmpPrefix))
    seed = await startAdmissionSeed(join(dir, 'seed'))
  })
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
    await seed?.close()
    seed = undefined
    await rm(dir, { recursive: true, force: true })
  })
  return {
    get dir() {
      return dir
    },
    get seed() {
      if (seed === undefined) throw new Error('the admission seed exists only while a test runs')
      return seed
    },
    cleanups,
  }
}
